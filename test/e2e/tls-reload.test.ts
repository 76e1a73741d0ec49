// A renewed server certificate or partner CA bundle (cert-manager rewrites its Secret in
// place) reaches new connections without a restart; files that do not check out are ignored.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { issueServerCertificate, makePki, type Pki } from '../support/pki.ts';
import { baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';

let pki: Pki;
let dir: string;
let sidecar: RunningSidecar;

const issue = (name: string) => issueServerCertificate(pki, dir, name, 'DNS:localhost,IP:127.0.0.1');

function serverCertificate(identity = pki.partnerA): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: sidecar.port, ca: pki.ca, servername: 'localhost', cert: identity.cert, key: identity.key }, () => {
      const peer = socket.getPeerCertificate();
      socket.once('data', () => undefined);
      setTimeout(() => (socket.destroyed ? reject(new Error('closed by server')) : (socket.destroy(), resolve(peer))), 100);
    });
    socket.once('error', reject);
  });
}

async function eventually(check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail('the change was not picked up');
}

before(async () => {
  pki = makePki();
  dir = mkdtempSync(join(tmpdir(), 'phantom-reload-'));
  for (const file of ['server.pem', 'server.key', 'ca.pem']) copyFileSync(pki.path(file), join(dir, file));
  sidecar = await startSidecar({
    ...baseEnv(pki, 'http://127.0.0.1:1', 'https://127.0.0.1:1/introspect'),
    PHANTOM_TLS_CERT: join(dir, 'server.pem'),
    PHANTOM_TLS_KEY: join(dir, 'server.key'),
    PHANTOM_TLS_CLIENT_CA: join(dir, 'ca.pem'),
    PHANTOM_TLS_RELOAD_INTERVAL_S: '1',
  });
});
after(() => sidecar.stop());

test('a renewed server certificate is served to new connections', async () => {
  const first = await serverCertificate();
  assert.equal(first.subject.CN, 'phantom-sidecar');
  const renewed = issue('renewed');
  copyFileSync(renewed.key, join(dir, 'server.key'));
  copyFileSync(renewed.cert, join(dir, 'server.pem'));
  await eventually(async () => (await serverCertificate()).subject.CN === 'renewed');
  assert.ok(sidecar.logs.some((line) => line.includes('TLS certificate, partner CA bundle and CRLs reloaded')));
});

test('a certificate that does not match its key is not used', async () => {
  const other = issue('mismatched');
  copyFileSync(other.cert, join(dir, 'server.pem'));
  await eventually(async () => sidecar.logs.some((line) => line.includes('does not match the certificate')));
  assert.equal((await serverCertificate()).subject.CN, 'renewed');
});

test('a new partner CA bundle decides who may connect', async () => {
  copyFileSync(pki.path('rogue-ca.pem'), join(dir, 'ca.pem'));
  const renewed = issue('with-new-bundle');
  copyFileSync(renewed.key, join(dir, 'server.key'));
  copyFileSync(renewed.cert, join(dir, 'server.pem'));
  await eventually(async () => (await serverCertificate(pki.rogue).catch(() => undefined))?.subject.CN === 'with-new-bundle');
  await assert.rejects(serverCertificate(pki.partnerA));
});
