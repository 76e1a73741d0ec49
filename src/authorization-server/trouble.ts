// What the operator is told when the authorization server gives no usable answer: one warn
// line per reason and interval (never per request), with what to change, and a counter per
// reason. The client only ever sees 503; the cause is said here, where someone can act on it.
import type { Logger } from 'pino';
import { AuthorizationServerUnavailable, type SidecarError } from '../errors.ts';
import { LogThrottle } from '../log.ts';

// Node and OpenSSL error codes of a TLS certificate the sidecar could not verify.
const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_UNTRUSTED',
]);

/** What to change for an AS fault, in the operator's words (variables, never values). */
export function remedyFor(error: SidecarError): string {
  const detail = error.detail ?? '';
  switch (error.reason) {
    case 'as_unreachable':
      if (TLS_VERIFY_CODES.has(detail)) return 'the authorization server\'s TLS certificate does not verify: set PHANTOM_INTROSPECTION_CA to the CA that issued it, and check the host name in PHANTOM_INTROSPECTION_URL or PHANTOM_AS_ISSUER';
      if (detail === 'no_metadata') return 'the authorization server\'s metadata is not known yet: check PHANTOM_AS_ISSUER and that its /.well-known document is reachable';
      return 'the authorization server cannot be reached: check PHANTOM_INTROSPECTION_URL (or PHANTOM_AS_ISSUER), DNS and the egress network policy';
    case 'as_timeout':
      return 'the authorization server did not answer within PHANTOM_INTROSPECTION_TIMEOUT_MS';
    case 'as_rejected_sidecar_credentials':
      return 'the authorization server refused the sidecar\'s own credentials: check PHANTOM_INTROSPECTION_CLIENT_ID, the secret, key or certificate, and that PHANTOM_INTROSPECTION_AUTH is the method registered for this client';
    case 'as_error_status':
      return 'the authorization server answered with an error status: check PHANTOM_INTROSPECTION_URL and the client\'s registration';
    case 'as_malformed_response':
      return 'the answer is not an RFC 7662 introspection response: check PHANTOM_INTROSPECTION_URL and PHANTOM_INTROSPECTION_RESPONSE';
    case 'as_unverified_response':
      return 'a signed introspection answer did not verify: check PHANTOM_AS_ISSUER, PHANTOM_AS_JWKS_URL and PHANTOM_INTROSPECTION_CLIENT_ID (its aud)';
    case 'as_capacity':
      return 'PHANTOM_MAX_CONCURRENT_INTROSPECTIONS calls are already under way: the authorization server is slow, or the limit is too low for this load';
    default:
      return 'see the reason';
  }
}

const INTERVAL_MS = 10_000;

/** Tells the operator of each AS fault on the request path: a throttled warn line and a metric. */
export class AsTroubleReporter {
  readonly #logger: Logger;
  readonly #count: (reason: string) => void;
  readonly #throttle: LogThrottle;

  constructor(logger: Logger, count: (reason: string) => void, now: () => number = Date.now) {
    this.#logger = logger;
    this.#count = count;
    this.#throttle = new LogThrottle(INTERVAL_MS, now, 64);
  }

  failed(error: unknown): void {
    if (!(error instanceof AuthorizationServerUnavailable)) return;
    this.#count(error.reason);
    const suppressed = this.#throttle.admit(error.reason);
    if (suppressed === undefined) return;
    this.#logger.warn({ reason: error.reason, detail: error.detail, suppressed, remedy: remedyFor(error) }, 'the authorization server gave no usable answer; requests that need it get 503');
  }
}
