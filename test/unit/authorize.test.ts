import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InsufficientScope, InvalidToken } from '../../src/errors.ts';
import { CLOCK_LEEWAY_SECONDS, checkIssuerAndAudience, checkScopes, checkTokenTimes } from '../../src/request/token-claims.ts';

const NOW = 1_800_000_000;
const rejects = (fn: () => void, reason: string) =>
  assert.throws(fn, (error: unknown) => (error instanceof InvalidToken || error instanceof InsufficientScope) && error.reason === reason);

test('exp is checked with no leeway (no JWT can be made from an expired token), nbf with 60 s', () => {
  assert.equal(CLOCK_LEEWAY_SECONDS, 60);
  assert.doesNotThrow(() => checkTokenTimes({ exp: NOW + 1, nbf: NOW + 60 }, NOW));
  rejects(() => checkTokenTimes({ exp: NOW }, NOW), 'token_expired');
  rejects(() => checkTokenTimes({ exp: NOW - 30 }, NOW), 'token_expired');
  rejects(() => checkTokenTimes({ nbf: NOW + 61 }, NOW), 'token_not_yet_valid');
  assert.doesNotThrow(() => checkTokenTimes({}, NOW));
});

const rules = { expectedIssuer: 'https://as', expectedAudience: 'https://api' };

test('iss must equal, aud must contain, when configured', () => {
  assert.doesNotThrow(() => checkIssuerAndAudience({ iss: 'https://as', aud: 'https://api' }, rules));
  assert.doesNotThrow(() => checkIssuerAndAudience({ iss: 'https://as', aud: ['x', 'https://api'] }, rules));
  rejects(() => checkIssuerAndAudience({ iss: 'https://evil', aud: 'https://api' }, rules), 'issuer_mismatch');
  rejects(() => checkIssuerAndAudience({ aud: 'https://api' }, rules), 'issuer_mismatch');
  rejects(() => checkIssuerAndAudience({ iss: 'https://as', aud: 'https://api/other' }, rules), 'audience_mismatch');
  rejects(() => checkIssuerAndAudience({ iss: 'https://as' }, rules), 'audience_mismatch');
  assert.doesNotThrow(() => checkIssuerAndAudience({}, { ...rules, expectedIssuer: undefined, expectedAudience: undefined }));
});

test('every required scope must be granted', () => {
  assert.doesNotThrow(() => checkScopes({ scope: 'a b c' }, ['a', 'c']));
  assert.doesNotThrow(() => checkScopes({}, []));
  assert.throws(() => checkScopes({ scope: 'a' }, ['a', 'b']), (error: unknown) => error instanceof InsufficientScope && error.requiredScope === 'a b');
  rejects(() => checkScopes({ scope: 'ab' }, ['a']), 'scope_missing');
  rejects(() => checkScopes({}, ['a']), 'scope_missing');
});
