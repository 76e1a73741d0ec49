// FAPI 2.0 towards the authorization server, against the real oidc-provider over HTTPS: each
// client authentication method, discovery, and RFC 9701 signed answers (a scripted AS only for
// the forgeries a real one will not make).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompactEncrypt, SignJWT, UnsecuredJWT, calculateJwkThumbprint, exportJWK } from 'jose';
import type { RunningAuthorizationServer } from '../../deploy/authorization-server/server.ts';
import { SIDECAR_CLIENT, partnerToken, startTestAuthorizationServer } from '../support/as.ts';
import { call } from '../support/client.ts';
import { boundAnswer, json, startFakeAuthorizationServer, type FakeAuthorizationServer } from '../support/fake-as.ts';
import { issueClientCertificate, makePki } from '../support/pki.ts';
import { freePort } from '../support/ports.ts';
import { accessLineFor, baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstream.ts';

const pki = makePki();
const dir = mkdtempSync(join(tmpdir(), 'phantom-as-auth-'));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function pemKey(key: KeyObject, name: string): string {
  const path = join(dir, name);
  writeFileSync(path, key.export({ type: 'pkcs8', format: 'pem' }));
  return path;
}
const signingKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const signingKeyFile = pemKey(signingKey, 'sidecar-assertion.key');
const otherKeyFile = pemKey(otherKey, 'other-assertion.key');
const tlsClient = issueClientCertificate(pki, dir, 'sidecar-client', '/O=phantom-sidecar development/CN=sidecar-client');
const otherTlsClient = issueClientCertificate(pki, dir, 'someone-else', '/O=phantom-sidecar development/CN=someone-else');
const selfSigned = issueClientCertificate(pki, dir, 'sidecar-self', '/CN=sidecar-self', { selfSigned: true });

/** The public JWK a client registers: its kid the RFC 7638 thumbprint, as the sidecar sends it. */
async function registeredJwk(key: KeyObject): Promise<Record<string, unknown>> {
  const jwk = await exportJWK(createPublicKey(key));
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), alg: 'ES256', use: 'sig' };
}

const moreIntrospectors = async () => [
  { clientId: 'sidecar-post', method: 'client_secret_post' as const, clientSecret: 'post-secret-0123456789' },
  { clientId: 'sidecar-pkjwt', method: 'private_key_jwt' as const, publicJwk: await registeredJwk(signingKey) },
  { clientId: 'sidecar-tls', method: 'tls_client_auth' as const, subjectDn: 'CN=sidecar-client,O=phantom-sidecar development' },
  { clientId: 'sidecar-self', method: 'self_signed_tls_client_auth' as const, certificate: readFileSync(selfSigned.cert, 'utf8') },
];

const noSecret = { PHANTOM_INTROSPECTION_CLIENT_SECRET: '' };
const methods = (as: RunningAuthorizationServer): [string, Record<string, string>][] => [
  ['client_secret_basic', {}],
  ['client_secret_post', { PHANTOM_INTROSPECTION_AUTH: 'client_secret_post', PHANTOM_INTROSPECTION_CLIENT_ID: 'sidecar-post', PHANTOM_INTROSPECTION_CLIENT_SECRET: 'post-secret-0123456789' }],
  ['private_key_jwt', { ...noSecret, PHANTOM_INTROSPECTION_AUTH: 'private_key_jwt', PHANTOM_INTROSPECTION_CLIENT_ID: 'sidecar-pkjwt', PHANTOM_INTROSPECTION_CLIENT_KEY_FILE: signingKeyFile, PHANTOM_AS_ISSUER: as.issuer, PHANTOM_INTROSPECTION_URL: as.introspectionUrl }],
  ['tls_client_auth', { ...noSecret, PHANTOM_INTROSPECTION_AUTH: 'tls_client_auth', PHANTOM_INTROSPECTION_CLIENT_ID: 'sidecar-tls', PHANTOM_INTROSPECTION_CLIENT_CERT: tlsClient.cert, PHANTOM_INTROSPECTION_CLIENT_CERT_KEY: tlsClient.key }],
  ['self_signed_tls_client_auth', { ...noSecret, PHANTOM_INTROSPECTION_AUTH: 'self_signed_tls_client_auth', PHANTOM_INTROSPECTION_CLIENT_ID: 'sidecar-self', PHANTOM_INTROSPECTION_CLIENT_CERT: selfSigned.cert, PHANTOM_INTROSPECTION_CLIENT_CERT_KEY: selfSigned.key }],
];

// One real AS (with an introspecting client per method) and one echo API for the suites below
// that need no AS of their own.
let as: RunningAuthorizationServer;
let upstream: EchoUpstream;
before(async () => {
  as = await startTestAuthorizationServer(pki, { moreIntrospectors: await moreIntrospectors() });
  upstream = await startEchoUpstream();
});
after(async () => {
  await upstream?.stop();
  await as?.stop();
});

describe('client authentication at the real oidc-provider', () => {
  async function outcome(env: Record<string, string>): Promise<{ status: number; reason: unknown }> {
    const sidecar = await startSidecar({ ...baseEnv(pki, upstream.url, as.introspectionUrl), ...env });
    try {
      const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
      const response = await call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });
      return { status: response.status, reason: (await accessLineFor(sidecar.logs, response)).reason };
    } finally {
      await sidecar.stop();
    }
  }

  test('each of the five methods authenticates the sidecar and the partner gets through', async () => {
    for (const [method, env] of methods(as)) {
      const asked = as.requests.get('/token/introspection') ?? 0;
      assert.deepEqual(await outcome(env), { status: 200, reason: undefined }, method);
      assert.equal(as.requests.get('/token/introspection'), asked + 1, method);
    }
  });

  const refusals = (as: RunningAuthorizationServer): [string, Record<string, string>][] => {
    const [, , pkjwt, tls, self] = methods(as).map(([, env]) => env);
    return [
      ['private_key_jwt signed with another key', { ...pkjwt, PHANTOM_INTROSPECTION_CLIENT_KEY_FILE: otherKeyFile }],
      ['tls_client_auth with another certificate', { ...tls, PHANTOM_INTROSPECTION_CLIENT_CERT: otherTlsClient.cert, PHANTOM_INTROSPECTION_CLIENT_CERT_KEY: otherTlsClient.key }],
      ['self_signed_tls_client_auth with a certificate not registered', { ...self, PHANTOM_INTROSPECTION_CLIENT_CERT: otherTlsClient.cert, PHANTOM_INTROSPECTION_CLIENT_CERT_KEY: otherTlsClient.key }],
      ['client_secret_basic for a client registered for private_key_jwt', { PHANTOM_INTROSPECTION_CLIENT_ID: 'sidecar-pkjwt' }],
      ['private_key_jwt for a client registered for tls_client_auth', { ...pkjwt, PHANTOM_INTROSPECTION_CLIENT_ID: 'sidecar-tls' }],
    ];
  };

  test('each fails closed with 503 when the AS refuses it, and the partner is not blamed', async () => {
    for (const [name, env] of refusals(as)) {
      assert.deepEqual(await outcome(env), { status: 503, reason: 'as_rejected_sidecar_credentials' }, name);
    }
  });
});

describe('the sidecar\'s client certificate renewed in place', () => {
  test('a renewed certificate is presented on new connections to the AS without a restart; a pair that does not match is ignored', async () => {
    const live = mkdtempSync(join(tmpdir(), 'phantom-client-cert-'));
    const place = (pair: { cert: string; key: string }) => {
      writeFileSync(join(live, 'client.key'), readFileSync(pair.key));
      writeFileSync(join(live, 'client.pem'), readFileSync(pair.cert));
    };
    place(tlsClient);
    const sidecar = await startSidecar({
      ...baseEnv(pki, upstream.url, as.introspectionUrl),
      ...noSecret,
      PHANTOM_INTROSPECTION_AUTH: 'tls_client_auth',
      PHANTOM_INTROSPECTION_CLIENT_ID: 'sidecar-tls',
      PHANTOM_INTROSPECTION_CLIENT_CERT: join(live, 'client.pem'),
      PHANTOM_INTROSPECTION_CLIENT_CERT_KEY: join(live, 'client.key'),
      PHANTOM_TLS_RELOAD_INTERVAL_S: '1',
    });
    const status = async () =>
      (await call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${await partnerToken(as, 'partner-a', pki.partnerA, pki)}` } })).status;
    try {
      assert.equal(await status(), 200);
      // Another subject: once picked up, the AS no longer recognises the sidecar.
      place(otherTlsClient);
      await sleep(1300);
      assert.equal(await status(), 503);
      // Renewed for the registered subject with a new key: recognised again.
      place(issueClientCertificate(pki, dir, 'sidecar-client-renewed', '/O=phantom-sidecar development/CN=sidecar-client'));
      await sleep(1300);
      assert.equal(await status(), 200);
      // Half written (a key that does not match): ignored, the current pair stays.
      writeFileSync(join(live, 'client.key'), readFileSync(otherTlsClient.key));
      await sleep(1300);
      assert.equal(await status(), 200);
      assert.ok(sidecar.logs.some((line) => line.includes('client certificate files do not check out')));
    } finally {
      await sidecar.stop();
    }
  });
});

describe('discovery (RFC 8414, OpenID Discovery)', () => {
  const discovering = (issuer: string): Record<string, string> => ({
    ...noSecret,
    PHANTOM_INTROSPECTION_URL: '',
    PHANTOM_AS_ISSUER: issuer,
    PHANTOM_INTROSPECTION_AUTH: 'private_key_jwt',
    PHANTOM_INTROSPECTION_CLIENT_ID: 'sidecar-pkjwt',
    PHANTOM_INTROSPECTION_CLIENT_KEY_FILE: signingKeyFile,
    PHANTOM_INTROSPECTION_RESPONSE: 'jwt',
  });

  test('the introspection endpoint and the JWKS come from the metadata; signed answers verify end to end', async () => {
    const sidecar = await startSidecar({ ...baseEnv(pki, upstream.url, 'https://unused.invalid/'), ...discovering(as.issuer) });
    try {
      for (let waited = 0; !sidecar.ready() && waited < 5000; waited += 50) await sleep(50);
      assert.equal(sidecar.ready(), true);
      const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
      const response = await call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });
      assert.equal(response.status, 200);
      assert.ok((as.requests.get('/jwks') ?? 0) >= 1, 'the AS\'s JWKS was fetched from the metadata\'s jwks_uri');
      assert.ok(sidecar.logs.some((line) => line.includes('authorization server metadata read') && line.includes('/token/introspection')));
    } finally {
      await sidecar.stop();
    }
  });

  test('metadata that names another issuer stops the start', async () => {
    const other = as.issuer.replace('127.0.0.1', 'localhost');
    const sidecar = await startSidecar({ ...baseEnv(pki, upstream.url, 'https://unused.invalid/'), ...discovering(other) });
    try {
      const error = await Promise.race([sidecar.configurationError, sleep(5000).then(() => undefined)]);
      assert.equal(error?.message, 'PHANTOM_AS_ISSUER: the metadata names another issuer');
      assert.equal(sidecar.ready(), false);
    } finally {
      await sidecar.stop();
    }
  });

  test('a method the AS does not list stops the start with a clear error', async () => {
    const narrow = await startTestAuthorizationServer(pki, { clientAuthMethods: ['client_secret_basic', 'tls_client_auth'] });
    const sidecar = await startSidecar({ ...baseEnv(pki, upstream.url, 'https://unused.invalid/'), ...discovering(narrow.issuer) });
    try {
      const error = await Promise.race([sidecar.configurationError, sleep(5000).then(() => undefined)]);
      assert.equal(error?.message, 'PHANTOM_INTROSPECTION_AUTH: private_key_jwt is not in the AS\'s token_endpoint_auth_methods_supported');
    } finally {
      await sidecar.stop();
      await narrow.stop();
    }
  });

  test('an AS that is down at start: /readyz 503, then 200 once it is up, with no restart', async () => {
    const port = await freePort();
    const issuer = `https://127.0.0.1:${port}`;
    const sidecar = await startSidecar({ ...baseEnv(pki, upstream.url, 'https://unused.invalid/'), ...discovering(issuer) });
    let late: RunningAuthorizationServer | undefined;
    try {
      const readyz = async () => (await fetch(`http://127.0.0.1:${sidecar.adminPort}/readyz`)).status;
      await sleep(700);
      assert.equal(await readyz(), 503);
      late = await startTestAuthorizationServer(pki, { port, moreIntrospectors: await moreIntrospectors() });
      for (let waited = 0; (await readyz()) !== 200 && waited < 10_000; waited += 100) await sleep(100);
      assert.equal(await readyz(), 200);
      const token = await partnerToken(late, 'partner-a', pki.partnerA, pki);
      const response = await call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });
      assert.equal(response.status, 200);
    } finally {
      await sidecar.stop();
      await late?.stop();
    }
  });

  test('the AS rotating its signing key mid-test does not break the sidecar', async () => {
    const port = await freePort();
    const [oldKey, newKey] = [generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey];
    const jwk = async (key: KeyObject, kid: string) => ({ ...(await exportJWK(key)), kid, alg: 'ES256', use: 'sig' });
    let server = await startTestAuthorizationServer(pki, { port, moreIntrospectors: await moreIntrospectors(), signingKeys: [await jwk(oldKey, 'old')] });
    const sidecar = await startSidecar({ ...baseEnv(pki, upstream.url, 'https://unused.invalid/'), ...discovering(server.issuer), PHANTOM_AS_JWKS_COOLDOWN_S: '1' });
    const asA = async (as: RunningAuthorizationServer) =>
      (await call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${await partnerToken(as, 'partner-a', pki.partnerA, pki)}` } })).status;
    try {
      for (let waited = 0; !sidecar.ready() && waited < 5000; waited += 50) await sleep(50);
      assert.equal(await asA(server), 200);
      await server.stop();
      // The new key signs; the old one is still published, as a rotation does it.
      server = await startTestAuthorizationServer(pki, { port, moreIntrospectors: await moreIntrospectors(), signingKeys: [await jwk(newKey, 'new'), await jwk(oldKey, 'old')] });
      await sleep(1100);
      assert.equal(await asA(server), 200);
    } finally {
      await sidecar.stop();
      await server.stop();
    }
  });
});

describe('RFC 9701 forgeries a real AS will not make', () => {
  let fake: FakeAuthorizationServer;
  let sidecar: RunningSidecar;
  const asKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const forger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let counter = 0;

  before(async () => {
    fake = await startFakeAuthorizationServer(pki);
    const base = fake.url.replace('/oauth/introspect', '');
    sidecar = await startSidecar({
      ...baseEnv(pki, upstream.url, fake.url),
      PHANTOM_INTROSPECTION_RESPONSE: 'jwt',
      PHANTOM_AS_JWKS_URL: `${base}/jwks`,
      PHANTOM_EXPECTED_ISSUER: 'https://as.test',
    });
  });
  after(async () => {
    await sidecar?.stop();
    await fake?.stop();
  });

  const claims = (extra: Record<string, unknown> = {}) => ({
    iss: 'https://as.test',
    aud: SIDECAR_CLIENT.clientId,
    iat: Math.floor(Date.now() / 1000),
    token_introspection: { ...boundAnswer(pki.partnerA.thumbprint), iss: 'https://as.test' },
    ...extra,
  });
  const signed = (payload: Record<string, unknown>, header: Record<string, unknown> = {}, key: KeyObject = asKey.privateKey) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'token-introspection+jwt', kid: 'as-1', ...header }).sign(key);

  async function answeredWith(body: string | (() => Promise<string>), contentType = 'application/token-introspection+jwt') {
    const text = typeof body === 'string' ? body : await body();
    fake.handle = async (request, res) => {
      if (request.url === '/jwks') return json(res, { keys: [{ ...(await exportJWK(asKey.publicKey)), kid: 'as-1', alg: 'ES256', use: 'sig' }] });
      assert.equal(request.headers.accept, 'application/token-introspection+jwt');
      json(res, text, 200, contentType);
    };
    const response = await call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer forged-${(counter += 1)}` } });
    const line = await accessLineFor(sidecar.logs, response);
    return { status: response.status, reason: line.reason, detail: line.detail };
  }

  test('a genuine signed answer passes (so each refusal below is its rule\'s)', async () => {
    assert.deepEqual(await answeredWith(() => signed(claims())), { status: 200, reason: undefined, detail: undefined });
  });

  const forgeries: [string, () => Promise<string>, string, string?][] = [
    ['signed by a key not in the AS\'s JWKS', () => signed(claims(), {}, forger.privateKey), 'signature'],
    ['signed by an unknown kid', () => signed(claims(), { kid: 'stranger' }, forger.privateKey), 'unknown_key'],
    ['alg: none', async () => new UnsecuredJWT(claims()).setIssuer('https://as.test').encode(), 'alg'],
    ['HS256 with the AS\'s public key as the secret', async () => new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', typ: 'token-introspection+jwt', kid: 'as-1' }).sign(Buffer.from(JSON.stringify(await exportJWK(asKey.publicKey)))), 'alg'],
    ['typ JWT', () => signed(claims(), { typ: 'JWT' }), 'claim_typ'],
    ['aud another client', () => signed(claims({ aud: 'someone-else' })), 'claim_aud'],
    ['iss another AS', () => signed(claims({ iss: 'https://evil.test' })), 'claim_iss'],
    ['iat ten minutes old', () => signed(claims({ iat: Math.floor(Date.now() / 1000) - 600 })), 'claim_iat'],
    ['iat ten minutes ahead', () => signed(claims({ iat: Math.floor(Date.now() / 1000) + 600 })), 'claim_iat'],
    ['no token_introspection', () => signed({ ...claims(), token_introspection: undefined }), 'no_token_introspection', 'as_malformed_response'],
    ['"active": "true" inside', () => signed(claims({ token_introspection: { ...boundAnswer(pki.partnerA.thumbprint), active: 'true' } })), undefined as unknown as string, 'as_malformed_response'],
    ['an encrypted answer (JWE)', async () => new CompactEncrypt(new TextEncoder().encode('x')).setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM' }).encrypt(asKey.publicKey), 'encrypted'],
  ];
  for (const [name, body, detail, reason = 'as_unverified_response'] of forgeries) {
    test(`${name}: 503, nothing forwarded, the log says which rule failed`, async () => {
      const before = upstream.received.length;
      const result = await answeredWith(body);
      assert.equal(result.status, 503);
      assert.equal(result.reason, reason);
      if (detail !== undefined) assert.equal(result.detail, detail);
      assert.equal(upstream.received.length, before);
    });
  }

  test('a plain JSON answer where a signed one was asked for is a downgrade: 503', async () => {
    assert.deepEqual(await answeredWith(JSON.stringify(boundAnswer(pki.partnerA.thumbprint)), 'application/json'), { status: 503, reason: 'as_unverified_response', detail: 'not_signed' });
  });
});
