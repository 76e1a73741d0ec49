// What an operator sees when something is wrong that no partner can fix: the authorization
// server refusing the sidecar or unverifiable to it (a start-up check and a throttled warn
// line per fault, with what to change), each counted on /metrics. Readiness stays the
// listener's. Against the real oidc-provider over real TLS.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningAuthorizationServer } from '../../deploy/authorization-server/server.ts';
import { partnerToken, startTestAuthorizationServer } from '../support/as.ts';
import { call } from '../support/client.ts';
import { issueCrl, makePki, type Identity, type Pki } from '../support/pki.ts';
import { baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstream.ts';

const pki: Pki = makePki();
let as: RunningAuthorizationServer;
let upstream: EchoUpstream;

before(async () => {
  as = await startTestAuthorizationServer(pki);
  upstream = await startEchoUpstream();
});
after(async () => {
  await upstream.stop();
  await as.stop();
});

function warnings(sidecar: RunningSidecar): Record<string, unknown>[] {
  return sidecar.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.level === 'warn');
}

async function metricsText(sidecar: RunningSidecar): Promise<string> {
  return (await fetch(`http://127.0.0.1:${sidecar.adminPort}/metrics`)).text();
}

describe('the authorization server, as the operator sees it', () => {
  test('a working AS: the start-up check says so at info, nothing is warned', async () => {
    const sidecar = await startSidecar(baseEnv(pki, upstream.url, as.introspectionUrl));
    try {
      assert.equal(await sidecar.probe(), 'answered');
      assert.deepEqual(warnings(sidecar), []);
      assert.ok(sidecar.logs.some((line) => line.includes('start-up check: the authorization server answers')));
    } finally {
      await sidecar.stop();
    }
  });

  test('a wrong client secret: warned at start with what to change, each 503 counted, one warn line per interval, still ready', async () => {
    const secret = 'not-the-secret-0123456789';
    const sidecar = await startSidecar({ ...baseEnv(pki, upstream.url, as.introspectionUrl), PHANTOM_INTROSPECTION_CLIENT_SECRET: secret });
    try {
      assert.equal(await sidecar.probe(), 'failed');
      const [startUp] = warnings(sidecar);
      assert.equal(startUp?.reason, 'as_rejected_sidecar_credentials');
      assert.match(String(startUp?.remedy), /PHANTOM_INTROSPECTION_CLIENT_ID.*secret.*PHANTOM_INTROSPECTION_AUTH/);
      const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
      for (let i = 0; i < 3; i += 1) {
        const response = await call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}-${i}` } });
        assert.equal(response.status, 503);
      }
      const onPath = warnings(sidecar).filter((line) => String(line.msg).startsWith('the authorization server gave no usable answer'));
      assert.equal(onPath.length, 1, 'throttled to one line per reason and interval');
      assert.equal(onPath[0]?.reason, 'as_rejected_sidecar_credentials');
      assert.match(await metricsText(sidecar), /phantom_as_failures_total\{reason="as_rejected_sidecar_credentials"\} 3/);
      assert.equal((await fetch(`http://127.0.0.1:${sidecar.adminPort}/readyz`)).status, 200);
      for (const line of sidecar.logs) assert.ok(!line.includes(secret) && !line.includes(token), 'no secret or token in a log line');
    } finally {
      await sidecar.stop();
    }
  });

  test('no PHANTOM_INTROSPECTION_CA: the start-up check names it', async () => {
    const env = baseEnv(pki, upstream.url, as.introspectionUrl);
    delete (env as Record<string, string | undefined>).PHANTOM_INTROSPECTION_CA;
    const sidecar = await startSidecar(env);
    try {
      assert.equal(await sidecar.probe(), 'failed');
      const [startUp] = warnings(sidecar);
      assert.equal(startUp?.reason, 'as_unreachable');
      assert.match(String(startUp?.remedy), /PHANTOM_INTROSPECTION_CA/);
    } finally {
      await sidecar.stop();
    }
  });
});

/** A TLS connection attempt; resolves once the server has closed it (or it never opened). */
function attempt(port: number, identity: Identity | undefined): Promise<void> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: pki.ca, servername: 'localhost', cert: identity?.cert, key: identity?.key });
    socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
  });
}

describe('refused TLS handshakes, as the operator sees them', () => {
  let sidecar: RunningSidecar;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'phantom-handshake-'));
    sidecar = await startSidecar({
      ...baseEnv(pki, upstream.url, as.introspectionUrl),
      PHANTOM_TLS_CLIENT_CRL: issueCrl(pki, dir, 'revokes-b', [pki.partnerB.cert]),
      PHANTOM_TLS_HANDSHAKE_TIMEOUT_MS: '300',
    });
  });
  after(() => sidecar?.stop());

  const refusals = (): Record<string, unknown>[] => warnings(sidecar).filter((line) => line.msg === 'TLS handshake refused');

  test('each reason is one warn line with the address and the certificate, counted by reason; repeats are throttled with a count', async () => {
    await attempt(sidecar.port, pki.partnerAExpired);
    await attempt(sidecar.port, pki.rogue);
    await attempt(sidecar.port, pki.partnerB);
    await attempt(sidecar.port, undefined);
    const silent = tcpConnect(sidecar.port, '127.0.0.1');
    silent.on('error', () => undefined);
    await new Promise((resolve) => silent.once('close', resolve));
    for (let i = 0; i < 100 && refusals().length < 5; i += 1) await new Promise((resolve) => setTimeout(resolve, 20));
    const byReason = new Map(refusals().map((line) => [line.reason, line]));
    assert.deepEqual([...byReason.keys()].sort(), ['expired', 'handshake_timeout', 'no_certificate', 'revoked', 'unknown_ca']);
    const expired = byReason.get('expired');
    assert.equal(expired?.remote_address, '127.0.0.1');
    assert.match(String(expired?.subject), /CN=partner-a/);
    assert.match(String(expired?.issuer), /CN=/);
    assert.equal(typeof expired?.serial, 'string');
    assert.equal(expired?.x5t, pki.partnerAExpired.thumbprint);
    assert.equal(byReason.get('revoked')?.x5t, pki.partnerB.thumbprint);
    assert.equal(byReason.get('no_certificate')?.subject, undefined);
    // The same address and reason again within the interval: counted, not logged; the next line says how many were held back.
    await attempt(sidecar.port, pki.partnerAExpired);
    await attempt(sidecar.port, pki.partnerAExpired);
    assert.equal(refusals().filter((line) => line.reason === 'expired').length, 1);
    const metrics = await metricsText(sidecar);
    assert.match(metrics, /phantom_tls_handshake_failures_total\{reason="expired"\} 3/);
    for (const reason of ['unknown_ca', 'revoked', 'no_certificate', 'handshake_timeout']) assert.match(metrics, new RegExp(`phantom_tls_handshake_failures_total\\{reason="${reason}"\\} 1`));
    // A good partner still gets through.
    const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
    assert.equal((await call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } })).status, 200);
  });
});
