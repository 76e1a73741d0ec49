// The credential: the access token, RFC 6750 §2.1 (Bearer) or RFC 9449 §7.1 (DPoP, with exactly
// one DPoP header), and only from the Authorization header.
// FAPI forbids tokens in URLs and the sidecar accepts none in a body either: such a request
// is refused as malformed rather than silently ignored, so a client learns of its mistake.
import { InvalidDpopProof, InvalidRequest, MissingCredentials, type AuthScheme } from '../errors.ts';
import type { RequestState } from './state.ts';
import type { SenderConstraints } from '../config/policy.ts';

/** Longest token accepted; anything longer is refused before the authorization server sees it. */
export const MAX_TOKEN_BYTES = 4096;

// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const SCHEME_AND_REST = /^([^\s]+)(?:\s+(.*))?$/s;

/** The schemes this resource accepts a token with. */
export interface AcceptedSchemes {
  bearer: boolean;
  dpop: boolean;
}

/**
 * Which schemes a token may come with: DPoP where it is accepted; Bearer for certificate-bound
 * tokens, and for unbound ones where binding is optional.
 */
export function acceptedSchemes(config: { senderConstraints: SenderConstraints; requireBinding: boolean }): AcceptedSchemes {
  return { bearer: config.senderConstraints.mtls || !config.requireBinding, dpop: config.senderConstraints.dpop };
}

export interface Credential {
  scheme: AuthScheme;
  token: string;
  /** The DPoP proof JWT, with the DPoP scheme. */
  proof: string | undefined;
}

// A compact JWS: three base64url parts. Anything else in the DPoP header is not one proof.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * The single access token of a request and its scheme, given every Authorization and DPoP
 * header line it carried (Node's `headersDistinct`, since `headers` keeps only the first of
 * two). DPoP is taken only where `dpop` is accepted; otherwise it is another scheme.
 */
export function extractCredential(authorization: readonly string[] | undefined, dpopHeaders: readonly string[] | undefined, accepted: AcceptedSchemes): Credential {
  const dpopScheme = accepted.dpop && /^dpop\s/i.test(authorization?.[0] ?? '') && authorization?.length === 1;
  // Where only DPoP is accepted, Bearer is just another scheme: 401 with the DPoP challenge.
  if (!dpopScheme && !accepted.bearer && authorization !== undefined && authorization.length > 0) throw new MissingCredentials('other_scheme');
  const token = extractBearerToken(authorization, dpopScheme ? 'dpop' : 'bearer');
  if (!dpopScheme) return { scheme: 'Bearer', token, proof: undefined };
  if (dpopHeaders === undefined || dpopHeaders.length !== 1) throw new InvalidDpopProof('dpop_proof_invalid', dpopHeaders === undefined ? 'missing' : 'several');
  const proof = dpopHeaders[0]?.trim() ?? '';
  if (!COMPACT_JWS.test(proof)) throw new InvalidDpopProof('dpop_proof_invalid', 'not_one_jws');
  return { scheme: 'DPoP', token, proof };
}

/**
 * The single bearer token of a request (or, with `scheme` dpop, the DPoP-bound one), given
 * every Authorization header line it carried.
 */
export function extractBearerToken(authorization: readonly string[] | undefined, expected: 'bearer' | 'dpop' = 'bearer'): string {
  if (authorization === undefined || authorization.length === 0) {
    throw new MissingCredentials('no_credentials');
  }
  if (authorization.length > 1) {
    throw new InvalidRequest('multiple_authorization_headers');
  }
  const match = SCHEME_AND_REST.exec(authorization[0] ?? '');
  if (match === null) throw new MissingCredentials('no_credentials');
  const [, scheme = '', token = ''] = match;
  if (scheme.toLowerCase() !== expected) {
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

/** The extracted credential, onto the request's state. */
export function takeCredential(state: RequestState, credential: Credential): void {
  state.scheme = credential.scheme;
  state.token = credential.token;
  state.dpopProof = credential.proof;
}
