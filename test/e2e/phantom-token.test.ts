// End to end with real parts: certificates from certs/generate.sh, the oidc-provider
// authorization server of deploy/ over HTTPS with mTLS client auth, an echo API, and the
// sidecar, all on loopback.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import type { RunningAuthorizationServer } from '../../deploy/authorization-server/server.ts';
import { API_AUDIENCE, partnerToken, postForm } from '../support/as.ts';
import { call } from '../support/client.ts';
import type { Pki } from '../support/pki.ts';
import { accessLineFor, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';
import type { EchoUpstream } from '../support/upstream.ts';

const CACHE_TTL_S = 1;

describe('phantom-token sidecar against a real oidc-provider', () => {
  let stack: Stack;
  let pki: Pki;
  let as: RunningAuthorizationServer;
  let upstream: EchoUpstream;
  let sidecar: RunningSidecar;
  const introspections = (): number => stack.introspections();

  before(async () => {
    stack = await startStack((server) => ({
      PHANTOM_CACHE_MAX_TTL_S: String(CACHE_TTL_S),
      PHANTOM_EXPECTED_ISSUER: server.issuer,
      PHANTOM_EXPECTED_AUDIENCE: API_AUDIENCE,
      PHANTOM_REQUIRED_SCOPES: 'accounts',
    }));
    ({ pki, as, upstream, sidecar } = stack);
  });

  after(() => stack?.stop());

  const asPartner = (identity: Pki['partnerA'], token: string, path = '/api/accounts?page=2') =>
    call({ port: sidecar.port, path, cert: identity.cert, key: identity.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });

  test('partner A calls through: the API gets a verifiable RFC 9068 JWT, never the opaque token', async () => {
    const token = await partnerToken(as, 'partner-a', pki.partnerA, pki, 'accounts transactions');
    const before = upstream.received.length;
    const response = await call({
      port: sidecar.port,
      path: '/api/transactions?from=2026-01-01',
      method: 'POST',
      cert: pki.partnerA.cert,
      key: pki.partnerA.key,
      ca: pki.ca,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-forwarded-client-cert': 'Hash=forged' },
      body: '{"amount":"10.00"}',
    });
    assert.equal(response.status, 200);
    assert.equal(upstream.received.length, before + 1);
    const seen = upstream.received.at(-1)!;
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, '/api/transactions?from=2026-01-01');
    assert.equal(seen.body, '{"amount":"10.00"}');
    assert.equal(seen.headers['x-forwarded-client-cert'], undefined);
    assert.ok(!JSON.stringify(seen).includes(token), 'the opaque token reached the API');

    const jwt = (seen.headers.authorization ?? '').replace(/^Bearer /, '');
    const jwksResponse = await fetch(`http://127.0.0.1:${sidecar.adminPort}/.well-known/jwks.json`);
    const jwks = createLocalJWKSet((await jwksResponse.json()) as JSONWebKeySet);
    const { payload, protectedHeader } = await jwtVerify(jwt, jwks, {
      issuer: 'https://sidecar.test',
      audience: 'https://api.internal.test',
      algorithms: ['ES256'],
      typ: 'at+jwt',
    });
    assert.equal(typeof protectedHeader.kid, 'string');
    assert.equal(payload.sub, 'partner-a', 'client_credentials tokens have no sub: the client_id stands in');
    assert.equal(payload.client_id, 'partner-a');
    assert.equal(payload.scope, 'accounts transactions');
    assert.deepEqual(payload.cnf, { 'x5t#S256': pki.partnerA.thumbprint });
    assert.equal(typeof payload.jti, 'string');
    assert.ok(typeof payload.iat === 'number' && typeof payload.exp === 'number' && payload.exp > payload.iat);
    assert.ok(payload.exp - payload.iat <= 60);
    assert.equal(response.headers['x-fapi-interaction-id'], seen.headers['x-fapi-interaction-id']);

    const line = await accessLineFor(sidecar.logs, response);
    assert.equal(line.status, 200);
    assert.equal(line.client_id, 'partner-a');
    assert.equal(line.cache, 'miss');
    assert.equal(line.x5t, pki.partnerA.thumbprint);
    assert.equal(line.path, '/api/transactions');
  });

  test('partner B replaying partner A\'s token is refused and the API sees nothing', async () => {
    const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
    assert.equal((await asPartner(pki.partnerA, token)).status, 200);
    const before = upstream.received.length;
    const replay = await asPartner(pki.partnerB, token);
    assert.equal(replay.status, 401);
    assert.equal(replay.json.error, 'invalid_token');
    assert.match(String(replay.headers['www-authenticate']), /^Bearer realm="phantom-sidecar", error="invalid_token"/);
    assert.equal(upstream.received.length, before);
    const line = await accessLineFor(sidecar.logs, replay);
    assert.equal(line.reason, 'binding_mismatch');
    assert.equal(line.cache, 'hit', 'the binding is checked on cache hits too');
    const metrics = await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/metrics`)).text();
    assert.match(metrics, /phantom_requests_total\{status="401",reason="binding_mismatch",rule="default"\} 1/);
  });

  test('a revoked token is refused once the cache lifetime has passed', async () => {
    const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
    assert.equal((await asPartner(pki.partnerA, token)).status, 200);
    const revoked = await postForm(as.revocationUrl, { token, client_id: 'partner-a' }, pki.partnerA, pki);
    assert.equal(revoked.status, 200);
    await new Promise((resolve) => setTimeout(resolve, CACHE_TTL_S * 1000 + 200));
    const response = await asPartner(pki.partnerA, token);
    assert.equal(response.status, 401);
    assert.equal(response.json.error, 'invalid_token');
    assert.equal((await accessLineFor(sidecar.logs, response)).reason, 'token_inactive');
  });

  test('50 concurrent requests with one fresh token make exactly one introspection call', async () => {
    const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
    const calls = introspections();
    const responses = await Promise.all(Array.from({ length: 50 }, () => asPartner(pki.partnerA, token)));
    assert.deepEqual(new Set(responses.map((r) => r.status)), new Set([200]));
    assert.equal(introspections() - calls, 1);
  });

  test('a token without the required scope gets 403 insufficient_scope', async () => {
    const token = await partnerToken(as, 'partner-a', pki.partnerA, pki, 'transactions');
    const response = await asPartner(pki.partnerA, token);
    assert.equal(response.status, 403);
    assert.equal(response.json.error, 'insufficient_scope');
    assert.match(String(response.headers['www-authenticate']), /scope="accounts"/);
  });

  test('an unknown token is 401 invalid_token; no log line holds a token', async () => {
    const response = await asPartner(pki.partnerA, 'not-a-real-token');
    assert.equal(response.status, 401);
    assert.equal(response.json.error, 'invalid_token');
    const logs = sidecar.logs.join('\n');
    assert.ok(!logs.includes('not-a-real-token'));
    assert.ok(!/eyJ[\w-]+\.eyJ/.test(logs), 'a JWT reached the log');
    assert.ok(!logs.includes('sidecar-secret'));
  });

  test('with the authorization server stopped: 503 with Retry-After, nothing forwarded', async () => {
    const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
    await as.stop();
    const before = upstream.received.length;
    const response = await asPartner(pki.partnerA, token);
    assert.equal(response.status, 503);
    assert.equal(response.headers['retry-after'], '5');
    assert.equal(response.headers['www-authenticate'], undefined);
    assert.equal(upstream.received.length, before);
    assert.match(String((await accessLineFor(sidecar.logs, response)).reason), /^as_unreachable/);
  });
});
