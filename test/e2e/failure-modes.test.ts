// The whole sidecar against a scripted authorization server: the faults and answer shapes
// a real oidc-provider cannot be made to produce. Every fault must fail closed.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import { call } from '../support/client.ts';
import { boundAnswer as answerBoundTo, json, startFakeAuthorizationServer, type FakeAuthorizationServer } from '../support/fake-as.ts';
import { makePki, type Pki } from '../support/pki.ts';
import { accessLineFor, baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstream.ts';

const pki: Pki = makePki();
let fake: FakeAuthorizationServer;
let upstream: EchoUpstream;
let counter = 0;
const freshToken = (): string => `opaque-${process.pid}-${(counter += 1)}`;
const boundAnswer = (extra: Record<string, unknown> = {}) => answerBoundTo(pki.partnerA.thumbprint, extra);

before(async () => {
  fake = await startFakeAuthorizationServer(pki);
  upstream = await startEchoUpstream();
});
after(async () => {
  await fake.stop();
  await upstream.stop();
});

function sidecarCall(sidecar: RunningSidecar, token: string) {
  return call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });
}

describe('mint mode', () => {
  let sidecar: RunningSidecar;
  before(async () => {
    sidecar = await startSidecar({
      ...baseEnv(pki, upstream.url, fake.url),
      PHANTOM_INTROSPECTION_TIMEOUT_MS: '300',
      PHANTOM_EXPECTED_ISSUER: 'https://as.test',
    });
  });
  after(() => sidecar.stop());
  beforeEach(() => {
    fake.handle = (_r, res) => json(res, boundAnswer({ iss: 'https://as.test' }));
  });

  const faults: [string, (res: import('node:http').ServerResponse) => void, RegExp][] = [
    ['an AS 500', (res) => json(res, { error: 'server_error', error_description: 'db down at 10.0.0.7' }, 500), /^as_error_status$/],
    ['an AS that hangs', () => undefined, /^as_timeout$/],
    ['garbage', (res) => json(res, '\u0000\u0001garbage'), /^as_malformed_response$/],
    ['"active": "true"', (res) => json(res, { ...boundAnswer(), active: 'true' }), /^as_malformed_response$/],
    ['the sidecar\'s credentials rejected', (res) => json(res, { error: 'invalid_client' }, 401), /^as_rejected_sidecar_credentials$/],
  ];
  for (const [name, respond, reason] of faults) {
    test(`${name}: 503 with Retry-After, never 401, nothing forwarded, the AS text never echoed`, async () => {
      fake.handle = (_r, res) => respond(res);
      const before = upstream.received.length;
      const response = await sidecarCall(sidecar, freshToken());
      assert.equal(response.status, 503);
      assert.equal(response.headers['retry-after'], '5');
      assert.ok(!response.text.includes('10.0.0.7') && !response.text.includes('invalid_client'));
      assert.equal(upstream.received.length, before);
      assert.match(String((await accessLineFor(sidecar.logs, response)).reason), reason);
    });
  }

  test('a failure is not cached: the next request asks again and succeeds', async () => {
    const token = freshToken();
    fake.handle = (_r, res) => json(res, {}, 500);
    assert.equal((await sidecarCall(sidecar, token)).status, 503);
    fake.handle = (_r, res) => json(res, boundAnswer({ iss: 'https://as.test' }));
    const asked = fake.seen.length;
    assert.equal((await sidecarCall(sidecar, token)).status, 200);
    assert.equal(fake.seen.length, asked + 1);
  });

  test('a cache hit forwards the same minted JWT and signs nothing new', async () => {
    const token = freshToken();
    const first = await sidecarCall(sidecar, token);
    const second = await sidecarCall(sidecar, token);
    assert.equal(first.status, 200);
    assert.equal(second.status, 200);
    const [a, b] = upstream.received.slice(-2);
    assert.equal(a?.headers.authorization, b?.headers.authorization);
    assert.equal((await accessLineFor(sidecar.logs, second)).cache, 'hit');
  });

  const refusals: [string, Record<string, unknown>, string][] = [
    ['an unbound token while binding is required', { cnf: undefined }, 'token_not_bound'],
    ['a DPoP-bound token where only mTLS is accepted', { cnf: { jkt: 'abc' }, token_type: 'DPoP' }, 'binding_method_not_accepted'],
    ['a token of another issuer', { iss: 'https://evil.test' }, 'issuer_mismatch'],
    ['an expired token the AS still calls active', { exp: Math.floor(Date.now() / 1000) - 120 }, 'token_expired'],
    ['a token bound to partner B', { cnf: { 'x5t#S256': pki.partnerB.thumbprint } }, 'binding_mismatch'],
  ];
  for (const [name, overrides, reason] of refusals) {
    test(`${name}: 401 invalid_token`, async () => {
      fake.handle = (_r, res) => json(res, boundAnswer({ iss: 'https://as.test', ...overrides }));
      const before = upstream.received.length;
      const response = await sidecarCall(sidecar, freshToken());
      assert.equal(response.status, 401);
      assert.equal(response.json.error, 'invalid_token');
      assert.equal(upstream.received.length, before);
      assert.equal((await accessLineFor(sidecar.logs, response)).reason, reason);
    });
  }
});

describe('binding optional', () => {
  test('PHANTOM_REQUIRE_BINDING=false lets an unbound token through, but never a mismatched one', async () => {
    const sidecar = await startSidecar({ ...baseEnv(pki, upstream.url, fake.url), PHANTOM_REQUIRE_BINDING: 'false' });
    try {
      fake.handle = (_r, res) => json(res, boundAnswer({ cnf: undefined }));
      assert.equal((await sidecarCall(sidecar, freshToken())).status, 200);
      fake.handle = (_r, res) => json(res, boundAnswer({ cnf: { 'x5t#S256': pki.partnerB.thumbprint } }));
      assert.equal((await sidecarCall(sidecar, freshToken())).status, 401);
    } finally {
      await sidecar.stop();
    }
  });
});

describe('as-jwt mode (Curity-style phantom token)', () => {
  let sidecar: RunningSidecar;
  const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const asJwt = (claims: Record<string, unknown>) =>
    new SignJWT({ iss: 'https://as.test', aud: 'https://api.example.com', client_id: 'partner-a', scope: 'accounts', ...claims })
      .setProtectedHeader({ alg: 'ES256', typ: 'at+jwt', kid: 'as-key' })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(signer);

  before(async () => {
    sidecar = await startSidecar({ ...baseEnv(pki, upstream.url, fake.url), PHANTOM_UPSTREAM_TOKEN: 'as-jwt', PHANTOM_REQUIRED_SCOPES: 'accounts' });
  });
  after(() => sidecar.stop());

  test('the AS\'s JWT is forwarded as it came, its claims checked like an introspection answer', async () => {
    const jwt = await asJwt({ cnf: { 'x5t#S256': pki.partnerA.thumbprint } });
    fake.handle = (_r, res) => json(res, jwt, 200, 'application/jwt');
    const token = freshToken();
    const response = await sidecarCall(sidecar, token);
    assert.equal(response.status, 200);
    assert.equal(fake.seen.at(-1)!.headers.accept, 'application/jwt');
    assert.equal(upstream.received.at(-1)!.headers.authorization, `Bearer ${jwt}`);
    assert.ok(!JSON.stringify(upstream.received.at(-1)).includes(token));
  });

  test('binding and scope are read from the AS\'s JWT', async () => {
    fake.handle = async (_r, res) => json(res, { active: true, jwt: await asJwt({ cnf: { 'x5t#S256': pki.partnerB.thumbprint } }) });
    assert.equal((await sidecarCall(sidecar, freshToken())).status, 401);
    fake.handle = async (_r, res) => json(res, { phantom_token: await asJwt({ scope: 'payments', cnf: { 'x5t#S256': pki.partnerA.thumbprint } }) });
    assert.equal((await sidecarCall(sidecar, freshToken())).status, 403);
  });

  test('204 (inactive, as Curity says it) is 401; any other shape is 503', async () => {
    fake.handle = (_r, res) => {
      res.statusCode = 204;
      res.end();
    };
    assert.equal((await sidecarCall(sidecar, freshToken())).status, 401);
    fake.handle = (_r, res) => json(res, boundAnswer());
    assert.equal((await sidecarCall(sidecar, freshToken())).status, 503, 'plain JSON where a JWT was asked for');
  });

  test('the admin JWKS is empty in as-jwt mode: the API verifies with the AS\'s keys', async () => {
    const response = await fetch(`http://127.0.0.1:${sidecar.adminPort}/.well-known/jwks.json`);
    assert.deepEqual(await response.json(), { keys: [] });
  });
});

describe('a bug in the sidecar', () => {
  test('is a bare 500 that forwards nothing; the log names the error class, never its message', async () => {
    const sidecar = await startSidecar(baseEnv(pki, upstream.url, fake.url), {
      tokens: {
        jwks: { keys: [] },
        jwtFor: () => Promise.reject(new TypeError('boom with Bearer secret-in-message')),
        readyJwtFor: () => undefined,
      },
    });
    try {
      fake.handle = (_r, res) => json(res, boundAnswer());
      const before = upstream.received.length;
      const response = await sidecarCall(sidecar, freshToken());
      assert.equal(response.status, 500);
      assert.deepEqual(response.json, { error: 'server_error', error_description: 'Internal error' });
      assert.equal(upstream.received.length, before);
      await accessLineFor(sidecar.logs, response);
      const logs = sidecar.logs.join('\n');
      assert.match(logs, /"err_name":"TypeError"/);
      assert.ok(!logs.includes('secret-in-message'));
    } finally {
      await sidecar.stop();
    }
  });
});
