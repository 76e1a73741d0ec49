// DPoP at the resource server (RFC 9449) end to end: the real oidc-provider issues DPoP-bound
// tokens, the test makes proofs with jose as a client library does, and each rule is broken
// one at a time. RFC 9728 metadata and the challenges that point to it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import { dpopBoundToken, dpopProof, partnerToken } from '../support/as.ts';
import { call, type CallResult } from '../support/client.ts';
import { accessLineFor, baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

const HOST = 'api.example.com';
const RESOURCE = 'https://api.example.com';
const HTU = `https://${HOST}/api/accounts`;
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });

describe('DPoP-bound tokens from the real oidc-provider', () => {
  let stack: Stack;
  let sidecar: RunningSidecar;
  let token: string;

  before(async () => {
    stack = await startStack(() => ({ PHANTOM_SENDER_CONSTRAINTS: 'mtls dpop', PHANTOM_PUBLIC_HOSTS: HOST, PHANTOM_RESOURCE: RESOURCE }));
    sidecar = stack.sidecar;
    token = await dpopBoundToken(stack.as, stack.pki.partnerA, stack.pki, key);
  });
  after(() => stack?.stop());

  const send = (headers: Record<string, string | string[]>, path = '/api/accounts', method = 'GET'): Promise<CallResult> =>
    call({ port: sidecar.port, method, path, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { host: HOST, ...headers } });
  const withProof = async (options: Parameters<typeof dpopProof>[3] = {}, signer = key, htm = 'GET', htu = HTU) =>
    send({ authorization: `DPoP ${token}`, dpop: await dpopProof(signer, htm, htu, { token, ...options }) });

  test('a valid proof: 200, and the API gets a JWT carrying the token\'s cnf.jkt, never the DPoP header', async () => {
    const before = stack.upstream.received.length;
    const response = await withProof();
    assert.equal(response.status, 200, response.text);
    assert.equal(stack.upstream.received.length, before + 1);
    const seen = stack.upstream.received.at(-1)!;
    assert.equal(seen.headers.dpop, undefined);
    const jwks = (await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    const { payload } = await jwtVerify(String(seen.headers.authorization).slice('Bearer '.length), createLocalJWKSet(jwks));
    const introspected = decodeJwt(await dpopProof(key, 'GET', HTU));
    assert.ok(introspected);
    assert.deepEqual(Object.keys(payload.cnf as object), ['jkt']);
    assert.equal((await accessLineFor(sidecar.logs, response)).reason, undefined);
  });

  const broken: [string, () => Promise<CallResult>, string, string][] = [
    ['typ JWT', () => withProof({ header: { typ: 'JWT' } }), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['an algorithm outside PHANTOM_DPOP_ALGS (ES384)', async () => send({ authorization: `DPoP ${token}`, dpop: await dpopProof(generateKeyPairSync('ec', { namedCurve: 'P-384' }), 'GET', HTU, { token, alg: 'ES384' }) }), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['a private key in the jwk', async () => send({ authorization: `DPoP ${token}`, dpop: await dpopProof(key, 'GET', HTU, { token, header: { jwk: { ...key.privateKey.export({ format: 'jwk' }) } } }) }), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['signed by another key than its jwk', async () => send({ authorization: `DPoP ${token}`, dpop: await dpopProof({ privateKey: otherKey.privateKey, publicKey: key.publicKey }, 'GET', HTU, { token }) }), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['htm POST on a GET', () => withProof({}, key, 'POST'), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['htu for another path', () => withProof({}, key, 'GET', `https://${HOST}/api/payments`), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['htu for another host', () => withProof({}, key, 'GET', 'https://evil.example/api/accounts'), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['htu over http', () => withProof({}, key, 'GET', `http://${HOST}/api/accounts`), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['iat two minutes old', () => withProof({ claims: { iat: Math.floor(Date.now() / 1000) - 120 } }), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['iat two minutes ahead', () => withProof({ claims: { iat: Math.floor(Date.now() / 1000) + 120 } }), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['ath of another token', () => withProof({ claims: { ath: 'fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo' } }), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['no ath', () => withProof({ claims: { ath: undefined } }), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['a valid proof by another key (jkt mismatch)', () => withProof({}, otherKey), 'invalid_token', 'binding_mismatch'],
    ['no DPoP header', () => send({ authorization: `DPoP ${token}` }), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['two DPoP headers', async () => send({ authorization: `DPoP ${token}`, dpop: [await dpopProof(key, 'GET', HTU, { token }), await dpopProof(key, 'GET', HTU, { token })] }), 'invalid_dpop_proof', 'dpop_proof_invalid'],
    ['the DPoP-bound token as Bearer (a downgrade)', async () => send({ authorization: `Bearer ${token}`, dpop: await dpopProof(key, 'GET', HTU, { token }) }), 'invalid_token', 'dpop_downgrade'],
  ];
  for (const [name, attempt, code, reason] of broken) {
    test(`${name}: 401 ${code}, nothing forwarded`, async () => {
      const before = stack.upstream.received.length;
      const response = await attempt();
      assert.equal(response.status, 401, response.text);
      assert.equal(response.json.error, code);
      const scheme = code === 'invalid_token' && reason === 'dpop_downgrade' ? 'Bearer' : 'DPoP';
      assert.match(String(response.headers['www-authenticate']), new RegExp(`^${scheme} realm="phantom-sidecar", .*error="${code}"`));
      if (scheme === 'DPoP') assert.match(String(response.headers['www-authenticate']), /algs="ES256 PS256 EdDSA"/);
      assert.match(String(response.headers['www-authenticate']), /resource_metadata="https:\/\/api\.example\.com\/\.well-known\/oauth-protected-resource"/);
      assert.equal((await accessLineFor(sidecar.logs, response)).reason, reason);
      assert.equal(stack.upstream.received.length, before);
    });
  }

  test('a replayed proof is refused', async () => {
    const proof = await dpopProof(key, 'GET', HTU, { token });
    assert.equal((await send({ authorization: `DPoP ${token}`, dpop: proof })).status, 200);
    const replay = await send({ authorization: `DPoP ${token}`, dpop: proof });
    assert.equal(replay.status, 401);
    assert.equal(replay.json.error, 'invalid_dpop_proof');
    assert.equal((await accessLineFor(sidecar.logs, replay)).reason, 'dpop_proof_replayed');
  });

  test('a certificate-bound token still works with Bearer where both are accepted', async () => {
    const bound = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    assert.equal((await send({ authorization: `Bearer ${bound}` })).status, 200);
    const asDpop = await send({ authorization: `DPoP ${bound}`, dpop: await dpopProof(key, 'GET', HTU, { token: bound }) });
    assert.equal(asDpop.status, 401, 'the DPoP scheme is for DPoP-bound tokens only');
  });

  test('no credentials: a challenge for each accepted scheme, each naming the resource metadata', async () => {
    const response = await send({});
    assert.equal(response.status, 401);
    const challenges = response.headers['www-authenticate'];
    assert.ok(Array.isArray(challenges) || typeof challenges === 'string');
    // Node's client joins the two header lines with ", ".
    const all = ([] as string[]).concat(challenges ?? []).join(', ');
    assert.match(all, /Bearer realm="phantom-sidecar", resource_metadata="https:\/\/api\.example\.com\/\.well-known\/oauth-protected-resource"/);
    assert.match(all, /DPoP realm="phantom-sidecar", algs="ES256 PS256 EdDSA", resource_metadata="https:\/\/api\.example\.com\/\.well-known\/oauth-protected-resource"/);
    assert.ok(!all.includes('error='));
  });

  test('RFC 9728 metadata is served without a token on the mTLS listener and on the admin listener', async () => {
    const expected = {
      resource: RESOURCE,
      bearer_methods_supported: ['header'],
      tls_client_certificate_bound_access_tokens: true,
      dpop_bound_access_tokens_required: false,
      dpop_signing_alg_values_supported: ['ES256', 'PS256', 'EdDSA'],
    };
    const onMtls = await send({}, '/.well-known/oauth-protected-resource');
    assert.equal(onMtls.status, 200);
    assert.deepEqual(onMtls.json, expected);
    const onAdmin = await fetch(`http://127.0.0.1:${sidecar.adminPort}/.well-known/oauth-protected-resource`);
    assert.deepEqual(await onAdmin.json(), expected);
  });
});

describe('DPoP nonces', () => {
  let stack: Stack;
  let sidecar: RunningSidecar;
  let token: string;

  before(async () => {
    stack = await startStack(() => ({ PHANTOM_SENDER_CONSTRAINTS: 'dpop', PHANTOM_PUBLIC_HOSTS: HOST, PHANTOM_DPOP_NONCE: 'true', PHANTOM_DPOP_NONCE_SECRET: 'a-nonce-secret-every-replica-shares-0123' }));
    sidecar = stack.sidecar;
    token = await dpopBoundToken(stack.as, stack.pki.partnerA, stack.pki, key);
  });
  after(() => stack?.stop());

  const send = async (claims: Record<string, unknown> = {}) =>
    call({ port: sidecar.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { host: HOST, authorization: `DPoP ${token}`, dpop: await dpopProof(key, 'GET', HTU, { token, claims }) } });

  test('no nonce: 401 use_dpop_nonce with a fresh DPoP-Nonce; with it: 200; a made-up one: 401 again', async () => {
    const first = await send();
    assert.equal(first.status, 401);
    assert.equal(first.json.error, 'use_dpop_nonce');
    assert.match(String(first.headers['www-authenticate']), /^DPoP .*error="use_dpop_nonce"/);
    const nonce = String(first.headers['dpop-nonce']);
    assert.match(nonce, /^[A-Za-z0-9_-]{20,}$/);
    assert.equal((await send({ nonce })).status, 200);
    const stale = await send({ nonce: 'made-up-nonce-value-000000000000' });
    assert.equal(stale.status, 401);
    assert.equal(stale.json.error, 'use_dpop_nonce');
  });

  test('a replica with the same secret accepts the nonce another one issued', async () => {
    const other = await startSidecar({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_SENDER_CONSTRAINTS: 'dpop', PHANTOM_PUBLIC_HOSTS: HOST, PHANTOM_DPOP_NONCE: 'true', PHANTOM_DPOP_NONCE_SECRET: 'a-nonce-secret-every-replica-shares-0123' });
    try {
      const nonce = String((await send()).headers['dpop-nonce']);
      const response = await call({ port: other.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { host: HOST, authorization: `DPoP ${token}`, dpop: await dpopProof(key, 'GET', HTU, { token, claims: { nonce } }) } });
      assert.equal(response.status, 200);
    } finally {
      await other.stop();
    }
  });

  test('only DPoP accepted: a certificate-bound token is refused, and the challenge is DPoP alone', async () => {
    const bound = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    const response = await call({ port: sidecar.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { host: HOST, authorization: `Bearer ${bound}` } });
    assert.equal(response.status, 401);
    assert.match(String(response.headers['www-authenticate']), /^DPoP realm=/);
  });
});

describe('a DPoP proof cannot be a CPU lever', () => {
  let stack: Stack;
  let sidecar: RunningSidecar;
  let token: string;

  before(async () => {
    stack = await startStack(() => ({ PHANTOM_SENDER_CONSTRAINTS: 'mtls dpop', PHANTOM_PUBLIC_HOSTS: HOST, PHANTOM_MAX_FAILED_TOKENS_PER_MIN: '5' }));
    sidecar = stack.sidecar;
    token = await dpopBoundToken(stack.as, stack.pki.partnerA, stack.pki, key);
  });
  after(() => stack?.stop());

  const send = (proof: string): Promise<CallResult> =>
    call({ port: sidecar.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { host: HOST, authorization: `DPoP ${token}`, dpop: proof } });
  const detailOf = async (response: CallResult): Promise<unknown> => (await accessLineFor(sidecar.logs, response)).detail;

  test('an RSA key with another exponent than 65537, or outside 2048-4096 bits, is refused before any signature work', async () => {
    const oddExponent = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 });
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    // Signed by another key than the one named: were the signature checked first, the detail would say so.
    const forged = (publicKey: typeof key.publicKey) => dpopProof({ privateKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, publicKey }, 'GET', HTU, { token, alg: 'PS256' });
    const exponent = await send(await forged(oddExponent.publicKey));
    assert.equal(exponent.status, 401);
    assert.equal(await detailOf(exponent), 'jwk_rsa_exponent');
    const size = await send(await forged(small.publicKey));
    assert.equal(await detailOf(size), 'jwk_rsa_size');
    // A made-up 8,000-bit modulus: nothing to sign with, nothing is verified.
    const huge = { kty: 'RSA', e: 'AQAB', n: Buffer.alloc(1000, 0xff).toString('base64url') };
    const header = Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'PS256', jwk: huge })).toString('base64url');
    const payload = Buffer.from(JSON.stringify({ htm: 'GET', htu: HTU, iat: Math.floor(Date.now() / 1000), jti: 'x' })).toString('base64url');
    const oversized = await send(`${header}.${payload}.${Buffer.alloc(1000).toString('base64url')}`);
    assert.equal(await detailOf(oversized), 'jwk_rsa_size');
  });

  test('a proof this pod has already accepted is refused as a replay without being verified again', async () => {
    const proof = await dpopProof(key, 'GET', HTU, { token });
    assert.equal((await send(proof)).status, 200);
    const replay = await send(proof);
    assert.equal((await accessLineFor(sidecar.logs, replay)).reason, 'dpop_proof_replayed');
  });

  test('refused proofs spend the partner\'s failure budget: past it, 429 and no signature is checked', async () => {
    // The earlier tests of this describe spent some of the 5; a bad signature spends one more each.
    let refusals = 0;
    for (; refusals < 6; refusals += 1) {
      const refused = await send(await dpopProof({ privateKey: otherKey.privateKey, publicKey: key.publicKey }, 'GET', HTU, { token }));
      if (refused.status === 429) break;
      assert.equal(refused.status, 401);
      assert.equal(await detailOf(refused), 'signature');
    }
    assert.ok(refusals >= 1 && refusals <= 5, `${refusals} refusals before the budget ran out`);
    const limited = await send(await dpopProof({ privateKey: otherKey.privateKey, publicKey: key.publicKey }, 'GET', HTU, { token }));
    assert.equal(limited.status, 429);
    assert.equal((await accessLineFor(sidecar.logs, limited)).reason, 'failed_token_limit');
    assert.match(String(limited.headers['retry-after']), /^[1-9]\d*$/);
  });
});
