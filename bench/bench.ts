// `npm run bench`: what the sidecar's authorisation costs on top of the bare mTLS proxy it is
// built on, measured side by side in one run.
//
// Both proxies run as their own process pinned to core 0 (taskset, when present); the load
// generator (autocannon, 50 keep-alive connections presenting partner A's certificate) and the
// upstream share core 1. Each proxy is warmed up, then measured in alternating rounds; the
// figures are medians. CPU µs per request is the proxy process's own CPU time (utime+stime
// from /proc) divided by the requests it answered, so it does not depend on the load
// generator keeping up. The sidecar runs its cache-hit path: one introspection at a real
// oidc-provider, then every request is a hit (binding checked, JWT reused).
//
// On two cores the load generator saturates its core before either proxy does, so both are
// driven at the same fixed rate (BENCH_RATE): their CPU per request is then compared under
// identical conditions, which is the figure that matters. A second pass at full speed shows
// the throughput each reaches with this generator.
//
// Settings: BENCH_SECONDS (per round, default 5), BENCH_ROUNDS (default 3),
// BENCH_CONNECTIONS (default 50), BENCH_RATE (req/s, default 2000), BENCH_LOG_LEVEL (the
// sidecar's, default info: one access line per request, written to /dev/null).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { partnerToken, startTestAuthorizationServer, SIDECAR_CLIENT, API_AUDIENCE } from '../test/support/as.ts';
import { makePki, type Pki } from '../test/support/pki.ts';
import { freePort } from '../test/support/ports.ts';

const root = new URL('..', import.meta.url).pathname;
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const rate = Number(process.env.BENCH_RATE ?? 2000);
const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;

const children: ChildProcess[] = [];
function startProcess(script: string, env: Record<string, string>, core: string): Promise<ChildProcess> {
  const args = [join(root, script)];
  const child = hasTaskset
    ? spawn('taskset', ['-c', core, process.execPath, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve(child);
    });
  });
}

/** The node process itself (taskset execs it, so the pid is the same). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000_000) / 100;
}

interface Round {
  rps: number;
  cpuPerRequestUs: number;
  non2xx: number;
}

async function load(pki: Pki, port: number, token: string, durationSeconds: number, pid: number, overallRate?: number): Promise<Round> {
  const before = cpuMicros(pid);
  const result = await autocannon({
    url: `https://127.0.0.1:${port}/api/accounts`,
    connections,
    duration: durationSeconds,
    ...(overallRate === undefined ? {} : { overallRate }),
    headers: { authorization: `Bearer ${token}` },
    tlsOptions: {
      cert: pki.partnerA.cert,
      key: pki.partnerA.key,
      ca: pki.ca,
      servername: 'localhost',
    },
  } as autocannon.Options);
  const cpu = cpuMicros(pid) - before;
  const answered = result.requests.total;
  return { rps: answered / durationSeconds, cpuPerRequestUs: cpu / Math.max(answered, 1), non2xx: result.non2xx + result.errors };
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function main(): Promise<void> {
  // The load generator (this process) keeps to core 1, leaving core 0 to the proxy measured.
  if (hasTaskset) spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const pki = makePki();
  const as = await startTestAuthorizationServer(pki);
  const upstreamPort = await freePort();
  await startProcess('bench/upstream.ts', { PORT: String(upstreamPort) }, '1');
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
  const tls = { cert: pki.path('server.pem'), key: pki.path('server.key'), ca: pki.path('ca.pem') };

  const baselinePort = await freePort();
  const baseline = await startProcess('bench/baseline.ts', { PORT: String(baselinePort), UPSTREAM_URL: upstreamUrl, TLS_CERT: tls.cert, TLS_KEY: tls.key, TLS_CLIENT_CA: tls.ca }, '0');
  const sidecarPort = await freePort();
  const adminPort = await freePort();
  // BENCH_PROFILE_DIR: write a V8 CPU profile of the sidecar there, to see where time goes.
  const profile = process.env.BENCH_PROFILE_DIR === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE_DIR];
  const sidecar = spawn(hasTaskset ? 'taskset' : process.execPath, [...(hasTaskset ? ['-c', '0', process.execPath] : []), ...profile, join(root, 'src/main.ts')], {
    env: {
      ...process.env,
      PHANTOM_LISTEN_HOST: '127.0.0.1',
      PHANTOM_LISTEN_PORT: String(sidecarPort),
      PHANTOM_ADMIN_HOST: '127.0.0.1',
      PHANTOM_ADMIN_PORT: String(adminPort),
      PHANTOM_TLS_CERT: tls.cert,
      PHANTOM_TLS_KEY: tls.key,
      PHANTOM_TLS_CLIENT_CA: tls.ca,
      PHANTOM_UPSTREAM_URL: upstreamUrl,
      PHANTOM_INTROSPECTION_URL: as.introspectionUrl,
      PHANTOM_INTROSPECTION_CLIENT_ID: SIDECAR_CLIENT.clientId,
      PHANTOM_INTROSPECTION_CLIENT_SECRET: SIDECAR_CLIENT.clientSecret,
      PHANTOM_INTROSPECTION_CA: tls.ca,
      PHANTOM_EXPECTED_AUDIENCE: API_AUDIENCE,
      PHANTOM_REQUIRED_SCOPES: 'accounts',
      PHANTOM_JWT_ISSUER: 'https://sidecar.bench',
      PHANTOM_JWT_AUDIENCE: 'https://api.bench',
      PHANTOM_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(sidecar);
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.ok, () => false);
    if (ready) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const token = await partnerToken(as, 'partner-a', pki.partnerA, pki, 'accounts');

  process.stdout.write(`phantom-sidecar bench: ${connections} keep-alive mTLS connections, ${rounds} rounds of ${seconds}s, proxies ${hasTaskset ? 'pinned to core 0' : 'unpinned'}\n`);
  process.stdout.write('warming up both proxies…\n');
  await load(pki, baselinePort, token, 5, baseline.pid ?? 0);
  await load(pki, sidecarPort, token, 5, sidecar.pid ?? 0);

  const summary = (rows: Round[]) => ({ rps: median(rows.map((r) => r.rps)), cpu: median(rows.map((r) => r.cpuPerRequestUs)), bad: rows.reduce((n, r) => n + r.non2xx, 0) });
  const header = `${'proxy'.padEnd(38)} ${'req/s'.padStart(8)} ${'CPU µs/req'.padStart(12)} ${'non-2xx'.padStart(10)}\n`;
  const line = (name: string, r: { rps: number; cpu: number; bad: number }) =>
    `${name.padEnd(38)} ${Math.round(r.rps).toString().padStart(8)} ${r.cpu.toFixed(1).padStart(12)} ${String(r.bad).padStart(10)}\n`;

  for (const [title, overallRate] of [[`same fixed rate, ${rate} req/s each`, rate], ['full speed', undefined]] as const) {
    const results = { baseline: [] as Round[], sidecar: [] as Round[] };
    for (let round = 1; round <= rounds; round += 1) {
      results.baseline.push(await load(pki, baselinePort, token, seconds, baseline.pid ?? 0, overallRate));
      results.sidecar.push(await load(pki, sidecarPort, token, seconds, sidecar.pid ?? 0, overallRate));
    }
    const b = summary(results.baseline);
    const s = summary(results.sidecar);
    process.stdout.write(`\n${title}\n${header}${line('bare Fastify + reply-from (mTLS)', b)}${line('phantom-sidecar, cache hit', s)}`);
    process.stdout.write(`sidecar / baseline: throughput ${(s.rps / b.rps).toFixed(3)}, CPU per request ${(s.cpu / b.cpu).toFixed(3)} (${s.cpu >= b.cpu ? '+' : ''}${(s.cpu - b.cpu).toFixed(1)} µs)\n`);
  }
  process.stdout.write(`introspection calls at the AS during the run: ${as.requests.get('/token/introspection') ?? 0}\n`);
  await as.stop();
}

try {
  await main();
} finally {
  for (const child of children) child.kill('SIGTERM');
}
// Give a profiling sidecar time to write its profile on SIGTERM.
await new Promise((resolve) => setTimeout(resolve, process.env.BENCH_PROFILE_DIR === undefined ? 0 : 2000));
process.exit(0);
