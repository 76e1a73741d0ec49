// The listener's TLS files, read and checked together: at start-up (a problem stops the
// start) and on every reload (a problem keeps the files in use). Certificates and keys are
// node:crypto's; CRLs, which node:crypto cannot parse, through @peculiar/asn1-x509.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { asn1Schema, asn1X509 } from '../lazy.ts';
import { ConfigError, readText } from './env.ts';

export interface TlsPaths {
  cert: string;
  key: string;
  clientCa: string;
  /** PEM CRL files (each may hold several); empty: no revocation check. */
  crl: readonly string[];
  /** PHANTOM_TRUSTED_PROXY_CA: a trusted ingress's CA, whose CRL the CRL files must hold too. */
  proxyCa?: string | undefined;
}

/** PEM texts of the listener's certificate chain, its key, the partner CAs and their CRLs. */
export interface TlsMaterial {
  cert: string;
  key: string;
  clientCa: string;
  crl: string | undefined;
  /** The server certificate's notAfter, ms since the epoch. */
  serverNotAfterMs: number;
  /** The earliest nextUpdate of the CRLs, ms since the epoch; undefined without CRLs. */
  crlNextUpdateMs: number | undefined;
  /** The partner CAs, parsed, for certificates that arrive in a header (RFC 9440). */
  caCertificates: readonly X509Certificate[];
  /** Revoked serials per issuing CA (its subject DER, hex), from the CRLs. */
  revoked: ReadonlyMap<string, ReadonlySet<string>>;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const PEM_CRL = /-----BEGIN X509 CRL-----([\s\S]+?)-----END X509 CRL-----/g;

export function pemCertificates(variable: string, pem: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError(variable, 'holds no PEM certificate');
  return blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new ConfigError(variable, 'holds a PEM certificate that does not parse');
    }
  });
}

export function readCertificateFile(variable: string, path: string): { pem: string; certificates: X509Certificate[] } {
  const pem = readText(variable, path);
  return { pem, certificates: pemCertificates(variable, pem) };
}

export function parsePrivateKey(variable: string, pem: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch {
    // The parser's message may quote the input; this one never does.
    throw new ConfigError(variable, 'is not a PEM private key');
  }
}

interface ParsedCrl {
  /** DER of the issuer Name, to match it with a CA's subject. */
  issuer: string;
  nextUpdateMs: number | undefined;
  /** Serial numbers of the revoked certificates, upper-case hex without leading zeros. */
  revoked: string[];
}

/** How the log lines name a certificate (the refused handshake's and the access line). */
export function certificateNames(certificate: X509Certificate): { subject: string; issuer: string; serial: string } {
  return { subject: certificate.subject.replace(/\n/g, ', '), issuer: certificate.issuer.replace(/\n/g, ', '), serial: certificate.serialNumber };
}

/** A serial number as CRLs are indexed by: upper-case hex, no leading zeros. */
export function normalisedSerial(hex: string): string {
  return hex.toUpperCase().replace(/^0+(?=.)/, '');
}

function serialHex(bytes: ArrayBuffer | Uint8Array): string {
  return normalisedSerial(Buffer.from(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)).toString('hex'));
}

function parseCrls(pem: string): ParsedCrl[] {
  const crls: ParsedCrl[] = [];
  for (const match of pem.matchAll(PEM_CRL)) {
    try {
      const list = asn1Schema().AsnConvert.parse(Buffer.from((match[1] ?? '').replace(/\s+/g, ''), 'base64'), asn1X509().CertificateList);
      const next = list.tbsCertList.nextUpdate?.getTime();
      const revoked = (list.tbsCertList.revokedCertificates ?? []).map((entry) => serialHex(entry.userCertificate));
      crls.push({ issuer: Buffer.from(asn1Schema().AsnConvert.serialize(list.tbsCertList.issuer)).toString('hex'), nextUpdateMs: next?.getTime(), revoked });
    } catch {
      throw new ConfigError('PHANTOM_TLS_CLIENT_CRL', 'holds a PEM CRL that does not parse');
    }
  }
  return crls;
}

export function subjectDer(certificate: X509Certificate): string {
  const { AsnConvert } = asn1Schema();
  const parsed = AsnConvert.parse(certificate.raw, asn1X509().Certificate);
  return Buffer.from(AsnConvert.serialize(parsed.tbsCertificate.subject)).toString('hex');
}

/**
 * OpenSSL, once given any CRL, checks every certificate of a partner's chain against its
 * issuer's CRL and refuses the handshake when one is missing (Node sets CRL_CHECK_ALL). So each
 * CA of the bundle needs its CRL, and each CRL must belong to a CA: said here, at start-up,
 * rather than as handshakes that fail for no visible reason.
 */
function readCrls(paths: readonly string[], caCertificates: X509Certificate[]): { pem: string; nextUpdateMs: number | undefined; revoked: Map<string, Set<string>> } | undefined {
  if (paths.length === 0) return undefined;
  const pems = paths.map((path) => readText('PHANTOM_TLS_CLIENT_CRL', path));
  const crls = pems.flatMap((pem) => {
    const parsed = parseCrls(pem);
    if (parsed.length === 0) throw new ConfigError('PHANTOM_TLS_CLIENT_CRL', 'a file holds no PEM CRL');
    return parsed;
  });
  const caSubjects = new Map(caCertificates.map((ca) => [subjectDer(ca), ca.subject.replace(/\n/g, ', ')]));
  const crlIssuers = new Set(crls.map((crl) => crl.issuer));
  for (const crl of crls) {
    if (!caSubjects.has(crl.issuer)) throw new ConfigError('PHANTOM_TLS_CLIENT_CRL', 'holds a CRL whose issuer is not a CA of PHANTOM_TLS_CLIENT_CA (or PHANTOM_TRUSTED_PROXY_CA)');
  }
  for (const [subject, name] of caSubjects) {
    if (!crlIssuers.has(subject)) throw new ConfigError('PHANTOM_TLS_CLIENT_CRL', `has no CRL for the CA "${name}" of PHANTOM_TLS_CLIENT_CA or PHANTOM_TRUSTED_PROXY_CA (with CRLs, every CA the handshake trusts needs its own)`);
  }
  const nextUpdates = crls.map((crl) => crl.nextUpdateMs).filter((ms): ms is number => ms !== undefined);
  const revoked = new Map<string, Set<string>>();
  for (const crl of crls) revoked.set(crl.issuer, new Set([...(revoked.get(crl.issuer) ?? []), ...crl.revoked]));
  return { pem: pems.join('\n'), nextUpdateMs: nextUpdates.length === 0 ? undefined : Math.min(...nextUpdates), revoked };
}

/**
 * Reads and checks the listener's TLS files: the key matches the leaf, the leaf is in date,
 * the CA bundle holds certificates, each CA has its CRL when CRLs are configured.
 */
export function readTlsMaterial(paths: TlsPaths, nowMs: number = Date.now()): TlsMaterial {
  const { pem: cert, certificates } = readCertificateFile('PHANTOM_TLS_CERT', paths.cert);
  const key = readText('PHANTOM_TLS_KEY', paths.key);
  const leaf = certificates[0];
  if (leaf === undefined || !leaf.checkPrivateKey(parsePrivateKey('PHANTOM_TLS_KEY', key))) {
    throw new ConfigError('PHANTOM_TLS_KEY', 'does not match the certificate in PHANTOM_TLS_CERT');
  }
  const serverNotAfterMs = Date.parse(leaf.validTo);
  if (serverNotAfterMs <= nowMs) throw new ConfigError('PHANTOM_TLS_CERT', `expired on ${leaf.validTo}`);
  const ca = readCertificateFile('PHANTOM_TLS_CLIENT_CA', paths.clientCa);
  // The handshake verifies an ingress under its own CA: with CRLs, OpenSSL wants that CA's too.
  const proxyCas = paths.proxyCa === undefined ? [] : readCertificateFile('PHANTOM_TRUSTED_PROXY_CA', paths.proxyCa).certificates;
  const crl = readCrls(paths.crl, [...ca.certificates, ...proxyCas]);
  return { cert, key, clientCa: ca.pem, crl: crl?.pem, serverNotAfterMs, crlNextUpdateMs: crl?.nextUpdateMs, caCertificates: ca.certificates, revoked: crl?.revoked ?? new Map() };
}
