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
import { issueClientCertificate, issueCrl, issueUnderSubCa, makeCa, type Identity } from '../support/pki.ts';
import { loadConfig } from '../../src/config/config.ts';
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

  const hashOf = (pem: string): string => createHash('sha256').update(der(pem)).digest('hex');

  test('Envoy\'s X-Forwarded-Client-Cert (URL-encoded PEM) from the ingress, read by Envoy\'s grammar', async () => {
    const a = `Hash=${hashOf(stack.pki.partnerA.cert)};Cert="${encodeURIComponent(stack.pki.partnerA.cert)}"`;
    // Envoy quotes a Subject that holds "," or "=": one element, not two.
    const xfcc = `${a};Subject="O=Partner A Ltd,CN=partner-a";URI=spiffe://partner-a`;
    assert.equal((await from(ingress, { 'x-forwarded-client-cert': xfcc }, xfccSidecar)).status, 200);
    assert.equal((await from(stack.pki.partnerB, { 'x-forwarded-client-cert': xfcc }, xfccSidecar)).status, 401);
    // Two hops: the last element is the ingress's; a quoted value holding ",Cert=" selects nothing.
    const b = `Hash=${hashOf(stack.pki.partnerB.cert)};Cert="${encodeURIComponent(stack.pki.partnerB.cert)}"`;
    const smuggled = `${b};Subject="CN=x\\",Cert=\\"${encodeURIComponent(stack.pki.partnerA.cert)}"`;
    const twoHops = `By=spiffe://edge;${a},${smuggled}`;
    const response = await from(ingress, { 'x-forwarded-client-cert': twoHops }, xfccSidecar);
    assert.equal((await accessLineFor(xfccSidecar.logs, response)).x5t, stack.pki.partnerB.thumbprint, 'the last element\'s own certificate counts');
    const forgedHash = await from(ingress, { 'x-forwarded-client-cert': `Hash=${'0'.repeat(64)};Cert="${encodeURIComponent(stack.pki.partnerA.cert)}"` }, xfccSidecar);
    assert.equal(forgedHash.status, 401);
    assert.equal((await accessLineFor(xfccSidecar.logs, forgedHash)).detail, 'xfcc_hash_mismatch');
  });

  test('a header certificate passes exactly what a handshake would: not a server certificate, not a CA, not under a sub-CA that breaks pathlen:0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'phantom-openssl-rules-'));
    const chained = issueUnderSubCa(stack.pki, dir, 'partner-d');
    const subCa = readFileSync(chained.subCa, 'utf8');
    const leaf = readFileSync(chained.cert, 'utf8');
    const cases: [string, Record<string, string>, string][] = [
      ['the sidecar\'s own serverAuth-only certificate', { 'client-cert': byteSequence(stack.pki.server.cert) }, 'not_for_client_auth'],
      ['the partner CA itself', { 'client-cert': byteSequence(stack.pki.ca) }, 'leaf_is_a_ca'],
      ['a leaf under a sub-CA the root\'s pathlen:0 forbids', { 'client-cert': byteSequence(leaf), 'client-cert-chain': byteSequence(subCa) }, 'path_length'],
    ];
    for (const [name, headers, detail] of cases) {
      const response = await from(ingress, headers);
      assert.equal(response.status, 401, name);
      assert.equal((await accessLineFor(sidecar.logs, response)).detail, detail, name);
    }
    // The same certificates at a direct handshake: refused there too.
    const { connect } = await import('node:tls');
    const direct = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: sidecar.port, ca: stack.pki.ca, servername: 'localhost', cert: `${leaf}${subCa}`, key: readFileSync(chained.key, 'utf8') });
      socket.on('secureConnect', () => socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'));
      socket.on('data', () => resolve('answered'));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve('closed'));
    });
    assert.equal(direct, 'closed');
  });
});

test('PHANTOM_TRUSTED_PROXY_CA with partner CRLs: the ingress under its own CA completes the handshake once its CA\'s CRL is given, and a start without it names the CA', async () => {
  const stack = await startStack();
  const dir = mkdtempSync(join(tmpdir(), 'phantom-proxy-ca-'));
  try {
    const proxyCa = makeCa(dir, 'ingress CA');
    const pair = issueClientCertificate(stack.pki, dir, 'ingress-under-own-ca', '/O=phantom-sidecar development/CN=ingress', { ca: proxyCa });
    const ingressIdentity = { cert: readFileSync(pair.cert, 'utf8'), key: readFileSync(pair.key, 'utf8'), thumbprint: '' };
    const env = {
      ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl),
      PHANTOM_CLIENT_CERT_SOURCE: 'header',
      PHANTOM_TRUSTED_PROXY_CA: proxyCa.cert,
    };
    const partnerCrl = issueCrl(stack.pki, dir, 'partners', []);
    assert.throws(() => loadConfig({ ...env, PHANTOM_TLS_CLIENT_CRL: partnerCrl }), /PHANTOM_TLS_CLIENT_CRL: has no CRL for the CA "O=phantom-sidecar development, CN=ingress CA"/);
    const sidecar = await startSidecar({ ...env, PHANTOM_TLS_CLIENT_CRL: `${partnerCrl} ${issueCrl(stack.pki, dir, 'ingress', [], 7 * 86_400, proxyCa)}` });
    try {
      const token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
      const response = await call({ port: sidecar.port, cert: ingressIdentity.cert, key: ingressIdentity.key, ca: stack.pki.ca, headers: { authorization: `Bearer ${token}`, 'client-cert': byteSequence(stack.pki.partnerA.cert) } }).catch((error: Error) => {
        throw new Error(`${error.message}: ${sidecar.logs.filter((line) => line.includes('"warn"')).join('; ')}`);
      });
      assert.equal(response.status, 200, JSON.stringify(await accessLineFor(sidecar.logs, response)));
      assert.equal((await accessLineFor(sidecar.logs, response)).x5t, stack.pki.partnerA.thumbprint);
    } finally {
      await sidecar.stop();
    }
  } finally {
    await stack.stop();
  }
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
