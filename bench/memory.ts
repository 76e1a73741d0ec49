// `npm run bench:memory`: what the sidecar holds, as users run it (`node src/main.ts`): RSS
// idle, RSS per cached active answer with its minted JWT, and RSS and AS calls after one
// partner sends many distinct random tokens (the failed-token budget and the separate
// inactive cache must bound both). The AS is a scripted HTTPS one (it must answer 100,000
// distinct tokens fast). Settings: MEMORY_TOKENS (active answers, default 100000),
// MEMORY_RANDOM (random tokens, default 1000000), MEMORY_CONCURRENCY (default 64).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { boundAnswer, json, startFakeAuthorizationServer } from '../test/support/fake-as.ts';
import { makePki, type Identity } from '../test/support/pki.ts';
import { freePort } from '../test/support/ports.ts';
import { baseEnv } from '../test/support/sidecar.ts';
import { startEchoUpstream } from '../test/support/upstream.ts';

const root = new URL('..', import.meta.url).pathname;
const tokens = Number(process.env.MEMORY_TOKENS ?? 100_000);
const random = Number(process.env.MEMORY_RANDOM ?? 1_000_000);
const concurrency = Number(process.env.MEMORY_CONCURRENCY ?? 64);
const say = (text: string): void => void process.stdout.write(`${text}\n`);

const pki = makePki();
const fake = await startFakeAuthorizationServer(pki);
let asked = 0;
fake.handle = (seen, res) => {
  asked += 1;
  const token = new URLSearchParams(seen.body).get('token') ?? '';
  json(res, token.startsWith('ok-') ? { ...boundAnswer(pki.partnerA.thumbprint), exp: Math.floor(Date.now() / 1000) + 3600, sub: `user-${token.slice(3)}` } : { active: false });
};
fake.seen.length = 0;
const upstream = await startEchoUpstream();
const port = await freePort();
const adminPort = await freePort();
const sidecar = spawn(process.execPath, [join(root, 'src/main.ts')], {
  env: {
    ...process.env,
    ...baseEnv(pki, upstream.url, fake.url),
    PHANTOM_LISTEN_PORT: String(port),
    PHANTOM_ADMIN_PORT: String(adminPort),
    PHANTOM_CACHE_MAX_ENTRIES: String(Math.max(tokens, 10_000)),
    PHANTOM_CACHE_MAX_TTL_S: '3600',
    PHANTOM_MAX_CONCURRENT_PER_CLIENT: '1000',
    PATH: process.env.PATH ?? '',
  },
  stdio: ['ignore', 'ignore', 'inherit'],
});
for (let attempt = 0; attempt < 100; attempt += 1) {
  if (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.ok, () => false)) break;
  await new Promise((resolve) => setTimeout(resolve, 100));
}
const rssMb = (): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${sidecar.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

async function send(identity: Identity, count: number, tokenOf: (i: number) => string): Promise<Map<number, number>> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const statuses = new Map<number, number>();
  let next = 0;
  const one = (token: string): Promise<number> =>
    new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/api/accounts', agent, cert: identity.cert, key: identity.key, ca: pki.ca, servername: 'localhost', headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', () => resolve(0));
      req.end();
    });
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const status = await one(tokenOf((next += 1)));
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  }));
  agent.destroy();
  return statuses;
}

await send(pki.partnerA, 200, (i) => `ok-warm-${i}`);
await new Promise((resolve) => setTimeout(resolve, 2000));
const idle = rssMb();
say(`bench:memory: the sidecar as users run it (node src/main.ts), a scripted AS`);
say(`  idle (after start and 200 requests)                 RSS ${idle.toFixed(1)} MB`);
const started = Date.now();
const active = await send(pki.partnerA, tokens, (i) => `ok-${i}`);
await new Promise((resolve) => setTimeout(resolve, 2000));
const withAnswers = rssMb();
say(`  ${tokens} distinct active tokens (${((Date.now() - started) / 1000).toFixed(0)} s, statuses ${JSON.stringify(Object.fromEntries(active))})`);
say(`                                                      RSS ${withAnswers.toFixed(1)} MB: ${(((withAnswers - idle) * 1024 * 1024) / tokens).toFixed(0)} bytes per cached answer with its JWT`);
const askedBefore = asked;
const fishing = await send(pki.partnerB, random, (i) => `random-${i}-${Math.random().toString(36).slice(2)}`);
await new Promise((resolve) => setTimeout(resolve, 2000));
const afterRandom = rssMb();
say(`  partner B: ${random} distinct random tokens (statuses ${JSON.stringify(Object.fromEntries(fishing))})`);
say(`                                                      RSS ${afterRandom.toFixed(1)} MB (${(afterRandom - withAnswers).toFixed(1)} MB over the previous), AS calls ${asked - askedBefore}`);
sidecar.kill('SIGTERM');
await upstream.stop();
await fake.stop();
process.exit(0);
