import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildAdmin } from '../../src/admin.ts';
import { createLogger } from '../../src/log.ts';
import { Writable } from 'node:stream';

const quiet = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));

test('readyz follows readiness: 503 while starting or draining, 200 when ready', async () => {
  const readiness = { ready: false };
  const admin = buildAdmin(quiet, readiness, { keys: [] });
  assert.equal((await admin.inject('/readyz')).statusCode, 503);
  readiness.ready = true;
  assert.equal((await admin.inject('/readyz')).statusCode, 200);
  readiness.ready = false;
  assert.equal((await admin.inject('/readyz')).statusCode, 503);
  assert.equal((await admin.inject('/healthz')).statusCode, 200, 'alive all along');
  assert.equal((await admin.inject('/anything-else')).statusCode, 404);
});
