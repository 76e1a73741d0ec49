// certs/generate.sh: what the demo, compose and the tests stand on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const generator = new URL('../../certs/generate.sh', import.meta.url).pathname;
const root = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'phantom-certs-'));
const run = (...args: string[]) => spawnSync('bash', [generator, dir, ...args], { encoding: 'utf8' });
const certificate = (name: string) => new X509Certificate(readFileSync(join(dir, name)));

test('a fresh run makes the whole set; the CA issued every certificate but the rogue one', () => {
  assert.equal(run().status, 0);
  const ca = certificate('ca.pem');
  for (const name of ['server.pem', 'as.pem', 'partner-a.pem', 'partner-b.pem', 'partner-a-expired.pem']) {
    assert.ok(certificate(name).verify(ca.publicKey), name);
  }
  assert.equal(certificate('rogue.pem').verify(ca.publicKey), false);
  assert.ok(Date.parse(certificate('partner-a-expired.pem').validTo) < Date.now());
});

test('the server certificate answers to loopback, the public name and the compose and Kubernetes services', () => {
  const sans = certificate('server.pem').subjectAltName ?? '';
  for (const name of ['DNS:localhost', 'IP Address:127.0.0.1', 'DNS:api.example.com', 'DNS:sidecar', 'DNS:partner-api', 'DNS:partner-api.default.svc.cluster.local']) {
    assert.ok(sans.includes(name), `${name} missing from ${sans}`);
  }
  assert.ok((certificate('as.pem').subjectAltName ?? '').includes('DNS:authorization-server'));
});

test('the PKCS#12 files open with Password1 and hold the partner certificate', () => {
  const pem = execFileSync('openssl', ['pkcs12', '-in', join(dir, 'partner-b.p12'), '-passin', 'pass:Password1', '-clcerts', '-nokeys'], { encoding: 'utf8' });
  assert.equal(new X509Certificate(pem).fingerprint256, certificate('partner-b.pem').fingerprint256);
  assert.notEqual(spawnSync('openssl', ['pkcs12', '-in', join(dir, 'partner-b.p12'), '-passin', 'pass:wrong', '-nokeys']).status, 0);
});

test('a second run keeps what exists; --force makes everything anew', () => {
  const before = certificate('ca.pem').fingerprint256;
  const again = run();
  assert.equal(again.status, 0);
  assert.match(again.stdout, /already in/);
  assert.equal(certificate('ca.pem').fingerprint256, before);
  assert.equal(run('--force').status, 0);
  assert.notEqual(certificate('ca.pem').fingerprint256, before);
});

test('no key, certificate or PKCS#12 file is committed', () => {
  const tracked = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).split('\n');
  assert.deepEqual(tracked.filter((file) => /\.(key|p12|pem)$/.test(file) || file.startsWith('certs/out')), []);
});
