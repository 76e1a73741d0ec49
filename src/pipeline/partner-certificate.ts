// Stage 1b: whose certificate a request carries. By default the partner's own, from this TLS
// socket (stage 1 verified it). Behind an ingress that terminates mTLS, the partner's
// certificate arrives in a header (RFC 9440 Client-Cert, or Envoy's X-Forwarded-Client-Cert),
// and is believed only on a connection whose own certificate is a trusted ingress's; then it
// is verified again here (issued by a partner CA, in date, not revoked), since the header is
// only as good as the ingress. On any other connection the header is ignored (and never
// forwarded), so a partner who reaches the sidecar directly cannot speak for another.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { InvalidToken } from '../errors.ts';
import type { ClientCertSource } from '../config.ts';
import { normalisedSerial, pemCertificates, subjectDer, type TlsMaterial } from '../tls-material.ts';
import { certificateThumbprint, connectionThumbprint } from './tls.ts';

export interface PartnerCertificate {
  x5t: string | undefined;
  /** DER, for an API that wants the certificate itself (PHANTOM_FORWARD_CLIENT_CERT). */
  der: () => Buffer | undefined;
}

// RFC 8941 §3.3.5 byte sequence: ":" base64 ":".
const BYTE_SEQUENCE = /^:([A-Za-z0-9+/]+={0,2}):$/;
const MAX_CHAIN = 4;

function parseByteSequence(value: string): X509Certificate {
  const match = BYTE_SEQUENCE.exec(value.trim());
  if (match === null) throw new InvalidToken('client_cert_invalid', 'not_a_byte_sequence');
  try {
    return new X509Certificate(Buffer.from(match[1] ?? '', 'base64'));
  } catch {
    throw new InvalidToken('client_cert_invalid', 'not_a_certificate');
  }
}

/** Envoy's XFCC: `Hash=…;Cert="<URL-encoded PEM>";Subject=…`, one element per proxy hop. */
function parseXfcc(value: string): X509Certificate {
  // With several hops, the last element is the one the ingress added for its client.
  const element = value.split(',').at(-1) ?? '';
  const match = /(?:^|;)\s*Cert="([^"]*)"/.exec(element);
  if (match === null) throw new InvalidToken('client_cert_invalid', 'no_cert_in_xfcc');
  try {
    return new X509Certificate(decodeURIComponent(match[1] ?? ''));
  } catch {
    throw new InvalidToken('client_cert_invalid', 'not_a_certificate');
  }
}

function single(values: readonly string[] | undefined): string | undefined {
  if (values === undefined || values.length === 0) return undefined;
  if (values.length > 1) throw new InvalidToken('client_cert_invalid', 'several_headers');
  return values[0];
}

/**
 * The certificate's path to a partner CA through the chain the ingress passed on, each link
 * issued and signed by the next, every certificate in date, none revoked.
 */
function verifyHeaderCertificate(leaf: X509Certificate, chain: readonly X509Certificate[], material: TlsMaterial, nowMs: number): void {
  let current = leaf;
  for (let depth = 0; depth <= MAX_CHAIN; depth += 1) {
    if (Date.parse(current.validFrom) > nowMs || Date.parse(current.validTo) <= nowMs) throw new InvalidToken('client_cert_invalid', 'out_of_date');
    // An intermediate from the header must itself be a CA: a partner's leaf never issues.
    const issuer = material.caCertificates.find((ca) => current.checkIssued(ca) && current.verify(ca.publicKey))
      ?? chain.find((candidate) => candidate !== current && candidate.ca && current.checkIssued(candidate) && current.verify(candidate.publicKey));
    if (issuer === undefined) throw new InvalidToken('client_cert_invalid', 'untrusted_issuer');
    if (material.crl !== undefined && material.revoked.get(subjectDer(issuer))?.has(normalisedSerial(current.serialNumber)) === true) {
      throw new InvalidToken('client_cert_invalid', 'revoked');
    }
    if (material.caCertificates.includes(issuer)) return;
    current = issuer;
  }
  throw new InvalidToken('client_cert_invalid', 'chain_too_long');
}

export interface PartnerCertificates {
  of(socket: TLSSocket, headers: { distinct: NodeJS.Dict<string[]> }): PartnerCertificate;
}

// The socket's own certificate, made once per connection: every request on it shares it.
const ofConnection = new WeakMap<TLSSocket, PartnerCertificate>();

function socketCertificate(socket: TLSSocket): PartnerCertificate {
  let known = ofConnection.get(socket);
  if (known === undefined) {
    let der: Buffer | undefined;
    known = { x5t: connectionThumbprint(socket), der: () => (der ??= socket.getPeerX509Certificate?.()?.raw) };
    ofConnection.set(socket, known);
  }
  return known;
}

export function partnerCertificates(source: ClientCertSource, material: () => TlsMaterial, now: () => number = Date.now): PartnerCertificates {
  if (source.source === 'tls') return { of: (socket) => socketCertificate(socket) };
  const proxyCas = source.trustedProxyCa === undefined ? [] : pemCertificates('PHANTOM_TRUSTED_PROXY_CA', source.trustedProxyCa);
  const trusted = new WeakMap<TLSSocket, boolean>();
  const isTrustedProxy = (socket: TLSSocket): boolean => {
    let known = trusted.get(socket);
    if (known === undefined) {
      const x5t = connectionThumbprint(socket);
      const own = socket.getPeerX509Certificate?.();
      known = (x5t !== undefined && source.trustedProxyThumbprints.has(x5t))
        || (own !== undefined && proxyCas.some((ca) => own.checkIssued(ca) && own.verify(ca.publicKey)));
      trusted.set(socket, known);
    }
    return known;
  };
  return {
    of(socket, { distinct }) {
      // Not an ingress: whatever header it sent is not looked at, its own certificate counts.
      if (!isTrustedProxy(socket)) return socketCertificate(socket);
      const value = single(source.format === 'xfcc' ? distinct['x-forwarded-client-cert'] : distinct['client-cert']);
      // The ingress's own certificate is never a partner's.
      if (value === undefined) throw new InvalidToken('client_cert_invalid', 'missing');
      const leaf = source.format === 'xfcc' ? parseXfcc(value) : parseByteSequence(value);
      const chainHeader = source.format === 'rfc9440' ? single(distinct['client-cert-chain']) : undefined;
      const chain = chainHeader === undefined ? [] : chainHeader.split(',').slice(0, MAX_CHAIN).map(parseByteSequence);
      verifyHeaderCertificate(leaf, chain, material(), now());
      return { x5t: certificateThumbprint(leaf.raw), der: () => leaf.raw };
    },
  };
}
