// Test certificates, made by the same certs/generate.sh users run, into a fresh directory.
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const generator = new URL('../../certs/generate.sh', import.meta.url).pathname;

export interface Identity {
  cert: string;
  key: string;
  /** x5t#S256 of the certificate, computed here independently of src/. */
  thumbprint: string;
}

export interface Pki {
  dir: string;
  path(name: string): string;
  ca: string;
  server: Identity;
  as: Identity;
  partnerA: Identity;
  partnerB: Identity;
  partnerAExpired: Identity;
  rogue: Identity;
}

function thumbprintOf(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
}

let made: Pki | undefined;

export function makePki(): Pki {
  if (made !== undefined) return made;
  const dir = mkdtempSync(join(tmpdir(), 'phantom-pki-'));
  execFileSync('bash', [generator, dir], { stdio: 'ignore' });
  const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
  const identity = (cert: string, key: string): Identity => ({ cert: read(cert), key: read(key), thumbprint: thumbprintOf(read(cert)) });
  made = {
    dir,
    path: (name) => join(dir, name),
    ca: read('ca.pem'),
    server: identity('server.pem', 'server.key'),
    as: identity('as.pem', 'as.key'),
    partnerA: identity('partner-a.pem', 'partner-a.key'),
    partnerB: identity('partner-b.pem', 'partner-b.key'),
    partnerAExpired: identity('partner-a-expired.pem', 'partner-a.key'),
    rogue: identity('rogue.pem', 'rogue.key'),
  };
  return made;
}

/**
 * A further server certificate from the test CA, with a key of its own, written to `dir` as
 * NAME.pem and NAME.key.
 */
export function issueServerCertificate(pki: Pki, dir: string, name: string, subjectAltName: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const cert = join(dir, `${name}.pem`);
  writeFileSync(ext, `subjectAltName=${subjectAltName}\nextendedKeyUsage=serverAuth\n`);
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', `/CN=${name}`, '-out', csr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', pki.path('ca.pem'), '-CAkey', pki.path('ca.key'), '-CAcreateserial', '-CAserial', join(dir, 'ca.srl'), '-days', '30', '-extfile', ext, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

/**
 * A CRL of the test CA, written to `dir/NAME.crl.pem`, revoking the given certificates.
 * `validSeconds` short makes one that goes stale soon (openssl ca cannot back-date).
 */
/** A CA of its own (paths), for a trusted ingress's certificates. */
export function makeCa(dir: string, name: string): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-x509', '-new', '-key', key, '-subj', `/O=phantom-sidecar development/CN=${name}`, '-days', '30', '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

export function issueCrl(pki: Pki, dir: string, name: string, revoked: readonly string[], validSeconds = 7 * 86_400, ca = { cert: pki.path('ca.pem'), key: pki.path('ca.key') }): string {
  const db = mkdtempSync(join(dir, `${name}-db-`));
  writeFileSync(join(db, 'index.txt'), '');
  writeFileSync(join(db, 'crlnumber'), '01\n');
  const config = join(db, 'ca.cnf');
  writeFileSync(config, `[ ca ]\ndefault_ca = dev\n[ dev ]\ndatabase = ${db}/index.txt\ncrlnumber = ${db}/crlnumber\ndefault_md = sha256\n`);
  const base = ['ca', '-config', config, '-cert', ca.cert, '-keyfile', ca.key];
  revoked.forEach((pem, i) => {
    const file = join(db, `revoked-${i}.pem`);
    writeFileSync(file, pem);
    execFileSync('openssl', [...base, '-revoke', file], { stdio: 'ignore' });
  });
  const out = join(dir, `${name}.crl.pem`);
  execFileSync('openssl', [...base, '-gencrl', '-crlsec', String(validSeconds), '-out', out], { stdio: 'ignore' });
  return out;
}

/** A client certificate from the test CA (or self-signed), with a key of its own, as paths. */
export function issueClientCertificate(pki: Pki, dir: string, name: string, subject: string, { selfSigned = false, ca = { cert: pki.path('ca.pem'), key: pki.path('ca.key') } } = {}): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], { stdio: 'ignore' });
  if (selfSigned) {
    execFileSync('openssl', ['req', '-x509', '-new', '-key', key, '-subj', subject, '-days', '30', '-addext', 'extendedKeyUsage=clientAuth', '-out', cert], { stdio: 'ignore' });
    return { cert, key };
  }
  const csr = join(dir, `${name}.csr`);
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', subject, '-out', csr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-CAserial', join(dir, 'ca.srl'), '-days', '30', '-extfile', ext, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

/**
 * An intermediate CA under the test CA (whose pathlen:0 forbids one) and a client
 * certificate under it: a chain a handshake refuses.
 */
export function issueUnderSubCa(pki: Pki, dir: string, name: string): { subCa: string; cert: string; key: string } {
  const caKey = join(dir, `${name}-ca.key`);
  const caCsr = join(dir, `${name}-ca.csr`);
  const subCa = join(dir, `${name}-ca.pem`);
  const caExt = join(dir, `${name}-ca.ext`);
  writeFileSync(caExt, 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', caKey], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', caKey, '-subj', `/O=phantom-sidecar development/CN=${name} sub-CA`, '-out', caCsr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', caCsr, '-CA', pki.path('ca.pem'), '-CAkey', pki.path('ca.key'), '-CAcreateserial', '-CAserial', join(dir, 'ca.srl'), '-days', '30', '-extfile', caExt, '-out', subCa], { stdio: 'ignore' });
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', `/O=Partner D Ltd/CN=${name}`, '-out', csr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', subCa, '-CAkey', caKey, '-CAcreateserial', '-CAserial', join(dir, `${name}-ca.srl`), '-days', '30', '-extfile', ext, '-out', cert], { stdio: 'ignore' });
  return { subCa, cert, key };
}
