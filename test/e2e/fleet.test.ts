// The fleet: three sidecars sharing a real redis-server, the real oidc-provider as the
// authorization server and as the Shared Signals transmitter. One introspection per token
// per cluster; a revocation at the AS refused at every pod within a second; forged events
// refused; Redis stopped and started again mid-test without anything failing open.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Agent } from 'node:https';
import { SignJWT } from 'jose';
import { API_AUDIENCE, dpopBoundToken, dpopProof, partnerToken, postForm } from '../support/as.ts';
import { call } from '../support/client.ts';
import { REDIS_MISSING, redisAvailable, startRedis, type RunningRedis } from '../support/redis.ts';
import { accessLineFor, baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const available = redisAvailable();
if (!available && process.env.CI === 'true') throw new Error(REDIS_MISSING);
if (!available) process.stdout.write(`# skipped: ${REDIS_MISSING}\n`);

describe('a fleet of three sidecars on one Redis', { skip: available ? false : REDIS_MISSING }, () => {
  let stack: Stack;
  let redis: RunningRedis;
  let pods: RunningSidecar[];

  before(async () => {
    redis = await startRedis();
    stack = await startStack();
    const env = {
      ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl),
      PHANTOM_REDIS_URL: redis.url,
      PHANTOM_REDIS_TIMEOUT_MS: '200',
      PHANTOM_CACHE_DEGRADED_TTL_S: '1',
      PHANTOM_SSF_ISSUER: stack.as.issuer,
      PHANTOM_SSF_AUDIENCE: API_AUDIENCE,
    };
    pods = await Promise.all([startSidecar(env), startSidecar(env), startSidecar(env)]);
    // The transmitter pushes to one endpoint, as a Kubernetes Service would route it to one pod.
    stack.as.ssfReceivers.push(`http://127.0.0.1:${pods[0]!.adminPort}/ssf/events`);
    for (let waited = 0; waited < 5000; waited += 50) {
      const up = await Promise.all(pods.map(async (pod) => (await fetch(`http://127.0.0.1:${pod.adminPort}/metrics`).then((r) => r.text())).includes('phantom_redis_connected 1')));
      if (up.every(Boolean)) break;
      await sleep(50);
    }
  });
  after(async () => {
    for (const pod of pods ?? []) await pod.stop();
    await stack?.stop();
    await redis?.stop();
  });

  const asA = (pod: RunningSidecar, token: string, agent: Agent | false = false) =>
    call({ port: pod.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, agent, headers: { authorization: `Bearer ${token}` } });

  test('300 concurrent requests with one fresh token over three sidecars make exactly one introspection', async () => {
    const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    const before = stack.introspections();
    const agents = pods.map(() => new Agent({ keepAlive: true, maxSockets: 50 }));
    try {
      const responses = await Promise.all(Array.from({ length: 300 }, (_, i) => asA(pods[i % 3]!, token, agents[i % 3])));
      assert.deepEqual([...new Set(responses.map((response) => response.status))], [200]);
    } finally {
      for (const agent of agents) agent.destroy();
    }
    assert.equal(stack.introspections() - before, 1);
  });

  test('a token revoked at the AS is refused at all three pods within a second (Shared Signals push)', async () => {
    const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    for (const pod of pods) assert.equal((await asA(pod, token)).status, 200);
    const deliveries = stack.as.ssfDeliveries.length;
    const revoked = await postForm(stack.as.revocationUrl, { token, client_id: 'partner-a' }, stack.pki.partnerA, stack.pki);
    assert.equal(revoked.status, 200);
    const started = Date.now();
    for (let waited = 0; stack.as.ssfDeliveries.length < deliveries + 1 && waited < 2000; waited += 10) await sleep(10);
    assert.deepEqual(stack.as.ssfDeliveries.slice(deliveries), [202]);
    const statuses = await Promise.all(pods.map(async (pod) => {
      for (;;) {
        const status = (await asA(pod, token)).status;
        if (status === 401 || Date.now() - started > 1000) return status;
        await sleep(20);
      }
    }));
    assert.deepEqual(statuses, [401, 401, 401]);
    assert.ok(Date.now() - started <= 1000, `took ${Date.now() - started} ms`);
  });

  test('forged events are refused with 400 and evict nothing: another key, another audience, a replayed jti', async () => {
    const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    assert.equal((await asA(pods[0]!, token)).status, 200);
    const forger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const { createHash } = await import('node:crypto');
    const events = { 'urn:phantom-sidecar:secevent:token-revoked': { subject: { format: 'opaque', id: createHash('sha256').update(token).digest('base64url') } } };
    const forged = (claims: Record<string, unknown> = {}) =>
      new SignJWT({ jti: `forged-${Math.random()}`, events, ...claims }).setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid: 'x' }).setIssuer(stack.as.issuer).setAudience(API_AUDIENCE).setIssuedAt().sign(forger);
    const push = (set: string) => fetch(`http://127.0.0.1:${pods[0]!.adminPort}/ssf/events`, { method: 'POST', headers: { 'content-type': 'application/secevent+jwt' }, body: set });
    const notASet = await fetch(`http://127.0.0.1:${pods[0]!.adminPort}/ssf/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(notASet.status, 400, 'RFC 8935: a wrong media type is 400 invalid_request');
    assert.equal(((await notASet.json()) as { err: string }).err, 'invalid_request');
    const otherKey = await push(await forged());
    assert.equal(otherKey.status, 400);
    assert.equal(((await otherKey.json()) as { err: string }).err, 'invalid_key');
    assert.equal((await asA(pods[0]!, token)).status, 200, 'nothing was evicted');
    // A genuine SET, sent twice: the second is a replay.
    const before = stack.as.ssfDeliveries.length;
    stack.as.ssfReceivers.push(`http://127.0.0.1:${pods[1]!.adminPort}/ssf/events`);
    await postForm(stack.as.revocationUrl, { token: await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki), client_id: 'partner-a' }, stack.pki.partnerA, stack.pki);
    for (let waited = 0; stack.as.ssfDeliveries.length < before + 2 && waited < 2000; waited += 10) await sleep(10);
    stack.as.ssfReceivers.pop();
    assert.deepEqual(stack.as.ssfDeliveries.slice(before), [202, 400], 'the same SET at another pod is a replayed jti');
    // A genuine SET for another audience: a receiver of another API refuses it.
    const stranger = await startSidecar({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_SSF_ISSUER: stack.as.issuer, PHANTOM_SSF_AUDIENCE: 'https://other-api.example.com' });
    try {
      const victim = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
      assert.equal((await asA(stranger, victim)).status, 200);
      const sent = stack.as.ssfDeliveries.length;
      stack.as.ssfReceivers.splice(0, 1, `http://127.0.0.1:${stranger.adminPort}/ssf/events`);
      await postForm(stack.as.revocationUrl, { token: victim, client_id: 'partner-a' }, stack.pki.partnerA, stack.pki);
      for (let waited = 0; stack.as.ssfDeliveries.length < sent + 1 && waited < 2000; waited += 10) await sleep(10);
      assert.deepEqual(stack.as.ssfDeliveries.slice(sent), [400]);
      assert.equal((await asA(stranger, victim)).status, 200, 'nothing was evicted (the cache lifetime has not run out)');
    } finally {
      stack.as.ssfReceivers.splice(0, 1, `http://127.0.0.1:${pods[0]!.adminPort}/ssf/events`);
      await stranger.stop();
    }
  });

  test('a value in Redis that does not parse or has another version is ignored and overwritten, never trusted', async () => {
    const { Redis } = await import('ioredis');
    const client = new Redis(redis.url);
    try {
      const { createHash } = await import('node:crypto');
      for (const forged of ['{not json', JSON.stringify({ v: 2, introspection: { active: true, claims: {} }, expiresAt: Date.now() + 60_000 })]) {
        const token = `never-issued-${Math.random()}`;
        const key = createHash('sha256').update(token).digest('base64url');
        await client.set(`phantom:v1:answer:${key}`, forged, 'PX', 60_000);
        const before = stack.introspections();
        const response = await asA(pods[2]!, token);
        assert.equal(response.status, 401, 'the AS was asked, and it does not know the token');
        assert.equal(stack.introspections() - before, 1);
        const stored = JSON.parse((await client.get(`phantom:v1:answer:${key}`)) ?? '{}') as { v?: number; introspection?: { active?: boolean } };
        assert.deepEqual([stored.v, stored.introspection?.active], [1, false], 'overwritten with the real answer');
      }
    } finally {
      client.disconnect();
    }
  });

  test('a DPoP proof accepted at one pod is refused as a replay at another (the jti store is the fleet\'s)', async () => {
    const env = { ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_REDIS_URL: redis.url, PHANTOM_REDIS_TIMEOUT_MS: '200', PHANTOM_SENDER_CONSTRAINTS: 'mtls dpop', PHANTOM_PUBLIC_HOSTS: 'api.example.com' };
    const [one, two] = await Promise.all([startSidecar(env), startSidecar(env)]);
    try {
      for (let waited = 0; waited < 5000; waited += 50) {
        const up = await Promise.all([one, two].map(async (pod) => (await fetch(`http://127.0.0.1:${pod!.adminPort}/metrics`).then((r) => r.text())).includes('phantom_redis_connected 1')));
        if (up.every(Boolean)) break;
        await sleep(50);
      }
      const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const token = await dpopBoundToken(stack.as, stack.pki.partnerA, stack.pki, key);
      const proof = await dpopProof(key, 'GET', 'https://api.example.com/api/accounts', { token });
      const send = (pod: RunningSidecar) => call({ port: pod.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { host: 'api.example.com', authorization: `DPoP ${token}`, dpop: proof } });
      assert.equal((await send(one!)).status, 200);
      const replay = await send(two!);
      assert.equal(replay.status, 401);
      assert.equal((await accessLineFor(two!.logs, replay)).reason, 'dpop_proof_replayed');
    } finally {
      await one?.stop();
      await two?.stop();
    }
  });

  test('Redis stopped: traffic goes on, a revoked token is refused within the degraded lifetime; Redis back: shared caching resumes', async () => {
    const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    await redis.stop();
    await sleep(300);
    for (const pod of pods) assert.equal((await asA(pod, token)).status, 200, 'no request fails because Redis failed');
    // Revoked while the fleet cannot hear of it: the receiver says 503 (the transmitter would
    // retry), and the degraded lifetime (1 s) bounds the window.
    const pushed = stack.as.ssfDeliveries.length;
    await postForm(stack.as.revocationUrl, { token, client_id: 'partner-a' }, stack.pki.partnerA, stack.pki);
    for (let waited = 0; stack.as.ssfDeliveries.length < pushed + 1 && waited < 2000; waited += 10) await sleep(10);
    assert.deepEqual(stack.as.ssfDeliveries.slice(pushed), [503], 'never acknowledged and then lost');
    await sleep(1100);
    for (const pod of pods) {
      const response = await asA(pod, token);
      assert.equal(response.status, 401);
      assert.equal((await accessLineFor(pod.logs, response)).reason, 'token_inactive');
    }
    await redis.start();
    for (let waited = 0; waited < 5000; waited += 100) {
      const up = await Promise.all(pods.map(async (pod) => (await fetch(`http://127.0.0.1:${pod.adminPort}/metrics`).then((r) => r.text())).includes('phantom_redis_connected 1')));
      if (up.every(Boolean)) break;
      await sleep(100);
    }
    const fresh = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    const before = stack.introspections();
    assert.equal((await asA(pods[0]!, fresh)).status, 200);
    const second = await asA(pods[1]!, fresh);
    assert.equal(second.status, 200);
    assert.equal((await accessLineFor(pods[1]!.logs, second)).cache, 'fleet');
    assert.equal(stack.introspections() - before, 1);
  });
});
