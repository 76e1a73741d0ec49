// Stage 2: the bearer token, RFC 6750 §2.1, and only from the Authorization header.
// FAPI forbids tokens in URLs and the sidecar accepts none in a body either: such a request
// is refused as malformed rather than silently ignored, so a client learns of its mistake.
import { InvalidRequest, MissingCredentials } from '../errors.ts';

/** Longest token accepted; anything longer is refused before the authorization server sees it. */
export const MAX_TOKEN_BYTES = 4096;

// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const SCHEME_AND_REST = /^([^\s]+)(?:\s+(.*))?$/s;

/**
 * The single bearer token of a request, given every Authorization header line it carried
 * (Node's `headersDistinct`, since `headers` keeps only the first of two).
 */
export function extractBearerToken(authorization: readonly string[] | undefined): string {
  if (authorization === undefined || authorization.length === 0) {
    throw new MissingCredentials('no_credentials');
  }
  if (authorization.length > 1) {
    throw new InvalidRequest('multiple_authorization_headers');
  }
  const match = SCHEME_AND_REST.exec(authorization[0] ?? '');
  if (match === null) throw new MissingCredentials('no_credentials');
  const [, scheme = '', token = ''] = match;
  if (scheme.toLowerCase() !== 'bearer') {
    throw new MissingCredentials('other_scheme');
  }
  if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) {
    throw new InvalidRequest('token_too_long');
  }
  if (!B64TOKEN.test(token)) {
    throw new InvalidRequest('malformed_token');
  }
  return token;
}

function carriesAccessToken(query: string): boolean {
  // Any spelling URLSearchParams decodes to the name counts (e.g. %61ccess_token).
  return new URLSearchParams(query).has('access_token');
}

/** RFC 6750 §2.3 query tokens are forbidden by FAPI; the URL must never carry one. */
export function rejectTokenInQuery(url: string): void {
  const query = url.indexOf('?');
  if (query !== -1 && carriesAccessToken(url.slice(query + 1))) {
    throw new InvalidRequest('token_in_query');
  }
}

/** RFC 6750 §2.2 form-body tokens are refused too: the header is the one place. */
export function rejectTokenInForm(body: Buffer): void {
  if (carriesAccessToken(body.toString('latin1'))) {
    throw new InvalidRequest('token_in_body');
  }
}
