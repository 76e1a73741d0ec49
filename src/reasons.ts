// The closed set of reasons a request can be refused or fail for, and everything each one
// means for the response: the status, the body's `error` code, whether a `WWW-Authenticate`
// challenge carries it, the scheme it belongs to, a `Retry-After`, and the fixed public text.
// A reason is the `reason` field of the access line and a label of `phantom_requests_total`,
// so it comes from this list; anything variable (an AS status, a socket error code) goes into
// the error's `detail`, which is logged but never a label and never sent to the client.
//
// Every `invalid_token` reason shares one text, so a holder of a stolen token cannot learn
// from the answer whether it is inactive, expired, bound elsewhere or meant for another API.

/** RFC 6750 §3.1 error codes, and RFC 9449 §7.1/§9's for DPoP. */
export type BearerErrorCode = 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'invalid_dpop_proof' | 'use_dpop_nonce';

/** The `error` of a body that has no RFC 6750 code: ours, a closed set. */
export type PublicErrorCode =
  | 'unauthorized'
  | 'invalid_request'
  | 'access_denied'
  | 'method_not_allowed'
  | 'request_timeout'
  | 'request_too_large'
  | 'misdirected_request'
  | 'rate_limited'
  | 'client_closed_request'
  | 'server_error'
  | 'bad_gateway'
  | 'temporarily_unavailable'
  | 'gateway_timeout';

export interface ReasonSpec {
  status: number;
  /** The body's `error`. */
  error: BearerErrorCode | PublicErrorCode;
  /** A challenge goes with the response; `bearerError` is its `error`, none for missing credentials. */
  challenge?: 'bare' | 'coded';
  /** The scheme whose challenge carries it (DPoP's own errors); else the one the client used. */
  scheme?: 'DPoP';
  retryAfterSeconds?: number;
  description: string;
}

const INVALID_TOKEN_DESCRIPTION = 'The access token is not valid for this request';
const AS_DESCRIPTION = 'The authorization server is unavailable; try again later';

const noCredentials = (description: string): ReasonSpec => ({ status: 401, error: 'unauthorized', challenge: 'bare', description });
const invalidRequest = (description: string): ReasonSpec => ({ status: 400, error: 'invalid_request', challenge: 'coded', description });
const invalidToken: ReasonSpec = { status: 401, error: 'invalid_token', challenge: 'coded', description: INVALID_TOKEN_DESCRIPTION };
const invalidProof: ReasonSpec = { status: 401, error: 'invalid_dpop_proof', challenge: 'coded', scheme: 'DPoP', description: 'The DPoP proof is not valid for this request' };
const asUnavailable: ReasonSpec = { status: 503, error: 'temporarily_unavailable', retryAfterSeconds: 5, description: AS_DESCRIPTION };

export const REASONS = {
  // No usable credentials: 401 with a bare challenge per accepted scheme.
  no_credentials: noCredentials('No access token was presented'),
  other_scheme: noCredentials('The Authorization scheme is not one this resource accepts'),
  // The request itself is malformed: 400.
  multiple_authorization_headers: invalidRequest('More than one Authorization header'),
  malformed_token: invalidRequest('The Authorization header is not a valid Bearer credential'),
  token_too_long: invalidRequest('The access token is too long'),
  token_in_query: invalidRequest('Access tokens are not accepted in the URL'),
  token_in_body: invalidRequest('Access tokens are not accepted in the request body'),
  bad_request_target: invalidRequest('The request target is not allowed'),
  malformed_url: invalidRequest('The request URL is malformed'),
  bad_request: { status: 400, error: 'invalid_request', description: 'The request was rejected' },
  // The token does not grant this request: 401 invalid_token, one description for all.
  token_inactive: invalidToken,
  token_expired: invalidToken,
  token_not_yet_valid: invalidToken,
  issuer_mismatch: invalidToken,
  audience_mismatch: invalidToken,
  not_an_access_token: invalidToken,
  token_without_subject: invalidToken,
  token_not_bound: invalidToken,
  binding_mismatch: invalidToken,
  // A partner certificate from a trusted ingress's header that is malformed or does not verify.
  client_cert_invalid: invalidToken,
  // A DPoP proof that does not check out (RFC 9449 §4.3).
  dpop_proof_invalid: invalidProof,
  dpop_proof_replayed: invalidProof,
  dpop_nonce_required: { status: 401, error: 'use_dpop_nonce', challenge: 'coded', scheme: 'DPoP', description: 'A fresh DPoP nonce is required' },
  // The token is bound by a method this resource does not accept, or presented with the wrong scheme.
  binding_method_not_accepted: invalidToken,
  dpop_downgrade: invalidToken,
  scope_missing: { status: 403, error: 'insufficient_scope', challenge: 'coded', description: 'The access token lacks a required scope' },
  // HTTP-level refusals, before any token is looked at.
  no_matching_rule: { status: 403, error: 'access_denied', description: 'No rule of this API covers this request' },
  method_not_allowed: { status: 405, error: 'method_not_allowed', description: 'The request method is not allowed' },
  misdirected_request: { status: 421, error: 'misdirected_request', description: 'This server does not serve the requested host' },
  body_too_large: { status: 413, error: 'request_too_large', description: 'The request body is too large' },
  request_timeout: { status: 408, error: 'request_timeout', description: 'The request was not received in time' },
  client_concurrency_limit: { status: 429, error: 'rate_limited', retryAfterSeconds: 1, description: 'Too many concurrent requests from this client; try again later' },
  failed_token_limit: { status: 429, error: 'rate_limited', retryAfterSeconds: 60, description: 'Too many invalid access tokens from this client; try again later' },
  introspection_concurrency_limit: { status: 429, error: 'rate_limited', retryAfterSeconds: 1, description: 'Too many new access tokens from this client at once; try again later' },
  // The authorization server could not give a usable answer: 503, never the client's fault.
  as_unreachable: asUnavailable,
  as_timeout: asUnavailable,
  as_error_status: asUnavailable,
  as_malformed_response: asUnavailable,
  as_rejected_sidecar_credentials: asUnavailable,
  as_capacity: asUnavailable,
  // A signed (RFC 9701) answer that does not verify: signature, key, typ, iss, aud or iat.
  as_unverified_response: asUnavailable,
  // The fleet's Redis cannot record a DPoP proof's jti for every pod.
  replay_store_unavailable: { status: 503, error: 'temporarily_unavailable', retryAfterSeconds: 1, description: 'The request cannot be checked right now; try again later' },
  // The API beside the sidecar.
  upstream_unavailable: { status: 502, error: 'bad_gateway', description: 'The API is unavailable' },
  upstream_timeout: { status: 504, error: 'gateway_timeout', description: 'The API did not answer in time' },
  upstream_busy: { status: 503, error: 'temporarily_unavailable', retryAfterSeconds: 1, description: 'The API is busy; try again later' },
  // The client went away before an answer could be sent (logged as 499, as nginx does).
  client_closed_request: { status: 499, error: 'client_closed_request', description: 'The client closed the request' },
  // The sidecar itself.
  internal_error: { status: 500, error: 'server_error', description: 'Internal error' },
} as const satisfies Record<string, ReasonSpec>;

export type RefusalReason = keyof typeof REASONS;

export function isRefusalReason(value: string): value is RefusalReason {
  return Object.hasOwn(REASONS, value);
}
