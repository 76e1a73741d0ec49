// Connections that cost memory and never ask for anything: closed within the head deadline
// of their handshake, capped per partner certificate and in total, while other partners keep
// getting through. The 2,000-connection case runs the sidecar as its own process, so that
// its resident memory can be read apart from the test's.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { partnerToken } from '../support/as.ts';
import { call } from '../support/client.ts';
import { startSidecarProcess } from '../support/process.ts';
import type { Identity } from '../support/pki.ts';
import { baseEnv, startSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
let stack: Stack;

before(async () => {
  stack = await startStack();
});
after(() => stack?.stop());

function rssKb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((candidate) => candidate.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? 0);
}

interface Opened {
  socket: TLSSocket;
  openedAt: number;
  closedAt?: number;
}

/** One mTLS connection whose close is watched from its first moment (a refused one closes at once). */
function openWatched(port: number, identity: Identity): Promise<Opened | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, ca: stack.pki.ca, servername: 'localhost', cert: identity.cert, key: identity.key });
    const entry: Opened = { socket, openedAt: 0 };
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    socket.once('close', () => {
      entry.closedAt = Date.now();
      resolve(entry.openedAt === 0 ? undefined : entry);
    });
    socket.once('secureConnect', () => {
      entry.openedAt = Date.now();
      resolve(entry);
    });
  });
}

/** Opens `count` mTLS connections, `parallel` at a time; each records when the server closed it. */
async function openMany(port: number, count: number, parallel: number, identity: Identity = stack.pki.partnerB): Promise<Opened[]> {
  const opened: Opened[] = [];
  for (let start = 0; start < count; start += parallel) {
    const batch = await Promise.all(Array.from({ length: Math.min(parallel, count - start) }, () => openWatched(port, identity)));
    for (const entry of batch) if (entry !== undefined) opened.push(entry);
  }
  return opened;
}

test('2,000 handshaken connections that send nothing are all closed within PHANTOM_HEADERS_TIMEOUT_MS of their handshake, at a bounded cost each', async () => {
  const headersTimeoutMs = 1000;
  const sidecar = await startSidecarProcess({
    ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl),
    PHANTOM_HEADERS_TIMEOUT_MS: String(headersTimeoutMs),
    PHANTOM_MAX_CONNECTIONS_PER_CLIENT: '4000',
    PHANTOM_MAX_CONNECTIONS: '4000',
  });
  const pid = sidecar.child.pid ?? 0;
  try {
    const idleRss = rssKb(pid);
    const connections = await openMany(sidecar.port, 2000, 100);
    assert.equal(connections.length, 2000);
    const peakRss = rssKb(pid);
    for (let waited = 0; waited < 15_000 && connections.some((entry) => entry.closedAt === undefined); waited += 100) await sleep(100);
    const open = connections.filter((entry) => entry.closedAt === undefined);
    assert.equal(open.length, 0, `${open.length} idle connections still open`);
    // The deadline plus the listener's check interval (250 ms here) and loop lag on a busy machine.
    const longest = Math.max(...connections.map((entry) => (entry.closedAt ?? 0) - entry.openedAt));
    assert.ok(longest < headersTimeoutMs + 1500, `an idle connection lived ${longest} ms`);
    const perConnectionKb = (peakRss - idleRss) / 2000;
    process.stdout.write(`# idle RSS ${idleRss} kB, with 2,000 idle connections at most ${peakRss} kB (${perConnectionKb.toFixed(1)} kB each)\n`);
    assert.ok(perConnectionKb < 150, `${perConnectionKb} kB per idle connection`);
  } finally {
    sidecar.child.kill('SIGKILL');
  }
});

test('past PHANTOM_MAX_CONNECTIONS_PER_CLIENT a partner\'s new connections are refused, and partner A still connects and gets 200', async () => {
  const sidecar = await startSidecar({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_MAX_CONNECTIONS_PER_CLIENT: '50' });
  try {
    const connections = await openMany(sidecar.port, 80, 20);
    await sleep(300);
    const open = connections.filter((entry) => entry.closedAt === undefined);
    assert.equal(open.length, 50);
    const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    const response = await call({ port: sidecar.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    const metrics = await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/metrics`)).text();
    assert.match(metrics, /phantom_connections_refused_total\{cap="per_client"\} 30/);
    assert.equal(sidecar.logs.filter((line) => line.includes('PHANTOM_MAX_CONNECTIONS_PER_CLIENT')).length, 1, 'one warn line, not thirty');
    for (const entry of open) entry.socket.destroy();
  } finally {
    await sidecar.stop();
  }
});

test('past PHANTOM_MAX_CONNECTIONS new TCP connections are closed before any TLS work', async () => {
  const sidecar = await startSidecar({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_MAX_CONNECTIONS: '10' });
  try {
    const connections = await openMany(sidecar.port, 10, 10);
    assert.equal(connections.length, 10);
    const extra = tcpConnect(sidecar.port, '127.0.0.1');
    extra.on('error', () => undefined);
    const closed = await Promise.race([new Promise((resolve) => extra.once('close', () => resolve('closed'))), sleep(2000).then(() => 'open')]);
    assert.equal(closed, 'closed');
    const metrics = await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/metrics`)).text();
    assert.match(metrics, /phantom_connections_refused_total\{cap="total"\} 1/);
    for (const entry of connections) entry.socket.destroy();
  } finally {
    await sidecar.stop();
  }
});
