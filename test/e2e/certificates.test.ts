// Certificates that were taken away: a revoked partner certificate, a CRL or CA bundle that
// changes under open connections, a stale CRL, connections that live too long; and the
// server certificate's expiry as a metric.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { loadConfig, ConfigError } from '../../src/config/config.ts';
import { partnerToken } from '../support/as.ts';
import { issueCrl, makePki, type Identity, type Pki } from '../support/pki.ts';
import { closedWithin, openTls, readResponse, type RawResponse } from '../support/raw.ts';
import { baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function handshakeFails(sidecar: RunningSidecar, identity: Identity, pki: Pki): Promise<boolean> {
  return openTls(sidecar.port, identity, pki).then(
    async (socket) => {
      // TLS 1.3 reports a refused client certificate just after the handshake.
      const closed = await closedWithin(socket, 300);
      socket.destroy();
      return closed !== undefined;
    },
    () => true,
  );
}

async function metric(sidecar: RunningSidecar, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

describe('CRLs and trust changes under open connections', () => {
  let stack: Stack;
  let pki: Pki;
  let dir: string;
  let sidecar: RunningSidecar;
  let token: string;

  const request = async (socket: TLSSocket): Promise<RawResponse> => {
    const response = readResponse(socket);
    socket.write(`GET /api/accounts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    return response;
  };

  before(async () => {
    stack = await startStack();
    pki = stack.pki;
    dir = mkdtempSync(join(tmpdir(), 'phantom-crl-'));
    copyFileSync(pki.path('ca.pem'), join(dir, 'ca.pem'));
    copyFileSync(issueCrl(pki, dir, 'revokes-b', [pki.partnerB.cert]), join(dir, 'current.crl.pem'));
    sidecar = await startSidecar({
      ...baseEnv(pki, stack.upstream.url, stack.as.introspectionUrl),
      PHANTOM_TLS_CLIENT_CA: join(dir, 'ca.pem'),
      PHANTOM_TLS_CLIENT_CRL: join(dir, 'current.crl.pem'),
      PHANTOM_TLS_RELOAD_INTERVAL_S: '3600',
    });
    token = await partnerToken(stack.as, 'partner-a', pki.partnerA, pki);
  });
  after(async () => {
    await sidecar?.stop();
    await stack?.stop();
  });

  test('a partner certificate on the CRL fails the handshake; others pass', async () => {
    assert.equal(await handshakeFails(sidecar, pki.partnerB, pki), true);
    assert.equal(await handshakeFails(sidecar, pki.partnerA, pki), false);
    assert.ok((await metric(sidecar, 'phantom_tls_crl_next_update_seconds'))! > 6 * 86_400);
  });

  test('a new CRL revoking A: A\'s busy connection closes after its response, its idle one at once, and A cannot come back', async () => {
    const busy = await openTls(sidecar.port, pki.partnerA, pki);
    const idle = await openTls(sidecar.port, pki.partnerA, pki);
    assert.equal((await request(busy)).status, 200);
    assert.equal((await request(idle)).status, 200);
    stack.upstream.delayMs = 300;
    const inFlight = request(busy);
    await sleep(100);
    copyFileSync(issueCrl(pki, dir, 'revokes-a-and-b', [pki.partnerA.cert, pki.partnerB.cert]), join(dir, 'current.crl.pem'));
    sidecar.tls.check();
    stack.upstream.delayMs = 0;
    assert.ok((await closedWithin(idle, 1000)) !== undefined, 'the idle connection was kept');
    const last = await inFlight;
    assert.equal(last.status, 200, 'the request under way is answered in full');
    assert.equal(last.headers.connection, 'close');
    assert.ok((await closedWithin(busy, 1000)) !== undefined, 'the busy connection was kept');
    assert.equal(await handshakeFails(sidecar, pki.partnerA, pki), true);
  });

  test('a CRL past its nextUpdate is warned about on every check and shows as negative seconds', async () => {
    copyFileSync(issueCrl(pki, dir, 'stale', [], 1), join(dir, 'current.crl.pem'));
    sidecar.tls.check();
    await sleep(1200);
    const warnings = () => sidecar.logs.filter((line) => line.includes('past its nextUpdate')).length;
    const before = warnings();
    sidecar.tls.check();
    sidecar.tls.check();
    assert.equal(warnings(), before + 2);
    assert.ok((await metric(sidecar, 'phantom_tls_crl_next_update_seconds'))! < 0);
  });

  test('the server certificate\'s expiry is a metric', async () => {
    const notAfter = Date.parse(new X509Certificate(pki.server.cert).validTo);
    const seconds = (await metric(sidecar, 'phantom_tls_server_certificate_expiry_seconds'))!;
    assert.ok(Math.abs(seconds - (notAfter - Date.now()) / 1000) < 60, String(seconds));
  });
});

describe('a partner CA removed, and connection age', () => {
  let stack: Stack;
  let pki: Pki;
  let dir: string;
  let sidecar: RunningSidecar;
  let token: string;

  before(async () => {
    stack = await startStack();
    pki = stack.pki;
    dir = mkdtempSync(join(tmpdir(), 'phantom-ca-'));
    copyFileSync(pki.path('ca.pem'), join(dir, 'ca.pem'));
    sidecar = await startSidecar({
      ...baseEnv(pki, stack.upstream.url, stack.as.introspectionUrl),
      PHANTOM_TLS_CLIENT_CA: join(dir, 'ca.pem'),
      PHANTOM_TLS_RELOAD_INTERVAL_S: '3600',
      PHANTOM_TLS_MAX_CONNECTION_AGE_S: '1',
    });
    token = await partnerToken(stack.as, 'partner-a', pki.partnerA, pki);
  });
  after(async () => {
    await sidecar?.stop();
    await stack?.stop();
  });

  const request = async (socket: TLSSocket): Promise<RawResponse> => {
    const response = readResponse(socket);
    socket.write(`GET /api/accounts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    return response;
  };

  test('no connection outlives PHANTOM_TLS_MAX_CONNECTION_AGE_S: the next response closes it', async () => {
    const socket = await openTls(sidecar.port, pki.partnerA, pki);
    const first = await request(socket);
    assert.equal(first.status, 200);
    assert.notEqual(first.headers.connection, 'close');
    await sleep(1100);
    const second = await request(socket);
    assert.equal(second.status, 200);
    assert.equal(second.headers.connection, 'close');
    assert.ok((await closedWithin(socket, 1000)) !== undefined);
  });

  test('a CA taken out of the bundle: its partners\' idle connections close at the reload, new handshakes fail', async () => {
    const idle = await openTls(sidecar.port, pki.partnerA, pki);
    assert.equal((await request(idle)).status, 200);
    copyFileSync(pki.path('rogue-ca.pem'), join(dir, 'ca.pem'));
    sidecar.tls.check();
    assert.ok((await closedWithin(idle, 1000)) !== undefined);
    assert.equal(await handshakeFails(sidecar, pki.partnerA, pki), true);
    assert.equal(await handshakeFails(sidecar, pki.rogue, pki), false);
  });
});

describe('CRL configuration', () => {
  const pki = makePki();
  const dir = mkdtempSync(join(tmpdir(), 'phantom-crlconf-'));
  const env = (overrides: Record<string, string>) => ({ ...baseEnv(pki, 'http://127.0.0.1:3000', 'https://as.example.com/i'), ...overrides });
  const fails = (overrides: Record<string, string>): string => {
    try {
      loadConfig(env(overrides));
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return error.message;
    }
    assert.fail('expected a ConfigError');
  };

  test('each CA of the bundle needs its CRL, and each CRL its CA: said at start-up, not as failed handshakes', () => {
    const crl = issueCrl(pki, dir, 'only-dev-ca', []);
    const rogueCa = readFileSync(pki.path('rogue-ca.pem'), 'utf8');
    const withRogue = join(dir, 'with-rogue.pem');
    writeFileSync(withRogue, `${pki.ca}\n${rogueCa}`);
    assert.match(fails({ PHANTOM_TLS_CLIENT_CA: withRogue, PHANTOM_TLS_CLIENT_CRL: crl }), /^PHANTOM_TLS_CLIENT_CRL: has no CRL for the CA ".*rogue CA.*" of PHANTOM_TLS_CLIENT_CA or PHANTOM_TRUSTED_PROXY_CA /);
    const rogueOnly = join(dir, 'rogue-only.pem');
    writeFileSync(rogueOnly, rogueCa);
    assert.match(fails({ PHANTOM_TLS_CLIENT_CA: rogueOnly, PHANTOM_TLS_CLIENT_CRL: crl }), /holds a CRL whose issuer is not a CA of PHANTOM_TLS_CLIENT_CA/);
    const garbage = join(dir, 'garbage.crl.pem');
    writeFileSync(garbage, '-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n');
    assert.match(fails({ PHANTOM_TLS_CLIENT_CRL: garbage }), /holds a PEM CRL that does not parse/);
    const config = loadConfig(env({ PHANTOM_TLS_CLIENT_CRL: crl }));
    assert.ok(config.tls.crl?.includes('BEGIN X509 CRL'));
    assert.ok(config.tls.crlNextUpdateMs! > Date.now());
  });
});
