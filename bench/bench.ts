// `npm run bench`: what the sidecar's whole authorization costs on its cache-hit path, next to
// the bare mTLS proxy it is built on (Fastify 5 + @fastify/reply-from, hop-by-hop headers
// stripped, no logger), measured AT THE SAME TIME ON THE SAME CORE.
//
// This machine's speed drifts by 30-90% between runs seconds apart, so two proxies measured in
// turn are not comparable. Here both proxies and the upstream are pinned to core 0 (taskset)
// and run concurrently, each driven by its own load generator process on core 1: whatever the
// host does to core 0 in a window, it does to both, and the ratios are stable even when the
// absolute figures are not. Quote ratios from one run only.
//
// Per window: CPU per request of each proxy (utime+stime from /proc/<pid>/stat over the
// window, divided by the requests it answered), requests/s, p50/p99 latency, and the ratios;
// then the median and min-max over the windows. Four passes: keep-alive at full speed (50
// connections each), new connections (one request per TLS 1.3 handshake, EC P-256 client
// certificates), keep-alive at half the bare proxy's rate for the latency comparison, and,
// where nginx is installed, the decision service behind nginx auth_request next to nginx alone.
//
// Settings: BENCH_WINDOWS (default 5), BENCH_SECONDS (per window, default 8),
// BENCH_CONNECTIONS (default 50), BENCH_LOG_LEVEL (the sidecar's, default info: one access
// line per request, to /dev/null), BENCH_PROFILE_DIR (write V8 CPU profiles of the sidecar and the bare proxy),
// BENCH_PASSES (which passes to run, e.g. `1` or `1,5`; default all: for profiling one path),
// BENCH_AGAINST (a checkout of another version, e.g. a `git worktree` of main with this
// node_modules linked in: pass 7 runs it in the "bare" column next to this sidecar, to see what
// a change costs or saves, measured at the same time).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { API_AUDIENCE, SIDECAR_CLIENT, partnerToken, startTestAuthorizationServer } from '../test/support/as.ts';
import { issueClientCertificate, makePki, type Pki } from '../test/support/pki.ts';
import { nginxAvailable, startNginx } from '../deploy/nginx/gateway.ts';
import { freePort } from '../test/support/ports.ts';

const root = new URL('..', import.meta.url).pathname;
const windows = Number(process.env.BENCH_WINDOWS ?? 5);
const seconds = Number(process.env.BENCH_SECONDS ?? 8);
const connections = Number(process.env.BENCH_CONNECTIONS ?? 50);
const passes = new Set((process.env.BENCH_PASSES ?? '1,2,3,4,5,6').split(',').map((pass) => pass.trim()));
const hasTaskset = spawnSync('taskset', ['-c', '0', 'true']).status === 0;

const children: ChildProcess[] = [];
function pinned(core: string, args: string[], env: Record<string, string>, stdout: 'pipe' | 'ignore' = 'pipe'): ChildProcess {
  const child = hasTaskset
    ? spawn('taskset', ['-c', core, process.execPath, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', stdout, 'inherit'] })
    : spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', stdout, 'inherit'] });
  children.push(child);
  return child;
}

function untilReady(child: ChildProcess, name: string): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve(child);
    });
  });
}

/** utime + stime of the process, µs (taskset execs node, so the pid is node's). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / 100;
}

interface LoadResult {
  requests: number;
  bad: number;
  p50: number;
  p99: number;
}

function generate(port: number, token: string, mode: 'keepalive' | 'connections', load: { connections: number; rate?: number; seconds: number }, tls: Record<string, string>): Promise<LoadResult> {
  const child = pinned('1', [join(root, 'bench/load.ts')], {
    LOAD_URL: `https://127.0.0.1:${port}/api/accounts`,
    LOAD_TOKEN: token,
    LOAD_CONNECTIONS: String(load.connections),
    LOAD_SECONDS: String(load.seconds),
    LOAD_MODE: mode,
    LOAD_CERT: tls.cert ?? '',
    LOAD_KEY: tls.key ?? '',
    LOAD_CA: tls.ca ?? '',
    ...(load.rate === undefined ? {} : { LOAD_RATE: String(Math.round(load.rate)) }),
  });
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', () => {
      try {
        resolve(JSON.parse(output.trim().split('\n').at(-1) ?? '') as LoadResult);
      } catch {
        reject(new Error(`load generator: ${output}`));
      }
    });
  });
}

interface Side {
  cpuPerRequest: number;
  rps: number;
  p50: number;
  p99: number;
  bad: number;
}

/** One window: both proxies loaded at once, each by its own generator. */
/** The sidecar's environment in the bench: listener and admin ports, the test PKI, the AS, the JWT; `extra` on top. */
function sidecarEnv(pki: Pki, ports: { listen: number; admin: number }, introspectionUrl: string, extra: Record<string, string>): Record<string, string> {
  return {
    PHANTOM_LISTEN_HOST: '127.0.0.1',
    PHANTOM_LISTEN_PORT: String(ports.listen),
    PHANTOM_ADMIN_HOST: '127.0.0.1',
    PHANTOM_ADMIN_PORT: String(ports.admin),
    PHANTOM_TLS_CERT: pki.path('server.pem'),
    PHANTOM_TLS_KEY: pki.path('server.key'),
    PHANTOM_TLS_CLIENT_CA: pki.path('ca.pem'),
    PHANTOM_INTROSPECTION_URL: introspectionUrl,
    PHANTOM_INTROSPECTION_CLIENT_ID: SIDECAR_CLIENT.clientId,
    PHANTOM_INTROSPECTION_CLIENT_SECRET: SIDECAR_CLIENT.clientSecret,
    PHANTOM_INTROSPECTION_CA: pki.path('ca.pem'),
    PHANTOM_EXPECTED_AUDIENCE: API_AUDIENCE,
    PHANTOM_REQUIRED_SCOPES: 'accounts',
    PHANTOM_JWT_ISSUER: 'https://sidecar.bench',
    PHANTOM_JWT_AUDIENCE: 'https://api.bench',
    PHANTOM_LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    // The per-partner limit would refuse the benchmark's own 50 connections' worth of load.
    PHANTOM_MAX_CONCURRENT_PER_CLIENT: '1000',
    ...extra,
  };
}

async function sidecarReady(adminPort: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    if (await fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.ok, () => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The CPU of the processes that answer one side (nginx and the sidecar behind it count together). */
const cpuOf = (pids: number | readonly number[]): number => (typeof pids === 'number' ? [pids] : pids).reduce((sum, pid) => sum + cpuMicros(pid), 0);

async function window(pids: { bare: number | readonly number[]; sidecar: number | readonly number[] }, ports: { bare: number; sidecar: number }, token: string, mode: 'keepalive' | 'connections', load: { connections: number; rate?: number; seconds: number }, tls: Record<string, string>): Promise<{ bare: Side; sidecar: Side }> {
  const before = { bare: cpuOf(pids.bare), sidecar: cpuOf(pids.sidecar) };
  const [bare, sidecar] = await Promise.all([generate(ports.bare, token, mode, load, tls), generate(ports.sidecar, token, mode, load, tls)]);
  const side = (result: LoadResult, pid: number | readonly number[], start: number): Side => ({
    cpuPerRequest: (cpuOf(pid) - start) / Math.max(1, result.requests),
    rps: result.requests / load.seconds,
    p50: result.p50,
    p99: result.p99,
    bad: result.bad,
  });
  return { bare: side(bare, pids.bare, before.bare), sidecar: side(sidecar, pids.sidecar, before.sidecar) };
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
const range = (values: number[], digits = 3): string => `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}-${Math.max(...values).toFixed(digits)})`;
const say = (text: string): void => void process.stdout.write(`${text}\n`);

async function main(): Promise<void> {
  // This process (the AS, the token requests) keeps to core 1 with the load generators.
  if (hasTaskset) spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const pki = makePki();
  const as = await startTestAuthorizationServer(pki);
  const tls = { cert: pki.path('server.pem'), key: pki.path('server.key'), ca: pki.path('ca.pem') };
  const clientTls = { cert: pki.path('partner-a.pem'), key: pki.path('partner-a.key'), ca: pki.path('ca.pem') };
  const upstreamPort = await freePort();
  await untilReady(pinned('0', [join(root, 'bench/upstream.ts')], { PORT: String(upstreamPort) }), 'upstream');
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
  const barePort = await freePort();
  const profile = process.env.BENCH_PROFILE_DIR === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROFILE_DIR];
  const bare = await untilReady(pinned('0', [...profile, join(root, 'bench/baseline.ts')], { PORT: String(barePort), UPSTREAM_URL: upstreamUrl, TLS_CERT: tls.cert, TLS_KEY: tls.key, TLS_CLIENT_CA: tls.ca }), 'bare proxy');
  const sidecarPort = await freePort();
  const adminPort = await freePort();
  const sidecar = pinned('0', [...profile, join(root, 'src/main.ts')], sidecarEnv(pki, { listen: sidecarPort, admin: adminPort }, as.introspectionUrl, { PHANTOM_UPSTREAM_URL: upstreamUrl }), 'ignore');
  await sidecarReady(adminPort);
  const token = await partnerToken(as, 'partner-a', pki.partnerA, pki, 'accounts');
  const pids = { bare: bare.pid ?? 0, sidecar: sidecar.pid ?? 0 };
  const ports = { bare: barePort, sidecar: sidecarPort };

  say(`phantom-sidecar bench: both proxies and the upstream ${hasTaskset ? 'pinned to core 0' : 'UNPINNED (no taskset: ratios are unreliable)'}, loaded concurrently by one generator each${hasTaskset ? ' on core 1' : ''}; ${windows} windows of ${seconds}s after a warm-up`);
  if (passes.has('1') || passes.has('3')) await window(pids, ports, token, 'keepalive', { connections, seconds: 5 }, clientTls);

  const report = (title: string, rows: { bare: Side; sidecar: Side }[], unit: string): { cpu: number[]; rps: number[] } => {
    say(`\n${title}`);
    say(`window  bare ${unit}  sidecar ${unit}  CPU ratio   bare req/s  sidecar req/s  req/s ratio   bare p50/p99 ms   sidecar p50/p99 ms   non-2xx`);
    rows.forEach((row, index) => {
      say(`${String(index + 1).padStart(6)}  ${row.bare.cpuPerRequest.toFixed(0).padStart(8)}  ${row.sidecar.cpuPerRequest.toFixed(0).padStart(11)}  ${(row.sidecar.cpuPerRequest / row.bare.cpuPerRequest).toFixed(3).padStart(9)}  ${row.bare.rps.toFixed(0).padStart(11)}  ${row.sidecar.rps.toFixed(0).padStart(13)}  ${(row.sidecar.rps / row.bare.rps).toFixed(3).padStart(11)}  ${`${row.bare.p50.toFixed(0)}/${row.bare.p99.toFixed(0)}`.padStart(16)}  ${`${row.sidecar.p50.toFixed(0)}/${row.sidecar.p99.toFixed(0)}`.padStart(19)}  ${String(row.bare.bad + row.sidecar.bad).padStart(8)}`);
    });
    const cpu = rows.map((row) => row.sidecar.cpuPerRequest / row.bare.cpuPerRequest);
    const rps = rows.map((row) => row.sidecar.rps / row.bare.rps);
    say(`median (min-max): CPU ${unit} sidecar ÷ bare ${range(cpu)}; requests/s sidecar ÷ bare ${range(rps)}; CPU ${unit} bare ${range(rows.map((r) => r.bare.cpuPerRequest), 0)}, sidecar ${range(rows.map((r) => r.sidecar.cpuPerRequest), 0)}`);
    return { cpu, rps };
  };

  const keepAlive: { bare: Side; sidecar: Side }[] = [];
  // Pass 3 paces itself at half the rate pass 1 measured.
  if (passes.has('1') || passes.has('3')) {
    for (let i = 0; i < windows; i += 1) keepAlive.push(await window(pids, ports, token, 'keepalive', { connections, seconds }, clientTls));
    report(`1. cache hit, ${connections} keep-alive connections each, full speed`, keepAlive, 'µs/req');
  }

  if (passes.has('2')) {
    const fresh: { bare: Side; sidecar: Side }[] = [];
    for (let i = 0; i < Math.max(3, Math.ceil(windows / 2)); i += 1) fresh.push(await window(pids, ports, token, 'connections', { connections: 8, seconds }, clientTls));
    report('2. new connections: one request per TLS 1.3 handshake (EC P-256 client certificates), 8 at a time each', fresh, 'µs/conn');
  }

  if (passes.has('3')) {
    const half = median(keepAlive.map((row) => row.bare.rps)) / 2;
    const paced: { bare: Side; sidecar: Side }[] = [];
    for (let i = 0; i < Math.max(3, Math.ceil(windows / 2)); i += 1) paced.push(await window(pids, ports, token, 'keepalive', { connections, seconds, rate: half }, clientTls));
    report(`3. cache hit at half the bare proxy's rate (${half.toFixed(0)} req/s each)`, paced, 'µs/req');
    const extra = paced.map((row) => row.sidecar.p99 - row.bare.p99);
    say(`p99 latency sidecar − bare at that rate: median ${median(extra).toFixed(2)} ms (${Math.min(...extra).toFixed(2)} to ${Math.max(...extra).toFixed(2)})`);
  }
  if (!passes.has('4')) say('\n4. decision path: not asked for (BENCH_PASSES)');
  else if (nginxAvailable()) await decisionPath(pki, as.introspectionUrl, upstreamUrl, token, clientTls, report);
  else say('\n4. decision path: skipped, nginx is not installed');
  await laterPasses({ pki, as: as.introspectionUrl, upstreamUrl, token, clientTls, tls, bare: pids.bare, barePort, sidecar: pids.sidecar, sidecarPort, report });
  say(`\nintrospection calls at the AS during the run: ${as.requests.get('/token/introspection') ?? 0}`);
  await as.stop();
}

/**
 * The passes with processes of their own. 5. The floor: the bare proxy with the sidecar's
 * Fastify hooks present and doing nothing, next to the bare proxy. 6. Tracing on at a 10%
 * sampler (spans to a sink here), next to the same sidecar with tracing off, both at once.
 * 7. Another checkout of the sidecar next to this one (BENCH_AGAINST).
 */
async function laterPasses(run: { pki: Pki; as: string; upstreamUrl: string; token: string; clientTls: Record<string, string>; tls: Record<string, string>; bare: number; barePort: number; sidecar: number; sidecarPort: number; report: (title: string, rows: { bare: Side; sidecar: Side }[], unit: string) => unknown }): Promise<void> {
  if (passes.has('5')) await floorPass(run);
  if (passes.has('6')) await tracingPass(run);
  if (process.env.BENCH_AGAINST !== undefined) await againstPass(run, process.env.BENCH_AGAINST);
}

/** 7. This sidecar ("sidecar" column) next to another version of it ("bare" column), both at once. */
async function againstPass(run: PassRun, checkout: string): Promise<void> {
  const port = await freePort();
  const admin = await freePort();
  const other = pinned('0', [join(checkout, 'src/main.ts')], sidecarEnv(run.pki, { listen: port, admin }, run.as, { PHANTOM_UPSTREAM_URL: run.upstreamUrl }), 'ignore');
  await sidecarReady(admin);
  const rows: { bare: Side; sidecar: Side }[] = [];
  await window({ bare: other.pid ?? 0, sidecar: run.sidecar }, { bare: port, sidecar: run.sidecarPort }, run.token, 'keepalive', { connections, seconds: 5 }, run.clientTls);
  for (let i = 0; i < windows; i += 1) rows.push(await window({ bare: other.pid ?? 0, sidecar: run.sidecar }, { bare: port, sidecar: run.sidecarPort }, run.token, 'keepalive', { connections, seconds }, run.clientTls));
  run.report(`7. this sidecar ("sidecar" column) next to the one at ${checkout} ("bare" column), cache hit, ${connections} keep-alive connections each`, rows, 'µs/req');
  other.kill('SIGTERM');
}

type PassRun = Parameters<typeof laterPasses>[0];

async function floorPass(run: PassRun): Promise<void> {
  const floorPort = await freePort();
  const floor = await untilReady(pinned('0', [join(root, 'bench/baseline.ts')], { PORT: String(floorPort), UPSTREAM_URL: run.upstreamUrl, TLS_CERT: run.tls.cert ?? '', TLS_KEY: run.tls.key ?? '', TLS_CLIENT_CA: run.tls.ca ?? '', BASELINE_HOOKS: '1' }), 'floor proxy');
  const rows: { bare: Side; sidecar: Side }[] = [];
  await window({ bare: run.bare, sidecar: floor.pid ?? 0 }, { bare: run.barePort, sidecar: floorPort }, run.token, 'keepalive', { connections, seconds: 5 }, run.clientTls);
  for (let i = 0; i < windows; i += 1) rows.push(await window({ bare: run.bare, sidecar: floor.pid ?? 0 }, { bare: run.barePort, sidecar: floorPort }, run.token, 'keepalive', { connections, seconds }, run.clientTls));
  run.report(`5. the floor: the bare proxy with the sidecar's Fastify hooks doing nothing ("sidecar" column), next to the bare proxy, ${connections} keep-alive connections each`, rows, 'µs/req');
  floor.kill('SIGTERM');
}

async function tracingPass(run: PassRun): Promise<void> {
  // A sink for the spans: answers every OTLP export at once.
  const { createServer } = await import('node:http');
  const sink = createServer((req, res) => req.resume().on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()));
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const sinkPort = (sink.address() as { port: number }).port;
  const tracedPort = await freePort();
  const tracedAdmin = await freePort();
  const traced = pinned('0', [join(root, 'src/main.ts')], sidecarEnv(run.pki, { listen: tracedPort, admin: tracedAdmin }, run.as, {
    PHANTOM_UPSTREAM_URL: run.upstreamUrl,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.1',
  }), 'ignore');
  await sidecarReady(tracedAdmin);
  const tracing: { bare: Side; sidecar: Side }[] = [];
  await window({ bare: run.sidecar, sidecar: traced.pid ?? 0 }, { bare: run.sidecarPort, sidecar: tracedPort }, run.token, 'keepalive', { connections, seconds: 5 }, run.clientTls);
  for (let i = 0; i < Math.max(3, Math.ceil(windows / 2)); i += 1) tracing.push(await window({ bare: run.sidecar, sidecar: traced.pid ?? 0 }, { bare: run.sidecarPort, sidecar: tracedPort }, run.token, 'keepalive', { connections, seconds }, run.clientTls));
  run.report('6. tracing on, 10% of traces sampled, OTLP/HTTP protobuf to a sink ("sidecar" column), next to the same sidecar with tracing off ("bare" column)', tracing, 'µs/req');
  traced.kill('SIGTERM');
  sink.close();
}

/**
 * The decision service behind nginx auth_request next to nginx alone: the CPU per request of
 * nginx plus the sidecar, against nginx's own, both loaded at the same time on core 0.
 */
async function decisionPath(pki: Pki, introspectionUrl: string, upstreamUrl: string, token: string, clientTls: Record<string, string>, report: (title: string, rows: { bare: Side; sidecar: Side }[], unit: string) => unknown): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'phantom-bench-gateway-'));
  const pair = issueClientCertificate(pki, dir, 'bench-gateway', '/O=phantom-sidecar development/CN=bench gateway');
  const gatewayX5t = createHash('sha256').update(new X509Certificate(readFileSync(pair.cert)).raw).digest('base64url');
  const sidecarPort = await freePort();
  const adminPort = await freePort();
  const decision = pinned('0', [join(root, 'src/main.ts')], sidecarEnv(pki, { listen: sidecarPort, admin: adminPort }, introspectionUrl, {
    PHANTOM_MODE: 'decision',
    PHANTOM_CLIENT_CERT_SOURCE: 'header',
    PHANTOM_CLIENT_CERT_HEADER_FORMAT: 'nginx',
    PHANTOM_TRUSTED_PROXY_CERT_X5T: gatewayX5t,
  }), 'ignore');
  await sidecarReady(adminPort);
  const gateway = { serverCert: pki.path('server.pem'), serverKey: pki.path('server.key'), partnerCa: pki.path('ca.pem'), clientCert: pair.cert, clientKey: pair.key, sidecarPort, upstreamUrl };
  const pin = hasTaskset ? ['taskset', '-c', '0'] : [];
  const alone = await startNginx({ ...gateway, alone: true }, pin);
  const withSidecar = await startNginx(gateway, pin);
  try {
    const pids = { bare: alone.pid, sidecar: [withSidecar.pid, decision.pid ?? 0] };
    const ports = { bare: alone.port, sidecar: withSidecar.port };
    await window(pids, ports, token, 'keepalive', { connections, seconds: 3 }, clientTls);
    const rows: { bare: Side; sidecar: Side }[] = [];
    for (let i = 0; i < Math.max(3, Math.ceil(windows / 2)); i += 1) rows.push(await window(pids, ports, token, 'keepalive', { connections, seconds }, clientTls));
    report(`4. decision path: nginx + auth_request to the sidecar (CPU of both) next to nginx alone, ${connections} keep-alive connections each ("bare" is nginx alone)`, rows, 'µs/req');
  } finally {
    await alone.stop();
    await withSidecar.stop();
    decision.kill('SIGTERM');
  }
}

try {
  await main();
} finally {
  for (const child of children) child.kill('SIGTERM');
}
// Give a profiling sidecar time to write its profile on SIGTERM.
await new Promise((resolve) => setTimeout(resolve, process.env.BENCH_PROFILE_DIR === undefined ? 0 : 2000));
process.exit(0);
