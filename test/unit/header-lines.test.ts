import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linesOf } from '../../src/http/listener-app.ts';

test('every line of the named headers, apart and in order, whatever their case; other headers are not read', () => {
  const raw = ['Host', 'api', 'Authorization', 'Bearer a', 'accept', '*/*', 'AUTHORIZATION', 'Bearer b', 'DPoP', 'proof', 'X-Other', 'x'];
  const lines: NodeJS.Dict<string[]> = linesOf(raw, new Set(['authorization', 'dpop', 'client-cert']));
  assert.equal(lines['client-cert'], undefined, 'a named header the request lacks has no lines');
  assert.equal(lines.host, undefined);
  assert.deepEqual(lines, { authorization: ['Bearer a', 'Bearer b'], dpop: ['proof'] });
});

test('an empty header line is a line: an empty Authorization is not the same as none', () => {
  assert.deepEqual(linesOf(['authorization', ''], new Set(['authorization'])), { authorization: [''] });
});
