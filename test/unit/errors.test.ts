import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AuthorizationServerUnavailable,
  InsufficientScope,
  InternalError,
  InvalidRequest,
  InvalidToken,
  MissingCredentials,
  RequestRejected,
  UpstreamTimeout,
  UpstreamUnavailable,
  asSidecarError,
  bearerChallenge,
  toErrorResponse,
} from '../../src/errors.ts';

test('no credentials: 401 with a bare challenge and no error code (RFC 6750 §3.1)', () => {
  const response = toErrorResponse(new MissingCredentials('no_credentials'), 'r');
  assert.equal(response.status, 401);
  assert.equal(response.headers['www-authenticate'], 'Bearer realm="r"');
  assert.deepEqual(response.body, { error: 'unauthorized', error_description: 'No access token was presented' });
});

const coded = [
  [new InvalidRequest('malformed_token'), 400, 'invalid_request'],
  [new InvalidToken('binding_mismatch'), 401, 'invalid_token'],
  [new InsufficientScope('accounts payments'), 403, 'insufficient_scope'],
] as const;
for (const [error, status, code] of coded) {
  test(`${code}: ${status} with the code in the challenge and the body`, () => {
    const response = toErrorResponse(error, 'phantom');
    assert.equal(response.status, status);
    assert.equal(response.body.error, code);
    assert.equal(response.body.error_description, error.message);
    const challenge = String(response.headers['www-authenticate'] ?? '');
    assert.ok(challenge.startsWith(`Bearer realm="phantom", error="${code}", error_description="`), challenge);
    assert.equal(response.headers['cache-control'], 'no-store');
  });
}

test('insufficient_scope names the scopes needed', () => {
  assert.match(bearerChallenge('r', new InsufficientScope('accounts payments')), /, scope="accounts payments"$/);
});

test('challenge values drop characters RFC 6750 does not allow', () => {
  const challenge = bearerChallenge('a"b\\c\u0001', new InvalidToken('token_inactive'));
  assert.equal(challenge, 'Bearer realm="abc", error="invalid_token", error_description="The access token is not valid for this request"');
});

test('no oracle: every invalid_token reason shows the same description', () => {
  const reasons = ['token_inactive', 'token_expired', 'binding_mismatch', 'audience_mismatch', 'issuer_mismatch', 'token_not_bound', 'binding_method_not_accepted', 'dpop_downgrade', 'not_an_access_token', 'token_without_subject', 'token_not_yet_valid'] as const;
  const descriptions = new Set(reasons.map((reason) => toErrorResponse(new InvalidToken(reason), 'r').body.error_description));
  assert.equal(descriptions.size, 1);
  const challenges = new Set(reasons.map((reason) => bearerChallenge('r', new InvalidToken(reason))));
  assert.equal(challenges.size, 1);
});

test('authorization server trouble is 503 with Retry-After and no challenge: never the client\'s fault', () => {
  const response = toErrorResponse(new AuthorizationServerUnavailable('as_timeout'), 'r');
  assert.equal(response.status, 503);
  assert.equal(response.headers['retry-after'], '5');
  assert.equal(response.headers['www-authenticate'], undefined);
  assert.equal(response.body.error, 'temporarily_unavailable');
});

test('every error body has an error member from the closed set and a description', () => {
  const cases = [
    [new RequestRejected('method_not_allowed', { allow: 'GET' }), 'method_not_allowed'],
    [new RequestRejected('failed_token_limit'), 'rate_limited'],
    [new RequestRejected('body_too_large'), 'request_too_large'],
    [new RequestRejected('no_matching_rule'), 'access_denied'],
    [new RequestRejected('misdirected_request'), 'misdirected_request'],
    [new RequestRejected('request_timeout'), 'request_timeout'],
    [new RequestRejected('upstream_busy'), 'temporarily_unavailable'],
    [new UpstreamUnavailable(), 'bad_gateway'],
    [new UpstreamTimeout(), 'gateway_timeout'],
    [new InternalError(), 'server_error'],
  ] as const;
  for (const [error, code] of cases) {
    const { body } = toErrorResponse(error, 'r');
    assert.deepEqual(Object.keys(body).sort(), ['error', 'error_description'], error.reason);
    assert.equal(body.error, code, error.reason);
  }
});

test('upstream failures are 502 and 504 without a challenge', () => {
  assert.equal(toErrorResponse(new UpstreamUnavailable(), 'r').status, 502);
  assert.equal(toErrorResponse(new UpstreamTimeout(), 'r').status, 504);
  assert.equal(toErrorResponse(new UpstreamTimeout(), 'r').headers['www-authenticate'], undefined);
});

test('foreign errors: Fastify 4xx keep their status, anything else is a bare 500', () => {
  const tooLarge = asSidecarError(Object.assign(new Error('Request body is too large'), { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE' }));
  assert.ok(tooLarge instanceof RequestRejected);
  assert.equal(tooLarge.status, 413);
  assert.equal(tooLarge.reason, 'body_too_large');
  assert.equal(tooLarge.detail, 'FST_ERR_CTP_BODY_TOO_LARGE');
  const other = asSidecarError(Object.assign(new Error('x'), { statusCode: 431, code: 'FST_SOMETHING' }));
  assert.equal(other.status, 431);
  assert.equal(other.reason, 'bad_request');
  const crash = asSidecarError(new TypeError('secret details eyJhbGciOi'));
  assert.ok(crash instanceof InternalError);
  assert.equal(toErrorResponse(crash, 'r').body.error_description, 'Internal error');
  assert.equal(asSidecarError('a string').status, 500);
  const own = new InvalidToken('token_inactive');
  assert.equal(asSidecarError(own), own);
});

test('the reasons table: every 401 is challenged, every coded challenge carries an RFC code, every 429 and 503 says when to retry', async () => {
  const { REASONS } = await import('../../src/reasons.ts');
  const bearerCodes = ['invalid_request', 'invalid_token', 'insufficient_scope', 'invalid_dpop_proof', 'use_dpop_nonce'];
  for (const [reason, spec] of Object.entries(REASONS) as [string, { status: number; error: string; challenge?: string; retryAfterSeconds?: number; description: string }][]) {
    if (spec.status === 401) assert.ok(spec.challenge !== undefined, reason);
    if (spec.challenge === 'coded') assert.ok(bearerCodes.includes(spec.error), reason);
    if (spec.status === 429 || spec.status === 503) assert.ok((spec.retryAfterSeconds ?? 0) > 0, reason);
    if (spec.error === 'invalid_token') assert.equal(spec.description, 'The access token is not valid for this request', reason);
    assert.match(spec.description, /^[\x20\x21\x23-\x5b\x5d-\x7e]+$/, `${reason}: a description a challenge can quote`);
  }
});
