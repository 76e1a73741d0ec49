// Operations under traffic: a SIGTERM loses no request the sidecar accepted, and a
// certificate rotation fails none.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { Agent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { partnerToken } from '../support/as.ts';
import { call } from '../support/client.ts';
import { issueServerCertificate } from '../support/pki.ts';
import { startSidecarProcess } from '../support/process.ts';
import { baseEnv, startSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

let stack: Stack;
let token: string;

before(async () => {
  stack = await startStack();
  token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
});
after(() => stack?.stop());

interface Outcome {
  sentAt: number;
  status: number | 'error';
  complete: boolean;
}

/** Requests at `perSecond` until `stop()` says so, each recorded with when it was sent. */
function load(port: number, perSecond: number, agent: Agent | false, extra: { servername?: string } = {}) {
  const outcomes: Promise<Outcome>[] = [];
  let running = true;
  let pending = 0;
  const pki = stack.pki;
  const done = (async () => {
    while (running) {
      const sentAt = Date.now();
      pending += 1;
      outcomes.push(
        call({ port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, agent, headers: { authorization: `Bearer ${token}` }, ...extra }).then(
          (response) => ({ sentAt, status: response.status, complete: response.json.method === 'GET' }),
          () => ({ sentAt, status: 'error' as const, complete: false }),
        ).finally(() => (pending -= 1)),
      );
      await sleep(1000 / perSecond);
    }
  })();
  return {
    sent: () => outcomes.length,
    pending: () => pending,
    stop: async (): Promise<Outcome[]> => {
      running = false;
      await done;
      return Promise.all(outcomes);
    },
  };
}

/** Waits, within `limitMs`, until `ready()`: a test's precondition is reached, not assumed from a rate. */
async function until(ready: () => boolean, limitMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!ready()) {
    if (Date.now() - started > limitMs) throw new Error(`precondition not reached in ${limitMs} ms: ${what}`);
    await sleep(10);
  }
}

test('SIGTERM under 200 requests/s: every request in flight gets its complete response, new connections are refused, exit 0 within the drain time', async () => {
  const sidecar = await startSidecarProcess({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_DRAIN_TIMEOUT_S: '5' });
  const agent = new Agent({ keepAlive: true, maxSockets: 100 });
  stack.upstream.delayMs = 300;
  try {
    const traffic = load(sidecar.port, 200, agent);
    // However busy the machine: enough requests sent, and enough of them waiting on the API.
    await until(() => traffic.sent() > 150 && traffic.pending() > 20, 20_000, '150 requests sent and 20 in flight');
    const sigtermAt = Date.now();
    sidecar.child.kill('SIGTERM');
    await sleep(500);
    const refused = await call({ port: sidecar.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { authorization: `Bearer ${token}` } }).then(() => 'answered', (error: NodeJS.ErrnoException) => error.code);
    const outcomes = await traffic.stop();
    const code = await Promise.race([sidecar.exit, sleep(6000).then(() => 'still running')]);
    // Sent well before the signal: the sidecar had accepted them.
    const accepted = outcomes.filter((outcome) => outcome.sentAt < sigtermAt - 50);
    assert.ok(accepted.length > 100, `only ${accepted.length} requests before SIGTERM`);
    const lost = accepted.filter((outcome) => outcome.status !== 200 || !outcome.complete);
    assert.deepEqual(lost, [], `${lost.length} accepted requests lost`);
    assert.equal(refused, 'ECONNREFUSED');
    assert.equal(code, 0);
    assert.match(sidecar.output(), /"msg":"draining"/);
  } finally {
    stack.upstream.delayMs = 0;
    agent.destroy();
    sidecar.child.kill('SIGKILL');
  }
});

test('SIGTERM under 20 keep-alive connections sending back to back: no request is reset, none goes unanswered', async () => {
  const sidecar = await startSidecarProcess({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_DRAIN_TIMEOUT_S: '10' });
  const pki = stack.pki;
  let answered = 0;
  let resets = 0;
  let other = 0;
  let stopped = false;
  const agents: Agent[] = [];
  // Each worker sends its next request the moment the last one is answered, on its own keep-alive connection.
  const worker = async (): Promise<void> => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    for (;;) {
      const outcome = await call({ port: sidecar.port, method: 'POST', body: '{"amount":1}', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, agent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }).then(
        (response) => (response.status === 200 ? 'answered' : 'other'),
        (error: NodeJS.ErrnoException) => (error.code === 'ECONNREFUSED' ? 'refused' : 'reset'),
      );
      if (outcome === 'answered') answered += 1;
      else if (outcome === 'other') other += 1;
      else if (outcome === 'reset') resets += 1;
      // The listener is closed: a connection that was never opened carried no request.
      if (outcome === 'refused' || stopped) return;
    }
  };
  try {
    const workers = Array.from({ length: 20 }, () => worker());
    await until(() => answered >= 300, 30_000, '300 answered requests before SIGTERM');
    sidecar.child.kill('SIGTERM');
    const code = await Promise.race([sidecar.exit, sleep(12_000).then(() => 'still running')]);
    stopped = true;
    await Promise.all(workers);
    assert.equal(code, 0);
    assert.deepEqual({ resets, other }, { resets: 0, other: 0 }, `${answered} answered`);
  } finally {
    stopped = true;
    for (const agent of agents) agent.destroy();
    sidecar.child.kill('SIGKILL');
  }
});

test('a drain never outlasts PHANTOM_DRAIN_TIMEOUT_S, however slow the API', async () => {
  const sidecar = await startSidecarProcess({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_DRAIN_TIMEOUT_S: '1' });
  stack.upstream.delayMs = 6000;
  try {
    const stuck = call({ port: sidecar.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { authorization: `Bearer ${token}` } }).catch(() => undefined);
    await sleep(300);
    const started = Date.now();
    sidecar.child.kill('SIGTERM');
    const code = await Promise.race([sidecar.exit, sleep(4000).then(() => 'still running')]);
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 2500, `exited after ${Date.now() - started} ms`);
    assert.match(sidecar.output(), /drain timeout/);
    await stuck;
  } finally {
    stack.upstream.delayMs = 0;
    sidecar.child.kill('SIGKILL');
  }
});

test('a server certificate rotation under 100 new connections/s fails no request', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'phantom-rotate-'));
  for (const file of ['server.pem', 'server.key']) copyFileSync(stack.pki.path(file), join(dir, file));
  const sidecar = await startSidecar({
    ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl),
    PHANTOM_TLS_CERT: join(dir, 'server.pem'),
    PHANTOM_TLS_KEY: join(dir, 'server.key'),
    PHANTOM_TLS_RELOAD_INTERVAL_S: '1',
  });
  try {
    const traffic = load(sidecar.port, 100, false);
    await until(() => traffic.sent() > 50, 20_000, '50 requests before the rotation');
    const renewed = issueServerCertificate(stack.pki, dir, 'rotated', 'DNS:localhost,IP:127.0.0.1');
    copyFileSync(renewed.key, join(dir, 'server.key'));
    copyFileSync(renewed.cert, join(dir, 'server.pem'));
    const rotatedAt = traffic.sent();
    await until(() => sidecar.logs.some((line) => line.includes('reloaded')) && traffic.sent() > rotatedAt + 100, 20_000, '100 requests after the reload');
    const outcomes = await traffic.stop();
    assert.ok(outcomes.length > 150, `${outcomes.length} requests`);
    const failed = outcomes.filter((outcome) => outcome.status !== 200);
    assert.deepEqual(failed, []);
    assert.ok(sidecar.logs.some((line) => line.includes('reloaded')), 'the certificate was never reloaded');
  } finally {
    await sidecar.stop();
  }
});

test('a typo in a PHANTOM_ variable stops the start with exit 2, naming the closest one; a loosened check is logged', async () => {
  const typo = await startSidecarProcess({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_EXPECTED_AUDIANCE: 'https://x' });
  assert.equal(await typo.exit, 2);
  assert.equal(typo.output().trim(), 'phantom-sidecar: PHANTOM_EXPECTED_AUDIANCE: is not a known setting (did you mean PHANTOM_EXPECTED_AUDIENCE?)');
  const loose = await startSidecarProcess({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_EXPECTED_AUDIENCE: '', PHANTOM_ALLOW_ANY_AUDIENCE: 'true' });
  try {
    loose.child.kill('SIGTERM');
    await loose.exit;
    assert.match(loose.output(), /"level":"warn".*"setting":"PHANTOM_ALLOW_ANY_AUDIENCE=true".*"msg":"a check is loosened by configuration"/);
  } finally {
    loose.child.kill('SIGKILL');
  }
});
