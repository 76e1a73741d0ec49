// Tokens the API must never accept, and no oracle in how they are refused: a refresh token
// and a token for another API from the real oidc-provider; the shapes it will not produce
// from a scripted AS.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { partnerToken, refreshToken } from '../support/as.ts';
import { call } from '../support/client.ts';
import { boundAnswer, json, startFakeAuthorizationServer, type FakeAuthorizationServer } from '../support/fake-as.ts';
import { makePki, type Pki } from '../support/pki.ts';
import { accessLineFor, baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

describe('against the real oidc-provider', () => {
  let stack: Stack;
  let pki: Pki;

  before(async () => {
    // Every other check is loosened, so that only the rule under test can refuse.
    stack = await startStack(() => ({ PHANTOM_EXPECTED_AUDIENCE: '', PHANTOM_ALLOW_ANY_AUDIENCE: 'true' }));
    pki = stack.pki;
  });
  after(() => stack?.stop());

  const asA = (sidecar: RunningSidecar, token: string) =>
    call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });

  test('a real refresh token, active and bound to partner A, is not an access token: 401', async () => {
    const token = await refreshToken(stack.as, 'partner-a', pki.partnerA);
    const before = stack.upstream.received.length;
    const response = await asA(stack.sidecar, token);
    assert.equal(response.status, 401);
    assert.equal(response.json.error, 'invalid_token');
    assert.equal((await accessLineFor(stack.sidecar.logs, response)).reason, 'not_an_access_token');
    assert.equal(stack.upstream.received.length, before);
  });

  test('PHANTOM_REQUIRE_TOKEN_TYPE=false is the only way past that rule (the AS is what says so)', async () => {
    const loose = await startSidecar({ ...baseEnv(pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_EXPECTED_AUDIENCE: '', PHANTOM_ALLOW_ANY_AUDIENCE: 'true', PHANTOM_REQUIRE_TOKEN_TYPE: 'false' });
    try {
      const response = await asA(loose, await refreshToken(stack.as, 'partner-a', pki.partnerA));
      assert.equal(response.status, 200);
    } finally {
      await loose.stop();
    }
  });

  test('by default a token for another API is refused: PHANTOM_EXPECTED_AUDIENCE is required', async () => {
    const strict = await startSidecar({ ...baseEnv(pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_EXPECTED_AUDIENCE: 'https://payments.example.com' });
    try {
      const token = await partnerToken(stack.as, 'partner-a', pki.partnerA, pki);
      const response = await asA(strict, token);
      assert.equal(response.status, 401);
      assert.equal((await accessLineFor(strict.logs, response)).reason, 'audience_mismatch');
      assert.equal((await asA(stack.sidecar, token)).status, 200, 'the same token where any audience is allowed explicitly');
    } finally {
      await strict.stop();
    }
  });
});

describe('against a scripted authorization server', () => {
  const pki = makePki();
  let fake: FakeAuthorizationServer;
  let stack: Stack;
  let sidecar: RunningSidecar;
  let asJwtSidecar: RunningSidecar;
  let counter = 0;
  const fresh = (): string => `scripted-${process.pid}-${(counter += 1)}`;
  const answer = (extra: Record<string, unknown> = {}) => boundAnswer(pki.partnerA.thumbprint, { sub: 'partner-a', ...extra });

  before(async () => {
    fake = await startFakeAuthorizationServer(pki);
    stack = await startStack();
    sidecar = await startSidecar(baseEnv(pki, stack.upstream.url, fake.url));
    asJwtSidecar = await startSidecar({ ...baseEnv(pki, stack.upstream.url, fake.url), PHANTOM_UPSTREAM_TOKEN: 'as-jwt' });
  });
  after(async () => {
    await sidecar?.stop();
    await asJwtSidecar?.stop();
    await fake?.stop();
    await stack?.stop();
  });

  const asA = (target: RunningSidecar = sidecar) =>
    call({ port: target.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${fresh()}` } });

  test('the scripted answer itself passes (so each refusal below is its rule\'s)', async () => {
    fake.handle = (_r, res) => json(res, answer());
    assert.equal((await asA()).status, 200);
  });

  const refusals: [string, Record<string, unknown>, string][] = [
    ['no aud while an audience is expected', { aud: undefined }, 'audience_mismatch'],
    ['token_type refresh_token', { token_type: 'refresh_token' }, 'not_an_access_token'],
    ['no token_type', { token_type: undefined }, 'not_an_access_token'],
    ['neither sub nor client_id', { sub: undefined, client_id: undefined }, 'token_without_subject'],
    ['cnf with both x5t#S256 and jkt where DPoP is not accepted (both proofs needed)', { cnf: { 'x5t#S256': pki.partnerA.thumbprint, jkt: 'abc' } }, 'binding_method_not_accepted'],
    ['exp passed 30 s ago, still called active', { exp: Math.floor(Date.now() / 1000) - 30 }, 'token_expired'],
    ['bound to partner B', { cnf: { 'x5t#S256': pki.partnerB.thumbprint } }, 'binding_mismatch'],
    ['inactive', { active: false }, 'token_inactive'],
  ];
  const bodies = new Set<string>();
  const challenges = new Set<string>();
  for (const [name, overrides, reason] of refusals) {
    test(`${name}: 401 invalid_token (${reason} in the log only)`, async () => {
      fake.handle = (_r, res) => json(res, overrides.active === false ? { active: false } : answer(overrides));
      const response = await asA();
      assert.equal(response.status, 401);
      assert.equal((await accessLineFor(sidecar.logs, response)).reason, reason);
      bodies.add(response.text);
      challenges.add(String(response.headers['www-authenticate']));
    });
  }

  test('no oracle: every invalid_token refusal above reads the same, body and challenge', () => {
    assert.equal(bodies.size, 1, [...bodies].join('\n'));
    assert.equal(challenges.size, 1, [...challenges].join('\n'));
    assert.ok(![...bodies][0]?.includes('bound') && ![...bodies][0]?.includes('audience'));
  });

  test('as-jwt mode: only `active: false` exactly is inactive; any other JSON shape is the AS\'s fault (503)', async () => {
    const shapes: [unknown, number][] = [
      [{ active: false }, 401],
      [{ active: 'false' }, 503],
      [{ active: 0 }, 503],
      [{}, 503],
      [{ active: true }, 503],
      [[], 503],
    ];
    for (const [body, status] of shapes) {
      fake.handle = (_r, res) => json(res, body);
      assert.equal((await asA(asJwtSidecar)).status, status, JSON.stringify(body));
    }
  });
});
