import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildAdmin } from '../../src/admin.ts';
import { createLogger } from '../../src/log.ts';
import { SidecarMetrics } from '../../src/metrics.ts';
import { SsfReceiver, memoryJtiLedger } from '../../src/fleet/ssf-receiver.ts';
import { Writable } from 'node:stream';
import { connect, type AddressInfo, type Socket } from 'node:net';

const sources = (entries: number) => ({
  activeEntries: () => entries,
  inactiveEntries: () => 0,
  introspectionsInFlight: () => 0,
  upstreamSlotsInUse: () => 0,
  serverNotAfterMs: () => 2_000_000_000_000,
  crlNextUpdateMs: () => undefined,
  now: () => 1_999_999_000_000,
});

const deadlines = { headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 300 };

const quiet = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));

test('readyz follows readiness: 503 while starting or draining, 200 when ready', async () => {
  const readiness = { ready: false };
  const admin = buildAdmin({ logger: quiet, deadlines, readiness, jwks: { keys: [] }, metrics: new SidecarMetrics(sources(0)) });
  assert.equal((await admin.inject('/readyz')).statusCode, 503);
  readiness.ready = true;
  assert.equal((await admin.inject('/readyz')).statusCode, 200);
  readiness.ready = false;
  assert.equal((await admin.inject('/readyz')).statusCode, 503);
  assert.equal((await admin.inject('/healthz')).statusCode, 200, 'alive all along');
  assert.equal((await admin.inject('/anything-else')).statusCode, 404);
});

test('metrics count requests by status and reason, and cache outcomes', async () => {
  const metrics = new SidecarMetrics(sources(7));
  const base = { interactionId: 'i', method: 'GET', path: '/a', clientId: undefined, sub: undefined, x5t: undefined, reason: undefined, detail: undefined, rule: undefined, anonymous: false };
  metrics.record({ ...base, status: 200, durationMs: 3, cache: 'hit' });
  metrics.record({ ...base, status: 200, durationMs: 4, cache: 'hit' });
  metrics.record({ ...base, status: 401, durationMs: 1, cache: 'miss', reason: 'binding_mismatch' });
  metrics.record({ ...base, status: 400, durationMs: 1, cache: 'none', reason: 'token_in_query' });
  const admin = buildAdmin({ logger: quiet, deadlines, readiness: { ready: true }, jwks: { keys: [] }, metrics });
  const text = (await admin.inject('/metrics')).body;
  assert.match(text, /phantom_requests_total\{status="200",reason="",rule=""\} 2/);
  assert.match(text, /phantom_requests_total\{status="401",reason="binding_mismatch",rule=""\} 1/);
  assert.match(text, /phantom_introspection_cache_total\{outcome="hit"\} 2/);
  assert.match(text, /phantom_introspection_cache_total\{outcome="miss"\} 1/);
  assert.doesNotMatch(text, /outcome="none"/);
  assert.match(text, /phantom_introspection_cache_entries 7/);
  assert.match(text, /phantom_request_duration_seconds_count 4/);
  assert.match(text, /phantom_process_cpu_seconds_total/);
});

async function listening(): Promise<{ port: number; close: () => Promise<void> }> {
  const admin = buildAdmin({ logger: quiet, deadlines, readiness: { ready: true }, jwks: { keys: [] }, metrics: new SidecarMetrics(sources(0)) });
  await admin.listen({ host: '127.0.0.1', port: 0 });
  return { port: (admin.server.address() as AddressInfo).port, close: () => admin.close() };
}

/** Milliseconds until the server closes the socket (undefined past `limitMs`), and what it wrote. */
function closing(socket: Socket, limitMs: number): Promise<{ ms: number | undefined; text: string }> {
  const started = Date.now();
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
  socket.on('error', () => undefined);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ ms: undefined, text }), limitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ ms: Date.now() - started, text });
    });
  });
}

test('the admin listener has the mTLS listener\'s deadlines: silent, slow-head and trickled-body clients are cut off', async () => {
  const admin = await listening();
  try {
    const silent = connect(admin.port, '127.0.0.1');
    const head = connect(admin.port, '127.0.0.1');
    head.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    const body = connect(admin.port, '127.0.0.1');
    body.write('POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{');
    const [a, b, c] = await Promise.all([closing(silent, 3000), closing(head, 3000), closing(body, 3000)]);
    assert.ok(a.ms !== undefined && a.ms < 1500, `a silent connection lived ${a.ms} ms`);
    assert.ok(b.ms !== undefined && b.ms < 1500, `a head that never ends lived ${b.ms} ms`);
    assert.ok(c.ms !== undefined && c.ms < 2000, `a trickled body lived ${c.ms} ms`);
  } finally {
    await admin.close();
  }
});

test('the admin listener refuses a body over 64 KiB', async () => {
  const admin = await listening();
  try {
    const response = await fetch(`http://127.0.0.1:${admin.port}/healthz`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ x: 'y'.repeat(70_000) }) });
    assert.equal(response.status, 413);
  } finally {
    await admin.close();
  }
});

test('/ssf/events checks the push bearer token before reading a byte of the body', async () => {
  const ssf = new SsfReceiver({ issuer: 'https://as.test', jwksUrl: new URL('https://127.0.0.1:1/jwks'), audience: 'https://api.test', ca: undefined, authToken: 'push-secret' }, { revoke: async () => undefined }, memoryJtiLedger(), quiet);
  const admin = buildAdmin({ logger: quiet, deadlines: { headersTimeoutMs: 5000, requestTimeoutMs: 10_000, keepAliveTimeoutMs: 5000 }, readiness: { ready: true }, jwks: { keys: [] }, metrics: new SidecarMetrics(sources(0)), ssf });
  await admin.listen({ host: '127.0.0.1', port: 0 });
  try {
    const socket = connect((admin.server.address() as AddressInfo).port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.on('error', () => undefined);
    // The head only: a body of 60,000 bytes is announced and never sent.
    socket.write('POST /ssf/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Type: application/secevent+jwt\r\nContent-Length: 60000\r\n\r\n');
    for (let waited = 0; waited < 1000 && !text.includes('authentication_failed'); waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /"err":"authentication_failed"/);
    socket.destroy();
    const metrics = (await admin.inject('/metrics')).body;
    assert.match(metrics, /phantom_ssf_events_total\{status="400"\} 1/);
  } finally {
    await admin.close();
    await ssf.close();
  }
});
