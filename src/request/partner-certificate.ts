// The partner: whose certificate a request carries. By default the partner's own, from this TLS
// socket (its handshake verified it). Behind an ingress that terminates mTLS, the partner's
// certificate arrives in a header (RFC 9440 Client-Cert, or Envoy's X-Forwarded-Client-Cert),
// and is believed only on a connection whose own certificate is a trusted ingress's; then it
// is verified again here (issued by a partner CA, in date, not revoked), since the header is
// only as good as the ingress. On any other connection the header is ignored (and never
// forwarded), so a partner who reaches the sidecar directly cannot speak for another.
import { X509Certificate, createHash } from 'node:crypto';
import type { LRUCache } from 'lru-cache';
import { growingLru } from '../growing-lru.ts';
import { InvalidToken } from '../errors.ts';
import type { RequestState } from './state.ts';
import type { ClientCertSource } from '../config/config.ts';
import { pemCertificates, type TlsMaterial } from '../config/tls-material.ts';
import { MAX_CHAIN, verifyHeaderCertificate } from './header-certificate.ts';
import { certificateThumbprint, connectionThumbprint, type PeerConnection } from '../thumbprint.ts';

export interface PartnerCertificate {
  x5t: string | undefined;
  /** DER, for an API that wants the certificate itself (PHANTOM_FORWARD_CLIENT_CERT). */
  der: () => Buffer | undefined;
}

// RFC 8941 §3.3.5 byte sequence: ":" base64 ":".
const BYTE_SEQUENCE = /^:([A-Za-z0-9+/]+={0,2}):$/;

function parseByteSequence(value: string): X509Certificate {
  const match = BYTE_SEQUENCE.exec(value.trim());
  if (match === null) throw new InvalidToken('client_cert_invalid', 'not_a_byte_sequence');
  try {
    return new X509Certificate(Buffer.from(match[1] ?? '', 'base64'));
  } catch {
    throw new InvalidToken('client_cert_invalid', 'not_a_certificate');
  }
}

/**
 * Envoy's x-forwarded-client-cert: elements separated by `,`, each `key=value` pairs separated
 * by `;`, a value double-quoted where it holds `,` `;` or `=` (with `\"` for a quote inside).
 * Read by that grammar, never by splitting, so a quoted Subject cannot smuggle another Cert.
 * Envoy's own builder has no library on npm, so the few lines are written here.
 */
export function parseXfccElements(value: string): Array<Map<string, string>> {
  const elements: Array<Map<string, string>> = [];
  let pairs = new Map<string, string>();
  let key = '';
  let text = '';
  let inKey = true;
  let quoted = false;
  const endPair = (): void => {
    if (key !== '' || text !== '') pairs.set(key.trim().toLowerCase(), inKey ? '' : text);
    key = '';
    text = '';
    inKey = true;
  };
  for (let i = 0; i < value.length; i += 1) {
    const char = value[i] ?? '';
    if (quoted) {
      if (char === '\\' && value[i + 1] === '"') {
        text += '"';
        i += 1;
      } else if (char === '"') {
        quoted = false;
      } else {
        text += char;
      }
    } else if (char === '"' && !inKey) {
      quoted = true;
    } else if (char === '=' && inKey) {
      inKey = false;
    } else if (char === ';') {
      endPair();
    } else if (char === ',') {
      endPair();
      elements.push(pairs);
      pairs = new Map();
    } else if (inKey) {
      key += char;
    } else {
      text += char;
    }
  }
  if (quoted) throw new InvalidToken('client_cert_invalid', 'xfcc_unterminated_quote');
  endPair();
  elements.push(pairs);
  return elements;
}

/** The certificate of the last XFCC element: the one the ingress added for its client. */
function parseXfcc(value: string): X509Certificate {
  const element = parseXfccElements(value).at(-1);
  const pem = element?.get('cert');
  if (pem === undefined || pem === '') throw new InvalidToken('client_cert_invalid', 'no_cert_in_xfcc');
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(decodeURIComponent(pem));
  } catch {
    throw new InvalidToken('client_cert_invalid', 'not_a_certificate');
  }
  // Envoy's Hash is the hex SHA-256 of the same certificate's DER: a mismatch is a forgery or a bug.
  const hash = element?.get('hash');
  if (hash !== undefined && hash.toLowerCase() !== createHash('sha256').update(certificate.raw).digest('hex')) {
    throw new InvalidToken('client_cert_invalid', 'xfcc_hash_mismatch');
  }
  return certificate;
}

/**
 * A URL-encoded certificate: nginx's `$ssl_client_escaped_cert` (the PEM), or Traefik's
 * passTLSClientCert (the base64 DER without the PEM lines, several comma-separated: the first
 * is the client's).
 */
function parseEscapedPem(value: string): X509Certificate {
  try {
    const decoded = decodeURIComponent(value);
    if (decoded.includes('-----BEGIN CERTIFICATE-----')) return new X509Certificate(decoded);
    return new X509Certificate(Buffer.from((decoded.split(',')[0] ?? '').replace(/\s+/g, ''), 'base64'));
  } catch {
    throw new InvalidToken('client_cert_invalid', 'not_a_certificate');
  }
}

function single(values: readonly string[] | undefined): string | undefined {
  if (values === undefined || values.length === 0) return undefined;
  if (values.length > 1) throw new InvalidToken('client_cert_invalid', 'several_headers');
  return values[0];
}

export interface PartnerCertificates {
  of(socket: PeerConnection, headers: { distinct: NodeJS.Dict<string[]> }): PartnerCertificate;
  /** The request headers `of` reads: none from the socket, the gateway's certificate headers from a header. */
  readonly headerNames: readonly string[];
}

// The socket's own certificate, made once per connection: every request on it shares it.
const ofConnection = new WeakMap<PeerConnection, PartnerCertificate>();

function socketCertificate(socket: PeerConnection): PartnerCertificate {
  let known = ofConnection.get(socket);
  if (known === undefined) {
    let der: Buffer | undefined;
    known = { x5t: connectionThumbprint(socket), der: () => (der ??= socket.getPeerX509Certificate()?.raw) };
    ofConnection.set(socket, known);
  }
  return known;
}

/**
 * @param gatewaysOnly decision mode: a connection that is not a trusted gateway's is refused,
 * since the request it asks about is another's and only a gateway may say whose
 */
// A gateway repeats the same few partner certificates on every request: a verdict is kept per
// header value for a minute at most (never past the path's expiry), and only under the TLS
// material it was reached with (a CRL or CA change brings a new material, so a new cache).
const VERDICT_TTL_MS = 60_000;
const verdicts = new WeakMap<TlsMaterial, LRUCache<string, { certificate: PartnerCertificate; until: number }>>();

function verifiedOf(material: TlsMaterial): LRUCache<string, { certificate: PartnerCertificate; until: number }> {
  let cache = verdicts.get(material);
  if (cache === undefined) {
    cache = growingLru(10_000);
    verdicts.set(material, cache);
  }
  return cache;
}

export function partnerCertificates(source: ClientCertSource, material: () => TlsMaterial, now: () => number = Date.now, gatewaysOnly = false): PartnerCertificates {
  if (source.source === 'tls') return { of: (socket) => socketCertificate(socket), headerNames: [] };
  const proxyCas = source.trustedProxyCa === undefined ? [] : pemCertificates('PHANTOM_TRUSTED_PROXY_CA', source.trustedProxyCa);
  const trusted = new WeakMap<PeerConnection, boolean>();
  const isTrustedProxy = (socket: PeerConnection): boolean => {
    let known = trusted.get(socket);
    if (known === undefined) {
      const x5t = connectionThumbprint(socket);
      const own = socket.getPeerX509Certificate();
      known = (x5t !== undefined && source.trustedProxyThumbprints.has(x5t))
        || (own !== undefined && proxyCas.some((ca) => own.checkIssued(ca) && own.verify(ca.publicKey)));
      trusted.set(socket, known);
    }
    return known;
  };
  const header = source.format === 'xfcc' ? 'x-forwarded-client-cert' : source.format === 'nginx' ? source.header : 'client-cert';
  return {
    headerNames: source.format === 'rfc9440' ? [header, 'client-cert-chain'] : [header],
    of(socket, { distinct }) {
      // Not an ingress: whatever header it sent is not looked at, its own certificate counts.
      if (!isTrustedProxy(socket)) {
        if (gatewaysOnly) throw new InvalidToken('client_cert_invalid', 'not_a_gateway');
        return socketCertificate(socket);
      }
      const value = single(distinct[header]);
      // The ingress's own certificate is never a partner's.
      if (value === undefined || value === '') throw new InvalidToken('client_cert_invalid', 'missing');
      const chainHeader = source.format === 'rfc9440' ? single(distinct['client-cert-chain']) : undefined;
      const inForce = material();
      const nowMs = now();
      const cacheKey = chainHeader === undefined ? value : `${value}\n${chainHeader}`;
      const known = verifiedOf(inForce).get(cacheKey);
      if (known !== undefined && known.until > nowMs) return known.certificate;
      const leaf = source.format === 'xfcc' ? parseXfcc(value) : source.format === 'nginx' ? parseEscapedPem(value) : parseByteSequence(value);
      const chain = chainHeader === undefined ? [] : chainHeader.split(',').slice(0, MAX_CHAIN).map(parseByteSequence);
      const until = verifyHeaderCertificate(leaf, chain, inForce, nowMs);
      const certificate = { x5t: certificateThumbprint(leaf.raw), der: () => leaf.raw };
      verifiedOf(inForce).set(cacheKey, { certificate, until: Math.min(until, nowMs + VERDICT_TTL_MS) });
      return certificate;
    },
  };
}

/** Whose certificate the request carries: its thumbprint for the binding, its DER for the API and the log. */
export function identifyPartner(state: RequestState, connection: PeerConnection, distinct: NodeJS.Dict<string[]>, rules: { partners: PartnerCertificates }): void {
  const partner = rules.partners.of(connection, { distinct });
  state.x5t = partner.x5t;
  state.partnerDer = partner.der;
}
