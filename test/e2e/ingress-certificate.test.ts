// Certificates from a trusted ingress (RFC 9440 Client-Cert, Envoy's XFCC): believed only on
// the ingress's own connection, verified again, ignored from anyone else; and the verified
// certificate passed on to the API when asked (PHANTOM_FORWARD_CLIENT_CERT).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { partnerToken } from '../support/as.ts';
import { call } from '../support/client.ts';
import { issueClientCertificate, issueCrl, type Identity } from '../support/pki.ts';
import { accessLineFor, baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

const der = (pem: string): Buffer => new X509Certificate(pem).raw;
const byteSequence = (pem: string): string => `:${der(pem).toString('base64')}:`;

describe('PHANTOM_CLIENT_CERT_SOURCE=header', () => {
  let stack: Stack;
  let sidecar: RunningSidecar;
  let xfccSidecar: RunningSidecar;
  let ingress: Identity;
  let tokenA: string;
  let revoked: string;

  before(async () => {
    stack = await startStack();
    const dir = mkdtempSync(join(tmpdir(), 'phantom-ingress-'));
    const pair = issueClientCertificate(stack.pki, dir, 'ingress', '/O=phantom-sidecar development/CN=ingress');
    const cert = readFileSync(pair.cert, 'utf8');
    ingress = { cert, key: readFileSync(pair.key, 'utf8'), thumbprint: createHash('sha256').update(der(cert)).digest('base64url') };
    revoked = readFileSync(issueClientCertificate(stack.pki, dir, 'revoked-partner', '/O=Partner C Ltd/CN=partner-c').cert, 'utf8');
    copyFileSync(issueCrl(stack.pki, dir, 'revokes-c', [revoked]), join(dir, 'crl.pem'));
    const env = {
      ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl),
      PHANTOM_CLIENT_CERT_SOURCE: 'header',
      PHANTOM_TRUSTED_PROXY_CERT_X5T: ingress.thumbprint,
      PHANTOM_TLS_CLIENT_CRL: join(dir, 'crl.pem'),
      PHANTOM_FORWARD_CLIENT_CERT: 'true',
    };
    sidecar = await startSidecar(env);
    xfccSidecar = await startSidecar({ ...env, PHANTOM_CLIENT_CERT_HEADER_FORMAT: 'xfcc' });
    tokenA = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
  });
  after(async () => {
    await sidecar?.stop();
    await xfccSidecar?.stop();
    await stack?.stop();
  });

  const from = (who: Identity, headers: Record<string, string>, target: RunningSidecar = sidecar) =>
    call({ port: target.port, cert: who.cert, key: who.key, ca: stack.pki.ca, headers: { authorization: `Bearer ${tokenA}`, ...headers } });

  test('the ingress passes partner A\'s certificate: bound to A, 200, and the API gets A\'s certificate as Client-Cert', async () => {
    const response = await from(ingress, { 'client-cert': byteSequence(stack.pki.partnerA.cert) });
    assert.equal(response.status, 200, response.text);
    assert.equal((await accessLineFor(sidecar.logs, response)).x5t, stack.pki.partnerA.thumbprint);
    assert.equal(stack.upstream.received.at(-1)?.headers['client-cert'], byteSequence(stack.pki.partnerA.cert));
  });

  test('the same header from partner B\'s own connection is ignored: B\'s certificate counts, 401 for A\'s token', async () => {
    const before = stack.upstream.received.length;
    const response = await from(stack.pki.partnerB, { 'client-cert': byteSequence(stack.pki.partnerA.cert) });
    assert.equal(response.status, 401);
    const line = await accessLineFor(sidecar.logs, response);
    assert.deepEqual([line.reason, line.x5t], ['binding_mismatch', stack.pki.partnerB.thumbprint]);
    assert.equal(stack.upstream.received.length, before);
  });

  const refused: [string, () => Record<string, string>, string][] = [
    ['no header on the ingress\'s connection', () => ({}), 'missing'],
    ['a malformed header', () => ({ 'client-cert': 'not-a-byte-sequence' }), 'not_a_byte_sequence'],
    ['bytes that are no certificate', () => ({ 'client-cert': ':aGVsbG8=:' }), 'not_a_certificate'],
    ['a certificate from another CA', () => ({ 'client-cert': byteSequence(stack.pki.rogue.cert) }), 'untrusted_issuer'],
    ['an expired certificate', () => ({ 'client-cert': byteSequence(stack.pki.partnerAExpired.cert) }), 'out_of_date'],
    ['a revoked certificate', () => ({ 'client-cert': byteSequence(revoked) }), 'revoked'],
  ];
  for (const [name, headers, detail] of refused) {
    test(`${name}: 401 invalid_token, nothing forwarded`, async () => {
      const before = stack.upstream.received.length;
      const response = await from(ingress, headers());
      assert.equal(response.status, 401);
      assert.equal(response.json.error, 'invalid_token');
      const line = await accessLineFor(sidecar.logs, response);
      assert.deepEqual([line.reason, line.detail], ['client_cert_invalid', detail]);
      assert.equal(stack.upstream.received.length, before);
    });
  }

  test('Envoy\'s X-Forwarded-Client-Cert (URL-encoded PEM) from the ingress', async () => {
    const xfcc = `Hash=abc;Cert="${encodeURIComponent(stack.pki.partnerA.cert)}";Subject="CN=partner-a"`;
    assert.equal((await from(ingress, { 'x-forwarded-client-cert': xfcc }, xfccSidecar)).status, 200);
    assert.equal((await from(stack.pki.partnerB, { 'x-forwarded-client-cert': xfcc }, xfccSidecar)).status, 401);
  });
});

test('PHANTOM_FORWARD_CLIENT_CERT with the socket\'s certificate: the API gets the verified one, never a client\'s copy', async () => {
  const stack = await startStack(() => ({ PHANTOM_FORWARD_CLIENT_CERT: 'true' }));
  try {
    const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
    const response = await call({ port: stack.sidecar.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { authorization: `Bearer ${token}`, 'client-cert': byteSequence(stack.pki.partnerB.cert) } });
    assert.equal(response.status, 200);
    assert.equal(stack.upstream.received.at(-1)?.headers['client-cert'], byteSequence(stack.pki.partnerA.cert));
  } finally {
    await stack.stop();
  }
});
