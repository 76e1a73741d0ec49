// A partner certificate that arrives in a trusted ingress's header is verified by the rules
// OpenSSL applies to a client certificate at the handshake (RFC 5280 §6.1 path validation and
// OpenSSL's SSL client purpose), since the header is only as good as the ingress: the leaf is
// no CA, carries clientAuth when it names extended key usages and digitalSignature or
// keyAgreement when it names key usages; every issuer is a CA allowed to sign certificates
// within its pathLenConstraint; every certificate of the path, the trust anchor included, is in
// date and, with CRLs, on none and covered by its issuer's CRL (OpenSSL's CRL_CHECK_ALL).
// Node's X509Certificate checks issuance and signatures; @peculiar/asn1-x509 reads the
// extensions node:crypto does not expose (key usage bits, the path length).
import type { X509Certificate } from 'node:crypto';
import { asn1Schema, asn1X509 } from '../lazy.ts';
import { InvalidToken } from '../errors.ts';
import { normalisedSerial, subjectDer, type TlsMaterial } from '../config/tls-material.ts';

export const MAX_CHAIN = 4;

interface Extensions {
  ca: boolean;
  pathLength: number | undefined;
  /** Undefined when the certificate names no key usage. */
  keyUsage: number | undefined;
  /** Undefined when the certificate names no extended key usage. */
  extendedKeyUsage: readonly string[] | undefined;
}

function refuse(detail: string): never {
  throw new InvalidToken('client_cert_invalid', detail);
}

function extensionsOf(certificate: X509Certificate): Extensions {
  const { AsnConvert } = asn1Schema();
  const { BasicConstraints, Certificate, ExtendedKeyUsage, KeyUsage, id_ce_basicConstraints, id_ce_extKeyUsage, id_ce_keyUsage } = asn1X509();
  const parsed = AsnConvert.parse(certificate.raw, Certificate);
  const found: Extensions = { ca: false, pathLength: undefined, keyUsage: undefined, extendedKeyUsage: undefined };
  for (const extension of parsed.tbsCertificate.extensions ?? []) {
    const value = extension.extnValue.buffer;
    if (extension.extnID === id_ce_basicConstraints) {
      const constraints = AsnConvert.parse(value, BasicConstraints);
      found.ca = constraints.cA;
      found.pathLength = constraints.pathLenConstraint;
    } else if (extension.extnID === id_ce_keyUsage) {
      found.keyUsage = AsnConvert.parse(value, KeyUsage).toNumber();
    } else if (extension.extnID === id_ce_extKeyUsage) {
      found.extendedKeyUsage = [...AsnConvert.parse(value, ExtendedKeyUsage)];
    }
  }
  return found;
}

function inDate(certificate: X509Certificate, nowMs: number): boolean {
  return Date.parse(certificate.validFrom) <= nowMs && nowMs < Date.parse(certificate.validTo);
}

/** OpenSSL's SSL client purpose for the leaf. */
function checkLeaf(leaf: X509Certificate): void {
  const { KeyUsageFlags, id_kp_clientAuth } = asn1X509();
  const extensions = extensionsOf(leaf);
  if (extensions.ca) refuse('leaf_is_a_ca');
  if (extensions.extendedKeyUsage !== undefined && !extensions.extendedKeyUsage.includes(id_kp_clientAuth)) refuse('not_for_client_auth');
  if (extensions.keyUsage !== undefined && (extensions.keyUsage & (KeyUsageFlags.digitalSignature | KeyUsageFlags.keyAgreement)) === 0) refuse('key_usage');
}

/**
 * An issuer of the path: a CA that may sign certificates, with no more CAs below it than its
 * pathLenConstraint allows (`below` counts the intermediates between it and the leaf).
 */
function checkIssuer(issuer: X509Certificate, below: number): void {
  const { KeyUsageFlags } = asn1X509();
  const extensions = extensionsOf(issuer);
  if (!extensions.ca) refuse('issuer_not_a_ca');
  if (extensions.keyUsage !== undefined && (extensions.keyUsage & KeyUsageFlags.keyCertSign) === 0) refuse('issuer_key_usage');
  if (extensions.pathLength !== undefined && below > extensions.pathLength) refuse('path_length');
}

function checkRevocation(certificate: X509Certificate, issuer: X509Certificate, material: TlsMaterial): void {
  if (material.crl === undefined) return;
  const revoked = material.revoked.get(subjectDer(issuer));
  // With CRLs, OpenSSL refuses a certificate whose issuer has none.
  if (revoked === undefined) refuse('no_crl_for_issuer');
  if (revoked.has(normalisedSerial(certificate.serialNumber))) refuse('revoked');
}

/** The path from the leaf to a partner CA (the anchor last), through the chain the ingress passed on. */
function pathOf(leaf: X509Certificate, chain: readonly X509Certificate[], material: TlsMaterial): X509Certificate[] {
  const path = [leaf];
  for (let depth = 0; depth <= MAX_CHAIN; depth += 1) {
    const current = path.at(-1) ?? leaf;
    const anchor = material.caCertificates.find((ca) => current.checkIssued(ca) && current.verify(ca.publicKey));
    if (anchor !== undefined) return [...path, anchor];
    const issuer = chain.find((candidate) => !path.includes(candidate) && current.checkIssued(candidate) && current.verify(candidate.publicKey));
    if (issuer === undefined) refuse('untrusted_issuer');
    path.push(issuer);
  }
  refuse('chain_too_long');
}

/**
 * The certificate's path to a partner CA through the chain the ingress passed on; throws
 * InvalidToken('client_cert_invalid') naming the first rule it breaks: the path's shape
 * first, then dates, then revocation, as OpenSSL orders them. Returns when the path's first
 * certificate expires (ms since the epoch).
 */
export function verifyHeaderCertificate(leaf: X509Certificate, chain: readonly X509Certificate[], material: TlsMaterial, nowMs: number): number {
  checkLeaf(leaf);
  const path = pathOf(leaf, chain, material);
  for (let i = 1; i < path.length; i += 1) checkIssuer(path[i] as X509Certificate, i - 1);
  if (!path.every((certificate) => inDate(certificate, nowMs))) refuse('out_of_date');
  for (let i = 0; i < path.length - 1; i += 1) checkRevocation(path[i] as X509Certificate, path[i + 1] as X509Certificate, material);
  // Until when this verdict holds: the earliest notAfter of the path.
  return Math.min(...path.map((certificate) => Date.parse(certificate.validTo)));
}
