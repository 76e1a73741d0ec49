// The fleet: three sidecars sharing a real redis-server, the real oidc-provider as the
// authorization server and as the Shared Signals transmitter. One introspection per token
// per cluster; a revocation at the AS refused at every pod within a second; forged events
// refused; Redis stopped and started again mid-test without anything failing open.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Agent } from 'node:https';
import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { API_AUDIENCE, dpopBoundToken, dpopProof, partnerToken, postForm } from '../support/as.ts';
import { call } from '../support/client.ts';
import { REDIS_MISSING, redisAvailable, startRedis, type RunningRedis } from '../support/redis.ts';
import { accessLineFor, baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

const FLEET_KEY = 'fleet-test-sealing-key-0123456789abcdef';
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
      PHANTOM_REDIS_KEY: FLEET_KEY,
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

  const waitConnected = async (some: RunningSidecar[], connected = true): Promise<void> => {
    const wanted = connected ? 'phantom_redis_connected 1' : 'phantom_redis_connected 0';
    for (let waited = 0; waited < 5000; waited += 50) {
      const up = await Promise.all(some.map(async (pod) => (await fetch(`http://127.0.0.1:${pod.adminPort}/metrics`).then((r) => r.text())).includes(wanted)));
      if (up.every(Boolean)) return;
      await sleep(50);
    }
    throw new Error(`not ${wanted} within 5 s`);
  };

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

  const redisKey = (token: string): string => `phantom:v2:answer:${createHash('sha256').update(token).digest('base64url')}`;
  const metricsOf = (pod: RunningSidecar): Promise<string> => fetch(`http://127.0.0.1:${pod.adminPort}/metrics`).then((r) => r.text());

  test('an answer written to Redis by hand, well-formed and bound to the writer, is never accepted', async () => {
    const client = new Redis(redis.url);
    try {
      const token = `never-issued-${Math.random()}`;
      const forged = { v: 1, expiresAt: Date.now() + 60_000, introspection: { active: true, claims: { active: true, client_id: 'partner-a', scope: 'accounts', aud: API_AUDIENCE, exp: Math.floor(Date.now() / 1000) + 60, cnf: { 'x5t#S256': stack.pki.partnerA.thumbprint } } } };
      await client.set(redisKey(token), JSON.stringify(forged), 'PX', 60_000);
      const before = stack.introspections();
      const response = await asA(pods[2]!, token);
      assert.equal(response.status, 401, 'the AS was asked, and it does not know the token');
      assert.equal(stack.introspections() - before, 1);
      assert.match((await client.get(redisKey(token))) ?? '', /^s1\./, 'overwritten with the sealed real answer');
      assert.match(await metricsOf(pods[2]!), /phantom_redis_rejected_values_total\{kind="answer"\} [1-9]/);
    } finally {
      client.disconnect();
    }
  });

  test('a sealed answer copied under another token\'s key is not accepted there', async () => {
    const client = new Redis(redis.url);
    try {
      const real = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
      assert.equal((await asA(pods[0]!, real)).status, 200);
      const sealed = await client.get(redisKey(real));
      assert.ok(sealed !== null);
      const other = `never-issued-${Math.random()}`;
      await client.set(redisKey(other), sealed, 'PX', 60_000);
      const before = stack.introspections();
      assert.equal((await asA(pods[1]!, other)).status, 401);
      assert.equal(stack.introspections() - before, 1, 'the moved value was a miss');
    } finally {
      client.disconnect();
    }
  });

  test('a forged revocation message on the channel evicts nothing', async () => {
    const client = new Redis(redis.url);
    try {
      const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
      for (const pod of pods) assert.equal((await asA(pod, token)).status, 200);
      const subject = `token:${createHash('sha256').update(token).digest('base64url')}`;
      const receivers = await client.publish('phantom:v2:revocations', JSON.stringify({ subjects: [subject], at: Date.now() }));
      assert.ok(receivers >= 3);
      await sleep(200);
      for (const pod of pods) {
        const response = await asA(pod, token);
        assert.equal(response.status, 200);
        assert.equal((await accessLineFor(pod.logs, response)).cache, 'hit');
        assert.match(await metricsOf(pod), /phantom_redis_rejected_values_total\{kind="revocation"\} [1-9]/);
      }
    } finally {
      client.disconnect();
    }
  });

  test('what the fleet keeps in Redis holds no client, subject or scope in clear', async () => {
    const client = new Redis(redis.url);
    try {
      const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki, 'accounts transactions');
      assert.equal((await asA(pods[0]!, token)).status, 200);
      const keys = await client.keys('phantom:*');
      assert.ok(keys.some((key) => key.startsWith('phantom:v2:answer:')) && keys.some((key) => key.startsWith('phantom:v2:subject:')));
      for (const key of keys) {
        const type = await client.type(key);
        const values = type === 'set' ? await client.smembers(key) : type === 'string' ? [(await client.get(key)) ?? ''] : [];
        for (const text of [key, ...values]) {
          for (const secret of ['partner-a', 'accounts', 'transactions', stack.pki.partnerA.thumbprint, token]) assert.ok(!text.includes(secret), `${key} holds "${secret}" in clear`);
        }
      }
    } finally {
      client.disconnect();
    }
  });

  test('a rotation: a pod with the new PHANTOM_REDIS_KEY and the old one as PHANTOM_REDIS_PREVIOUS_KEY keeps the fleet\'s hits', async () => {
    const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    assert.equal((await asA(pods[0]!, token)).status, 200);
    const env = { ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_REDIS_URL: redis.url, PHANTOM_REDIS_TIMEOUT_MS: '200' };
    const rotated = await startSidecar({ ...env, PHANTOM_REDIS_KEY: 'fleet-test-rotated-key-abcdefghijklmnopqrstuvwxyz', PHANTOM_REDIS_PREVIOUS_KEY: FLEET_KEY });
    const stranger = await startSidecar({ ...env, PHANTOM_REDIS_KEY: 'fleet-test-rotated-key-abcdefghijklmnopqrstuvwxyz' });
    try {
      await waitConnected([rotated, stranger]);
      const before = stack.introspections();
      const response = await asA(rotated, token);
      assert.equal(response.status, 200);
      assert.equal((await accessLineFor(rotated.logs, response)).cache, 'fleet');
      assert.equal(stack.introspections() - before, 0);
      const without = await asA(stranger, token);
      assert.equal((await accessLineFor(stranger.logs, without)).cache, 'miss', 'without the previous key the old value is a miss');
    } finally {
      await rotated.stop();
      await stranger.stop();
    }
  });

  test('a DPoP proof accepted at one pod is refused as a replay at another (the jti store is the fleet\'s)', async () => {
    const env = { ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_REDIS_URL: redis.url, PHANTOM_REDIS_KEY: FLEET_KEY, PHANTOM_REDIS_TIMEOUT_MS: '200', PHANTOM_SENDER_CONSTRAINTS: 'mtls dpop', PHANTOM_PUBLIC_HOSTS: 'api.example.com' };
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

  test('Redis paused (SIGSTOP): noticed within a second, a revocation is applied where it arrives and within the degraded lifetime elsewhere, DPoP fails closed, everything flushed when it answers again', async () => {
    const dpopPod = await startSidecar({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_REDIS_URL: redis.url, PHANTOM_REDIS_KEY: FLEET_KEY, PHANTOM_REDIS_TIMEOUT_MS: '200', PHANTOM_SENDER_CONSTRAINTS: 'mtls dpop', PHANTOM_PUBLIC_HOSTS: 'api.example.com' });
    const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    const dpopKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const dpopToken = await dpopBoundToken(stack.as, stack.pki.partnerA, stack.pki, dpopKey);
    const sendDpop = async () => call({ port: dpopPod.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { host: 'api.example.com', authorization: `DPoP ${dpopToken}`, dpop: await dpopProof(dpopKey, 'GET', 'https://api.example.com/api/accounts', { token: dpopToken }) } });
    try {
      await waitConnected([...pods, dpopPod]);
      for (const pod of pods) assert.equal((await asA(pod, token)).status, 200);
      assert.equal((await sendDpop()).status, 200);
      redis.pause();
      await waitConnected([...pods, dpopPod], false);
      // Cut off from the fleet: a DPoP proof that cannot be recorded for every pod is refused, never waved through.
      const dpopWhilePaused = await sendDpop();
      assert.equal(dpopWhilePaused.status, 503);
      assert.equal((await accessLineFor(dpopPod.logs, dpopWhilePaused)).reason, 'replay_store_unavailable');
      // A miss no longer waits on Redis.
      const fresh = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
      const missStarted = Date.now();
      assert.equal((await asA(pods[2]!, fresh)).status, 200);
      assert.ok(Date.now() - missStarted < 1000, `a miss took ${Date.now() - missStarted} ms with Redis paused`);
      const pushed = stack.as.ssfDeliveries.length;
      await postForm(stack.as.revocationUrl, { token, client_id: 'partner-a' }, stack.pki.partnerA, stack.pki);
      for (let waited = 0; stack.as.ssfDeliveries.length < pushed + 1 && waited < 3000; waited += 10) await sleep(10);
      assert.deepEqual(stack.as.ssfDeliveries.slice(pushed), [503], 'the transmitter is told the fleet did not get it');
      assert.equal((await asA(pods[0]!, token)).status, 401, 'applied at once where it arrived');
      await sleep(1100);
      for (const pod of pods) assert.equal((await asA(pod, token)).status, 401, 'refused everywhere within the degraded lifetime');
      redis.resume();
      await waitConnected([...pods, dpopPod]);
      for (const pod of pods) assert.equal((await asA(pod, token)).status, 401);
      assert.ok(pods.every((pod) => pod.logs.some((line) => line.includes('redis unreachable or not answering in time'))));
    } finally {
      redis.resume();
      await dpopPod.stop();
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
