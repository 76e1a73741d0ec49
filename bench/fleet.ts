// `npm run bench:fleet`: the fleet measured in one run. Three sidecars against one real
// oidc-provider, first each on its own, then sharing a real redis-server; for each:
// introspections per distinct token when every token is used at all three pods at once; the
// cache-hit path's cost with Redis configured next to without (the in-process level must keep
// it equal), in alternating rounds; and how long a revocation at the AS takes to be refused at
// every pod (Shared Signals push, p50/p99). Needs redis-server (Debian package redis-server).
// Settings: FLEET_TOKENS (default 50), FLEET_HITS (requests per round, default 2000),
// FLEET_ROUNDS (default 5), FLEET_REVOCATIONS (default 20).
import { Agent } from 'node:https';
import { API_AUDIENCE, partnerToken, postForm, startTestAuthorizationServer } from '../test/support/as.ts';
import { call } from '../test/support/client.ts';
import { makePki } from '../test/support/pki.ts';
import { REDIS_MISSING, redisAvailable, startRedis } from '../test/support/redis.ts';
import { baseEnv, startSidecar, type RunningSidecar } from '../test/support/sidecar.ts';
import { startEchoUpstream } from '../test/support/upstream.ts';

const tokens = Number(process.env.FLEET_TOKENS ?? 50);
const hits = Number(process.env.FLEET_HITS ?? 2000);
const rounds = Number(process.env.FLEET_ROUNDS ?? 5);
const revocations = Number(process.env.FLEET_REVOCATIONS ?? 20);

if (!redisAvailable()) {
  process.stderr.write(`bench:fleet: ${REDIS_MISSING}\n`);
  process.exit(2);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? NaN;
const percentile = (values: number[], p: number): number => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.ceil((p / 100) * values.length) - 1)] ?? NaN;

const pki = makePki();
const as = await startTestAuthorizationServer(pki);
const upstream = await startEchoUpstream();
const redis = await startRedis();
const env = { ...baseEnv(pki, upstream.url, as.introspectionUrl), PHANTOM_LOG_LEVEL: 'warn', PHANTOM_SSF_ISSUER: as.issuer, PHANTOM_SSF_AUDIENCE: API_AUDIENCE };
const alone = await Promise.all([1, 2, 3].map(() => startSidecar(env)));
const fleet = await Promise.all([1, 2, 3].map(() => startSidecar({ ...env, PHANTOM_REDIS_URL: redis.url, PHANTOM_REDIS_TIMEOUT_MS: '100', PHANTOM_REDIS_KEY: 'bench-fleet-sealing-key-0123456789abcdef' })));
await sleep(500);
const introspections = (): number => as.requests.get('/token/introspection') ?? 0;
const agents = new Map<RunningSidecar, Agent>();
const asA = (pod: RunningSidecar, token: string) => {
  let agent = agents.get(pod);
  if (agent === undefined) {
    agent = new Agent({ keepAlive: true, maxSockets: 20 });
    agents.set(pod, agent);
  }
  return call({ port: pod.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, agent, headers: { authorization: `Bearer ${token}` } });
};

async function perToken(pods: RunningSidecar[]): Promise<number> {
  const before = introspections();
  for (let i = 0; i < tokens; i += 1) {
    const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
    await Promise.all(pods.flatMap((pod) => [asA(pod, token), asA(pod, token)]));
  }
  return (introspections() - before) / tokens;
}

/** CPU µs of this process per cache-hit request through `pod` (client and server share it, alike for both). */
async function hitCost(pod: RunningSidecar, token: string): Promise<number> {
  const started = process.cpuUsage();
  for (let sent = 0; sent < hits; sent += 50) await Promise.all(Array.from({ length: 50 }, () => asA(pod, token)));
  const used = process.cpuUsage(started);
  return (used.user + used.system) / hits;
}

process.stdout.write(`bench:fleet: 3 sidecars, ${tokens} tokens each used twice at every pod at once\n`);
const without = await perToken(alone);
const withRedis = await perToken(fleet);
process.stdout.write(`  introspections per distinct token   without Redis ${without.toFixed(2)}   with Redis ${withRedis.toFixed(2)}\n`);

const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
await hitCost(alone[0]!, token);
await hitCost(fleet[0]!, token);
const ratios: number[] = [];
for (let round = 0; round < rounds; round += 1) {
  const plain = await hitCost(alone[0]!, token);
  const shared = await hitCost(fleet[0]!, token);
  ratios.push(shared / plain);
  process.stdout.write(`  round ${round + 1}: cache hit ${plain.toFixed(0)} µs without Redis, ${shared.toFixed(0)} µs with Redis (ratio ${(shared / plain).toFixed(3)})\n`);
}
process.stdout.write(`  cache-hit cost with Redis / without: median ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}-${Math.max(...ratios).toFixed(3)}) over ${rounds} alternating rounds\n`);

as.ssfReceivers.push(`http://127.0.0.1:${fleet[0]!.adminPort}/ssf/events`);
const delays: number[] = [];
for (let i = 0; i < revocations; i += 1) {
  const revoked = await partnerToken(as, 'partner-a', pki.partnerA, pki);
  await Promise.all(fleet.map((pod) => asA(pod, revoked)));
  const started = performance.now();
  await postForm(as.revocationUrl, { token: revoked, client_id: 'partner-a' }, pki.partnerA, pki);
  await Promise.all(fleet.map(async (pod) => {
    while ((await asA(pod, revoked)).status !== 401) {
      if (performance.now() - started > 5000) break;
      await sleep(2);
    }
    delays.push(performance.now() - started);
  }));
}
process.stdout.write(`  revocation at the AS to refusal at each of 3 pods: p50 ${percentile(delays, 50).toFixed(0)} ms, p99 ${percentile(delays, 99).toFixed(0)} ms (${delays.length} samples)\n`);

for (const agent of agents.values()) agent.destroy();
for (const pod of [...alone, ...fleet]) await pod.stop();
await upstream.stop();
await as.stop();
await redis.stop();
process.exit(0);
