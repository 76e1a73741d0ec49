import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, UnsecuredJWT } from 'jose';
import { AuthorizationServerUnavailable } from '../../src/errors.ts';
import { IntrospectionClient } from '../../src/authorization-server/introspection-client.ts';
import { parseIntrospectionJson } from '../../src/introspection/answer.ts';
import { asJwtAnswer, jsonAnswer, parseAsJwtAnswer } from '../../src/authorization-server/answer-format.ts';
import { basicCredentials, clientSecretBasic } from '../../src/authorization-server/client-auth.ts';
import { json, startFakeAuthorizationServer, type FakeAuthorizationServer } from '../support/fake-as.ts';
import { issueServerCertificate, makePki } from '../support/pki.ts';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const pki = makePki();
let fake: FakeAuthorizationServer;
before(async () => {
  fake = await startFakeAuthorizationServer(pki);
});
after(() => fake.stop());

const unavailable = (reason: string, detail?: string) => (error: unknown) =>
  error instanceof AuthorizationServerUnavailable && error.reason === reason && (detail === undefined || error.detail === detail);

const clientAt = (url: string, mode: 'mint' | 'as-jwt' = 'mint', overrides: { ca?: string; timeoutMs?: number } = {}) =>
  new IntrospectionClient(
    { ca: 'ca' in overrides ? overrides.ca : pki.ca, timeoutMs: overrides.timeoutMs ?? 1000, connections: 8 },
    { endpoint: () => new URL(url), auth: clientSecretBasic('side:car', 's%cr t'), format: mode === 'as-jwt' ? asJwtAnswer : jsonAnswer },
  );
const client = (mode: 'mint' | 'as-jwt' = 'mint', overrides: { ca?: string; timeoutMs?: number } = {}) => clientAt(fake.url, mode, overrides);

test('only the JSON boolean true is active; other values are the AS\'s fault', () => {
  assert.deepEqual(parseIntrospectionJson({ active: false, sub: 'x' }), { active: false });
  assert.deepEqual(parseIntrospectionJson({ active: true, client_id: 'c', username: 'alice', email: 'a@b' }), { active: true, claims: { client_id: 'c' } });
  for (const body of [{ active: 'true' }, { active: 1 }, {}, [], null, 'active', { active: true, exp: '123' }, { active: true, cnf: 'x' }, { active: true, cnf: { 'x5t#S256': 7 } }, { active: true, aud: [1] }]) {
    assert.throws(() => parseIntrospectionJson(body), unavailable('as_malformed_response'), JSON.stringify(body));
  }
});

test('client credentials are form-urlencoded before Basic encoding (RFC 6749 §2.3.1)', () => {
  const decoded = Buffer.from(basicCredentials('side:car', 's%cr t').slice('Basic '.length), 'base64').toString();
  assert.equal(decoded, 'side%3Acar:s%25cr+t');
});

test('the request: POST form with token and hint, Basic auth, JSON accepted, token never in the URL', async () => {
  fake.handle = (_r, res) => json(res, { active: true, client_id: 'partner-a', scope: 'accounts', cnf: { 'x5t#S256': 'abc' } });
  const result = await client().introspect('tok+/=');
  assert.deepEqual(result, { active: true, claims: { client_id: 'partner-a', scope: 'accounts', cnf: { 'x5t#S256': 'abc' } } });
  const seen = fake.seen.at(-1)!;
  assert.equal(seen.method, 'POST');
  assert.equal(seen.url, '/oauth/introspect');
  assert.equal(seen.headers['content-type'], 'application/x-www-form-urlencoded');
  assert.equal(seen.headers.accept, 'application/json');
  assert.equal(seen.headers.authorization, basicCredentials('side:car', 's%cr t'));
  assert.deepEqual(Object.fromEntries(new URLSearchParams(seen.body)), { token: 'tok+/=', token_type_hint: 'access_token' });
});

const faults: [string, (res: import('node:http').ServerResponse) => void, string][] = [
  ['a 500', (res) => json(res, { error: 'server_error' }, 500), 'as_error_status'],
  ['a 400', (res) => json(res, { error: 'invalid_request' }, 400), 'as_error_status'],
  ['our credentials refused (401)', (res) => json(res, { error: 'invalid_client' }, 401), 'as_rejected_sidecar_credentials'],
  ['our credentials refused (403)', (res) => json(res, {}, 403), 'as_rejected_sidecar_credentials'],
  ['HTML instead of JSON', (res) => json(res, '<html>active</html>', 200, 'text/html'), 'as_malformed_response'],
  ['truncated JSON', (res) => json(res, '{"active": tr'), 'as_malformed_response'],
  ['"active": "true"', (res) => json(res, { active: 'true' }), 'as_malformed_response'],
  ['an endless body', (res) => json(res, `{"active":true,"x":"${'a'.repeat(100_000)}"}`), 'as_malformed_response'],
  ['a hang', () => undefined, 'as_timeout'],
  ['headers then a stalled body', (res) => { res.writeHead(200, { 'content-type': 'application/json' }); res.write('{"active":'); }, 'as_timeout'],
  ['a dropped connection', (res) => res.socket?.destroy(), 'as_unreachable'],
];
for (const [name, respond, reason] of faults) {
  test(`${name} is AuthorizationServerUnavailable (${reason})`, async () => {
    fake.handle = (_r, res) => respond(res);
    await assert.rejects(client('mint', { timeoutMs: 300 }).introspect('t'), unavailable(reason));
  });
}

test('a connection closed under a request is retried once; twice is a failure', async () => {
  let dropped = 0;
  fake.handle = (_r, res) => {
    if (dropped === 0) {
      dropped += 1;
      res.socket?.destroy();
      return;
    }
    json(res, { active: false });
  };
  const before = fake.seen.length;
  assert.deepEqual(await client().introspect('t'), { active: false });
  assert.equal(fake.seen.length - before, 2);
});

test('an authorization server whose certificate is not trusted is never asked', async () => {
  fake.handle = (_r, res) => json(res, { active: true });
  const before = fake.seen.length;
  await assert.rejects(client('mint', { ca: pki.partnerA.cert }).introspect('t'), unavailable('as_unreachable'));
  assert.equal(fake.seen.length, before);
});

test('an authorization server whose certificate names another host is never asked', async () => {
  // A server certificate from the trusted CA, but for another name than the one dialled.
  const other = issueServerCertificate(pki, mkdtempSync(join(tmpdir(), 'phantom-host-')), 'elsewhere', 'DNS:elsewhere.example');
  const impostor = await startFakeAuthorizationServer(pki, { cert: readFileSync(other.cert, 'utf8'), key: readFileSync(other.key, 'utf8') });
  try {
    const wrongHost = clientAt(impostor.url);
    await assert.rejects(wrongHost.introspect('t'), unavailable('as_unreachable', 'ERR_TLS_CERT_ALTNAME_INVALID'));
    assert.equal(impostor.seen.length, 0);
  } finally {
    await impostor.stop();
  }
});

test('a refused connection is AuthorizationServerUnavailable', async () => {
  const closed = clientAt('https://127.0.0.1:1/x', 'mint', { timeoutMs: 500 });
  await assert.rejects(closed.introspect('t'), unavailable('as_unreachable', 'ECONNREFUSED'));
});

const signer = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const asJwt = () => new SignJWT({ client_id: 'partner-a', scope: 'accounts', cnf: { 'x5t#S256': 'abc' }, exp: 2_000_000_000 }).setProtectedHeader({ alg: 'ES256', typ: 'at+jwt' }).sign(signer);

test('as-jwt: asks for application/jwt and takes Curity\'s body, Keycloak\'s jwt or a phantom_token member', async () => {
  const jwt = await asJwt();
  const expected = { active: true, claims: { client_id: 'partner-a', scope: 'accounts', cnf: { 'x5t#S256': 'abc' }, exp: 2_000_000_000 }, jwt };
  fake.handle = (_r, res) => json(res, `${jwt}\n`, 200, 'application/jwt');
  assert.deepEqual(await client('as-jwt').introspect('t'), expected);
  assert.equal(fake.seen.at(-1)!.headers.accept, 'application/jwt');
  fake.handle = (_r, res) => json(res, { active: true, jwt });
  assert.deepEqual(await client('as-jwt').introspect('t'), expected);
  fake.handle = (_r, res) => json(res, { phantom_token: jwt });
  assert.deepEqual(await client('as-jwt').introspect('t'), expected);
});

test('as-jwt: 204 (Curity) and active:false are inactive; any other shape fails closed', async () => {
  fake.handle = (_r, res) => { res.statusCode = 204; res.end(); };
  assert.deepEqual(await client('as-jwt').introspect('t'), { active: false });
  fake.handle = (_r, res) => json(res, { active: false });
  assert.deepEqual(await client('as-jwt').introspect('t'), { active: false });
  const unsigned = new UnsecuredJWT({ client_id: 'x' }).encode();
  for (const [body, type] of [[{ active: true }, 'application/json'], ['not.a.jwt', 'application/jwt'], [unsigned, 'application/jwt'], ['x', 'text/plain']] as const) {
    fake.handle = (_r, res) => json(res, body, 200, type);
    await assert.rejects(client('as-jwt').introspect('t'), unavailable('as_malformed_response'), JSON.stringify(body));
  }
});

test('parseAsJwtAnswer refuses a JSON body it cannot read', () => {
  assert.throws(() => parseAsJwtAnswer(200, 'application/json', '{'), unavailable('as_malformed_response'));
});
