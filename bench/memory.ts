// `npm run bench:memory`: what the sidecar holds, as the image runs it (`node dist/main.js`,
// default cache settings) and, where this machine allows (root and a cgroup v1 or v2 memory
// controller), inside a memory cgroup with the Kubernetes limit of 256 MiB, side by side with
// a bare Fastify 5 + @fastify/reply-from mTLS proxy (bench/baseline.ts, compiled the same way)
// under the same limit:
//   - idle RSS of both after start and 200 requests, and their ratio (target <= 1.10);
//   - heap after a forced GC (over the inspector) before and after 100,000 distinct valid
//     tokens: per cached answer with its JWT (target <= 1 KB);
//   - 1,000,000 random tokens from partner B: alive, RSS and the cgroup's peak and failed
//     charges, AS calls, and partner A's token, used all along, still a cache hit.
// The AS is a scripted HTTPS one (it must answer 100,000 distinct tokens fast). Settings:
// MEMORY_TOKENS (100000), MEMORY_RANDOM (1000000), MEMORY_CONCURRENCY (64), MEMORY_LIMIT_MB (256), MEMORY_WARM (200: requests before the idle reading),
// MEMORY_SNAPSHOT_DIR (heap snapshots of the idle sidecar and bare proxy there, to see what each holds),
// MEMORY_SMAPS=1 (their idle RSS by mapping: the node binary, the malloc heap, anonymous memory).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
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
const limitMb = Number(process.env.MEMORY_LIMIT_MB ?? 256);
const warm = Number(process.env.MEMORY_WARM ?? 200);
const say = (text: string): void => void process.stdout.write(`${text}\n`);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// 1. Both programs as JavaScript, as the image runs them (type stripping would add its own memory).
const out = join(root, '.bench-dist');
rmSync(out, { recursive: true, force: true });
const tsc = join(root, 'node_modules/typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', out], { stdio: 'inherit' });
execFileSync(process.execPath, [tsc, join(root, 'bench/baseline.ts'), '--outDir', join(out, 'baseline'), '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2023', '--skipLibCheck', '--rewriteRelativeImportExtensions'], { stdio: 'inherit' });

/** A memory cgroup with the limit, or undefined where this machine does not allow one. */
function memoryCgroup(name: string): { dir: string; version: 1 | 2 } | undefined {
  const v1 = '/sys/fs/cgroup/memory';
  const v2 = '/sys/fs/cgroup';
  try {
    if (existsSync(join(v1, 'memory.limit_in_bytes')) || existsSync(join(v1, 'cgroup.procs'))) {
      const dir = join(v1, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitMb * 1024 * 1024));
      return { dir, version: 1 };
    }
    if (existsSync(join(v2, 'cgroup.controllers'))) {
      const dir = join(v2, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'memory.max'), String(limitMb * 1024 * 1024));
      return { dir, version: 2 };
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function cgroupFigures(group: { dir: string; version: 1 | 2 } | undefined): string {
  if (group === undefined) return 'no cgroup';
  const read = (file: string) => readFileSync(join(group.dir, file), 'utf8').trim();
  if (group.version === 1) return `cgroup peak ${(Number(read('memory.max_usage_in_bytes')) / 1048576).toFixed(1)} MB, failed charges ${read('memory.failcnt')}, OOM kills ${/oom_kill (\d+)/.exec(read('memory.oom_control'))?.[1] ?? '?'}`;
  return `cgroup peak ${existsSync(join(group.dir, 'memory.peak')) ? (Number(read('memory.peak')) / 1048576).toFixed(1) : '?'} MB, ${read('memory.events').replace(/\n/g, ', ')}`;
}

/** Starts `args` under node, inside the cgroup when there is one. */
function start(args: string[], env: NodeJS.ProcessEnv, group: { dir: string } | undefined): ChildProcess {
  const node = [process.execPath, ...args].map((arg) => `'${arg}'`).join(' ');
  const command = group === undefined ? `exec ${node}` : `echo $$ > '${join(group.dir, 'cgroup.procs')}' && exec ${node}`;
  return spawn('sh', ['-c', command], { env: { ...env, PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'ignore', 'inherit'] });
}

/** An anonymous mapping by its size: glibc's thread arenas reserve 64 MiB (or 128 MiB), V8's heap 256 KiB pages. */
function anonymousKind(header: string): string {
  const [start, end] = (header.split(' ')[0] ?? '').split('-').map((hex) => Number.parseInt(hex, 16));
  const mib = ((end ?? 0) - (start ?? 0)) / 1048576;
  return mib >= 60 ? 'anonymous >= 60 MiB (malloc arenas)' : mib >= 8 ? 'anonymous 8-60 MiB' : 'anonymous < 8 MiB';
}

/** RSS by kind of mapping, MB: the file it maps (its base name), [heap], or anonymous (by size). */
function rssByMapping(pid: number | undefined): string {
  const totals = new Map<string, number>();
  let current = 'anonymous';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) current = header[1] === '' || header[1] === undefined ? anonymousKind(line) : (header[1].split('/').at(-1) ?? header[1]);
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null) totals.set(current, (totals.get(current) ?? 0) + Number(rss[1]) / 1024);
  }
  return megabytes([...totals].filter(([, mb]) => mb >= 0.5).sort((a, b) => b[1] - a[1]));
}

const rssMb = (pid: number | undefined): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

interface AfterGc {
  heapMb: number;
  /** process.memoryUsage() in the process, MB: where its RSS goes. */
  usage: Record<string, number>;
}

/** "name 1.2, other 3.4": figures in MB as the report prints them. */
const megabytes = (figures: Iterable<[string, number]>): string => [...figures].map(([name, mb]) => `${name} ${mb.toFixed(1)}`).join(', ');

/** Heap used after a full GC, and the process's own memory figures, read over the inspector (opened by SIGUSR1 on --inspect-port). */
async function afterGc(child: ChildProcess, inspectPort: number): Promise<AfterGc> {
  child.kill('SIGUSR1');
  let targets: { webSocketDebuggerUrl: string }[] = [];
  for (let attempt = 0; attempt < 50 && targets.length === 0; attempt += 1) {
    targets = await fetch(`http://127.0.0.1:${inspectPort}/json/list`).then((r) => r.json() as Promise<{ webSocketDebuggerUrl: string }[]>, () => []);
    if (targets.length === 0) await pause(100);
  }
  const socket = new WebSocket(targets[0]?.webSocketDebuggerUrl ?? '');
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let id = 0;
  const send = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<Record<string, unknown>>((resolve) => {
      id += 1;
      const mine = id;
      socket.addEventListener('message', function listener(event) {
        const message = JSON.parse(String(event.data)) as { id?: number; result?: Record<string, unknown> };
        if (message.id !== mine) return;
        socket.removeEventListener('message', listener);
        resolve(message.result ?? {});
      });
      socket.send(JSON.stringify({ id: mine, method, params }));
    });
  await send('HeapProfiler.collectGarbage');
  await send('HeapProfiler.collectGarbage');
  const { usedSize } = (await send('Runtime.getHeapUsage')) as { usedSize: number };
  const evaluated = (await send('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result?: { value?: string } };
  socket.close();
  const usage = Object.fromEntries(Object.entries(JSON.parse(evaluated.result?.value ?? '{}') as Record<string, number>).map(([name, bytes]) => [name, bytes / 1048576]));
  return { heapMb: usedSize / 1048576, usage };
}

const pki = makePki();
const fake = await startFakeAuthorizationServer(pki);
let asked = 0;
fake.handle = (seen, res) => {
  asked += 1;
  const token = new URLSearchParams(seen.body).get('token') ?? '';
  json(res, token.startsWith('ok-') ? { ...boundAnswer(pki.partnerA.thumbprint), exp: Math.floor(Date.now() / 1000) + 3600, sub: `user-${token.slice(3)}` } : { active: false });
};
const upstream = await startEchoUpstream();

async function send(port: number, identity: Identity, count: number, tokenOf: (i: number) => string): Promise<Map<number, number>> {
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

async function ready(check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 200; attempt += 1) {
    if (await check()) return;
    await pause(50);
  }
  throw new Error('did not start');
}

// 2. The bare proxy, idle, under the same limit.
const bareGroup = memoryCgroup('phantom-bench-bare');
const barePort = await freePort();
const snapshots = process.env.MEMORY_SNAPSHOT_DIR;
const snapshotFlags = snapshots === undefined ? [] : ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshots}`];
const bareInspect = await freePort();
const bare = start([`--inspect-port=127.0.0.1:${bareInspect}`, ...snapshotFlags, join(out, 'baseline/baseline.js')], { TLS_CERT: pki.path('server.pem'), TLS_KEY: pki.path('server.key'), TLS_CLIENT_CA: pki.path('ca.pem'), UPSTREAM_URL: upstream.url, PORT: String(barePort) }, bareGroup);
await ready(() => send(barePort, pki.partnerA, 1, () => 'x').then((s) => s.has(200)));
await send(barePort, pki.partnerA, warm, (i) => `warm-${i}`);
await pause(2000);
const bareIdle = rssMb(bare.pid);

// 3. The sidecar, default cache settings, under the limit.
const group = memoryCgroup('phantom-bench-sidecar');
const port = await freePort();
const adminPort = await freePort();
const inspectPort = await freePort();
const sidecar = start([`--inspect-port=127.0.0.1:${inspectPort}`, ...snapshotFlags, join(out, 'main.js')], { ...baseEnv(pki, upstream.url, fake.url), PHANTOM_LISTEN_PORT: String(port), PHANTOM_ADMIN_PORT: String(adminPort), PHANTOM_CACHE_MAX_TTL_S: '3600', PHANTOM_MAX_CONCURRENT_PER_CLIENT: '1000', PHANTOM_LOG_LEVEL: 'warn' }, group);
await ready(() => fetch(`http://127.0.0.1:${adminPort}/readyz`).then((r) => r.ok, () => false));
await send(port, pki.partnerA, warm, (i) => `ok-warm-${i}`);
await pause(2000);
const idle = rssMb(sidecar.pid);
if (process.env.MEMORY_SMAPS === '1') say(`  idle RSS by mapping (MB): sidecar ${rssByMapping(sidecar.pid)}; bare ${rssByMapping(bare.pid)}`);
say(`bench:memory: as the image runs it (node dist/main.js), default cache settings, ${group === undefined ? 'no memory cgroup on this machine' : `a memory cgroup of ${limitMb} MiB (cgroup v${group.version})`}, a scripted AS`);
say(`  idle RSS after start and ${warm} requests: sidecar ${idle.toFixed(1)} MB, bare Fastify + reply-from proxy ${bareIdle.toFixed(1)} MB: ratio ${(idle / bareIdle).toFixed(3)} (target <= 1.10)`);
if (snapshots !== undefined) {
  sidecar.kill('SIGUSR2');
  bare.kill('SIGUSR2');
  await pause(5000);
}
// After the RSS readings: the inspector these open costs memory of its own.
const bareAfterGc = await afterGc(bare, bareInspect);
const sidecarAfterGc = await afterGc(sidecar, inspectPort);
say(`  idle, after a full GC (MB): sidecar ${megabytes(Object.entries(sidecarAfterGc.usage))}; bare ${megabytes(Object.entries(bareAfterGc.usage))}`);
bare.kill('SIGTERM');

const heapBefore = sidecarAfterGc.heapMb;
const hotToken = 'ok-partner-a-hot';
const started = Date.now();
const active = await send(port, pki.partnerA, tokens, (i) => (i % 100 === 0 ? hotToken : `ok-${i}`));
await pause(1000);
const heapAfter = (await afterGc(sidecar, inspectPort)).heapMb;
const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
const entries = Number(/^phantom_introspection_cache_entries (\d+)/m.exec(await metrics())?.[1] ?? 'NaN');
say(`  ${tokens} distinct valid tokens in ${((Date.now() - started) / 1000).toFixed(0)} s (statuses ${JSON.stringify(Object.fromEntries(active))}), ${entries} answers cached`);
say(`  heap after GC ${heapBefore.toFixed(1)} -> ${heapAfter.toFixed(1)} MB: ${(((heapAfter - heapBefore) * 1048576) / entries).toFixed(0)} bytes per cached answer with its JWT (target <= 1024); RSS ${rssMb(sidecar.pid).toFixed(1)} MB`);

const askedBefore = asked;
const fishing = await send(port, pki.partnerB, random, (i) => `random-${i}-${Math.random().toString(36).slice(2)}`);
await pause(2000);
const alive = sidecar.exitCode === null && existsSync(`/proc/${sidecar.pid}`);
const hitsBefore = Number(/^phantom_introspection_cache_total\{outcome="hit"\} (\d+)/m.exec(await metrics())?.[1] ?? 0);
const askedBeforeHot = asked;
const hot = await send(port, pki.partnerA, 1, () => hotToken);
const hitsAfter = Number(/^phantom_introspection_cache_total\{outcome="hit"\} (\d+)/m.exec(await metrics())?.[1] ?? 0);
say(`  partner B: ${random} random tokens (statuses ${JSON.stringify(Object.fromEntries(fishing))}), AS calls ${asked - askedBefore}`);
say(`  after it: ${alive ? 'alive' : 'NOT ALIVE'}, RSS ${alive ? rssMb(sidecar.pid).toFixed(1) : '-'} MB of ${limitMb} MiB, ${cgroupFigures(group)}`);
say(`  partner A's token, used all along: ${JSON.stringify(Object.fromEntries(hot))}, ${hitsAfter - hitsBefore === 1 && asked === askedBeforeHot ? 'a cache hit (no AS call)' : 'NOT a cache hit'}`);
sidecar.kill('SIGTERM');
await pause(500);
for (const dir of [group?.dir, bareGroup?.dir]) if (dir !== undefined) try { rmdirSync(dir); } catch { /* still emptying */ }
rmSync(out, { recursive: true, force: true });
await upstream.stop();
await fake.stop();
process.exit(0);
