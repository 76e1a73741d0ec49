import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { SignJWT, exportJWK } from 'jose';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log.ts';
import { CAEP, RISC, SsfReceiver, memoryJtiLedger, TOKEN_REVOKED, subjectKeys } from '../../src/fleet/ssf-receiver.ts';
import { json, startFakeAuthorizationServer, type FakeAuthorizationServer } from '../support/fake-as.ts';
import { makePki } from '../support/pki.ts';

const pki = makePki();
const quiet = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));
const transmitter = generateKeyPairSync('ec', { namedCurve: 'P-256' });
let fake: FakeAuthorizationServer;
let revoked: string[][];
let receiver: SsfReceiver;

before(async () => {
  fake = await startFakeAuthorizationServer(pki);
  fake.handle = async (_request, res) => json(res, { keys: [{ ...(await exportJWK(transmitter.publicKey)), kid: 't1', alg: 'ES256' }] });
  revoked = [];
  receiver = new SsfReceiver(
    { issuer: 'https://as.test', jwksUrl: new URL(fake.url.replace('/oauth/introspect', '/jwks')), audience: 'https://api.test', ca: pki.ca, authToken: 'push-secret' },
    { revoke: async (subjects) => void revoked.push(subjects) },
    memoryJtiLedger(),
    quiet,
  );
});
after(async () => {
  await receiver.close();
  await fake.stop();
});

const set = (events: Record<string, unknown>, claims: Record<string, unknown> = {}) =>
  new SignJWT({ jti: `j-${Math.random()}`, iss: 'https://as.test', aud: 'https://api.test', events, ...claims }).setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 't1' }).setIssuedAt().sign(transmitter.privateKey);
const push = async (body: string, authorization: string | null = 'Bearer push-secret', contentType = 'application/secevent+jwt') => receiver.receive(contentType, authorization ?? undefined, body);

test('subject identifiers become the cache\'s subject keys (RFC 9493)', () => {
  assert.deepEqual(subjectKeys({ format: 'iss_sub', iss: 'https://as', sub: 'u1' }, `${CAEP}session-revoked`), ['iss_sub:https://as|u1']);
  assert.deepEqual(subjectKeys({ format: 'opaque', id: 'partner-a' }, `${RISC}account-disabled`), ['opaque:partner-a']);
  assert.deepEqual(subjectKeys({ format: 'opaque', id: 'hash' }, TOKEN_REVOKED), ['token:hash']);
  assert.deepEqual(subjectKeys({ format: 'complex', user: { format: 'opaque', id: 'u2' } }, `${CAEP}credential-change`), ['opaque:u2']);
  assert.deepEqual(subjectKeys({ format: 'email', email: 'a@b' }, `${CAEP}session-revoked`), []);
  assert.deepEqual(subjectKeys({ format: 'aliases', identifiers: [{ format: 'email', email: 'a@b' }, { format: 'iss_sub', iss: 'https://as', sub: 'u3' }] }, `${CAEP}session-revoked`), ['iss_sub:https://as|u3']);
});

test('a revoking event whose subject cannot be applied is answered 400 with the reason, never acknowledged and dropped', async () => {
  revoked.length = 0;
  for (const subject of [{ format: 'email', email: 'user@example.com' }, { format: 'account', uri: 'acct:user@example.com' }, { format: 'aliases', identifiers: [{ format: 'email', email: 'a@b' }] }]) {
    const answer = await push(await set({ [`${CAEP}session-revoked`]: {} }, { sub_id: subject }));
    assert.equal(answer.status, 400, JSON.stringify(subject));
    assert.equal(answer.body?.err, 'invalid_request');
    assert.match(answer.body?.description ?? '', new RegExp(`format ${subject.format}`));
    assert.ok(!(answer.body?.description ?? '').includes('user@example.com'), 'the subject itself is not echoed');
  }
  const aliases = await push(await set({ [`${CAEP}session-revoked`]: {} }, { sub_id: { format: 'aliases', identifiers: [{ format: 'email', email: 'a@b' }, { format: 'opaque', id: 'u9' }] } }));
  assert.equal(aliases.status, 202);
  assert.deepEqual(revoked, [['opaque:u9']]);
});

test('an unreachable transmitter: one fetch for a burst of pushes, with a deadline, and its failure remembered', async () => {
  const { createServer } = await import('node:net');
  let connections = 0;
  const sockets: import('node:net').Socket[] = [];
  // Accepts and never answers: the worst a transmitter's configuration endpoint can do.
  const hanging = createServer((socket) => {
    connections += 1;
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
  const port = (hanging.address() as import('node:net').AddressInfo).port;
  const stalled = new SsfReceiver({ issuer: `https://127.0.0.1:${port}`, jwksUrl: undefined, audience: 'https://api.test', ca: pki.ca, authToken: undefined }, { revoke: async () => undefined }, memoryJtiLedger(), quiet);
  try {
    const body = await set({ [`${CAEP}session-revoked`]: {} }, { sub_id: { format: 'opaque', id: 'u' } });
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 50 }, () => stalled.receive('application/secevent+jwt', undefined, body)));
    assert.deepEqual([...new Set(answers.map((answer) => answer.status))], [503]);
    assert.ok(Date.now() - started < 5000, `the fetch took ${Date.now() - started} ms`);
    assert.equal(connections, 1, 'one connection for fifty pushes');
    const again = Date.now();
    assert.equal((await stalled.receive('application/secevent+jwt', undefined, body)).status, 503);
    assert.ok(Date.now() - again < 100, 'the failure is remembered, not retried at once');
    assert.equal(connections, 1);
  } finally {
    await stalled.close();
    for (const socket of sockets) socket.destroy();
    hanging.close();
  }
});

test('the push bearer token and the media type are required', async () => {
  const body = await set({ [`${CAEP}session-revoked`]: {} }, { sub_id: { format: 'opaque', id: 'u' } });
  assert.deepEqual(await push(body, null), { status: 400, body: { err: 'authentication_failed', description: 'The request is not authenticated' } });
  assert.deepEqual(await push(body, 'Bearer wrong'), { status: 400, body: { err: 'authentication_failed', description: 'The request is not authenticated' } });
  assert.equal((await push(body, 'Bearer push-secret', 'application/json')).status, 400);
});

test('SSF 1.0 sub_id and the older event subject both work; unknown events are acknowledged and ignored', async () => {
  revoked.length = 0;
  assert.equal((await push(await set({ [`${CAEP}session-revoked`]: {} }, { sub_id: { format: 'iss_sub', iss: 'https://as.test', sub: 'u1' } }))).status, 202);
  assert.equal((await push(await set({ [`${RISC}credential-compromise`]: { subject: { format: 'opaque', id: 'partner-b' } } }))).status, 202);
  const hash = createHash('sha256').update('a-token').digest('base64url');
  assert.equal((await push(await set({ [TOKEN_REVOKED]: { subject: { format: 'opaque', id: hash } } }))).status, 202);
  assert.equal((await push(await set({ 'https://example.com/event-type/unknown': { subject: { format: 'opaque', id: 'x' } } }))).status, 202);
  assert.deepEqual(revoked, [['iss_sub:https://as.test|u1'], ['opaque:partner-b'], [`token:${hash}`]]);
});

test('a SET from another issuer, for another audience, unsigned by the transmitter or replayed is 400 and revokes nothing', async () => {
  revoked.length = 0;
  const events = { [`${CAEP}session-revoked`]: { subject: { format: 'opaque', id: 'u' } } };
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assert.equal((await push(await set(events, { iss: 'https://evil.test' }))).body?.err, 'invalid_issuer');
  assert.equal((await push(await set(events, { aud: 'https://other.test' }))).body?.err, 'invalid_audience');
  const forged = await new SignJWT({ jti: 'f', events }).setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 't1' }).setIssuer('https://as.test').setAudience('https://api.test').setIssuedAt().sign(other.privateKey);
  assert.equal((await push(forged)).body?.err, 'invalid_key');
  const once = await set(events);
  assert.equal((await push(once)).status, 202);
  assert.equal((await push(once)).body?.err, 'invalid_request');
  assert.equal(revoked.length, 1);
});

test('a fleet that cannot take the event: 503, and the same SET is taken when it is sent again', async () => {
  const failing = new SsfReceiver(
    { issuer: 'https://as.test', jwksUrl: new URL(fake.url.replace('/oauth/introspect', '/jwks')), audience: 'https://api.test', ca: pki.ca, authToken: undefined },
    { revoke: async () => { throw new Error('redis unavailable'); } },
    memoryJtiLedger(),
    quiet,
  );
  try {
    const body = await set({ [`${CAEP}session-revoked`]: { subject: { format: 'opaque', id: 'u' } } });
    const answer = await failing.receive('application/secevent+jwt', undefined, body);
    assert.equal(answer.status, 503);
    assert.match(answer.body?.description ?? '', /the fleet did not get it/);
    assert.equal((await failing.receive('application/secevent+jwt', undefined, body)).status, 503, 'not recorded as seen');
  } finally {
    await failing.close();
  }
});
