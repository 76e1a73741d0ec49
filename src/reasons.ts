// The closed set of reasons a request can be refused or fail for. They are the `reason`
// field of the access line and a label of `phantom_requests_total`, so they must come from
// this fixed list: anything variable (an AS status code, a socket error code) goes into the
// error's `detail`, which is logged but never a label and never sent to the client.
//
// Each reason also names the fixed public description the client sees. Every
// `invalid_token` reason shares one description, so a holder of a stolen token cannot learn
// from the answer whether it is inactive, expired, bound elsewhere or meant for another API.

const INVALID_TOKEN_DESCRIPTION = 'The access token is not valid for this request';
const AS_DESCRIPTION = 'The authorization server is unavailable; try again later';

export const REASON_DESCRIPTIONS = {
  // No usable credentials: 401 with a bare challenge.
  no_credentials: 'No access token was presented',
  other_scheme: 'Only Bearer access tokens are accepted',
  // The request itself is malformed: 400.
  multiple_authorization_headers: 'More than one Authorization header',
  malformed_token: 'The Authorization header is not a valid Bearer credential',
  token_too_long: 'The access token is too long',
  token_in_query: 'Access tokens are not accepted in the URL',
  token_in_body: 'Access tokens are not accepted in the request body',
  bad_request_target: 'The request target is not allowed',
  malformed_url: 'The request URL is malformed',
  bad_request: 'The request was rejected',
  // The token does not grant this request: 401 invalid_token, one description for all.
  token_inactive: INVALID_TOKEN_DESCRIPTION,
  token_expired: INVALID_TOKEN_DESCRIPTION,
  token_not_yet_valid: INVALID_TOKEN_DESCRIPTION,
  issuer_mismatch: INVALID_TOKEN_DESCRIPTION,
  audience_mismatch: INVALID_TOKEN_DESCRIPTION,
  not_an_access_token: INVALID_TOKEN_DESCRIPTION,
  token_without_subject: INVALID_TOKEN_DESCRIPTION,
  token_not_bound: INVALID_TOKEN_DESCRIPTION,
  binding_mismatch: INVALID_TOKEN_DESCRIPTION,
  // A partner certificate from a trusted ingress's header that is malformed or does not verify.
  client_cert_invalid: INVALID_TOKEN_DESCRIPTION,
  // A DPoP proof that does not check out (RFC 9449 §4.3): 401 invalid_dpop_proof.
  dpop_proof_invalid: 'The DPoP proof is not valid for this request',
  dpop_proof_replayed: 'The DPoP proof is not valid for this request',
  dpop_nonce_required: 'A fresh DPoP nonce is required',
  // The token is bound by a method this resource does not accept, or presented with the wrong scheme.
  binding_method_not_accepted: INVALID_TOKEN_DESCRIPTION,
  dpop_downgrade: INVALID_TOKEN_DESCRIPTION,
  // 403 insufficient_scope.
  scope_missing: 'The access token lacks a required scope',
  // HTTP-level refusals, before any token is looked at.
  no_matching_rule: 'No rule of this API covers this request',
  method_not_allowed: 'The request method is not allowed',
  misdirected_request: 'This server does not serve the requested host',
  body_too_large: 'The request body is too large',
  request_timeout: 'The request was not received in time',
  client_concurrency_limit: 'Too many concurrent requests from this client; try again later',
  failed_token_limit: 'Too many invalid access tokens from this client; try again later',
  introspection_concurrency_limit: 'Too many new access tokens from this client at once; try again later',
  // The authorization server could not give a usable answer: 503.
  as_unreachable: AS_DESCRIPTION,
  as_timeout: AS_DESCRIPTION,
  as_error_status: AS_DESCRIPTION,
  as_malformed_response: AS_DESCRIPTION,
  as_rejected_sidecar_credentials: AS_DESCRIPTION,
  as_capacity: AS_DESCRIPTION,
  // A signed (RFC 9701) answer that does not verify: signature, key, typ, iss, aud or iat.
  as_unverified_response: AS_DESCRIPTION,
  // The fleet's Redis cannot record a DPoP proof's jti for every pod: 503.
  replay_store_unavailable: 'The request cannot be checked right now; try again later',
  // The API beside the sidecar.
  upstream_unavailable: 'The API is unavailable',
  upstream_timeout: 'The API did not answer in time',
  upstream_busy: 'The API is busy; try again later',
  // The client went away before an answer could be sent (logged as 499, as nginx does).
  client_closed_request: 'The client closed the request',
  // The sidecar itself.
  internal_error: 'Internal error',
} as const satisfies Record<string, string>;

export type RefusalReason = keyof typeof REASON_DESCRIPTIONS;

export const REFUSAL_REASONS = Object.keys(REASON_DESCRIPTIONS) as RefusalReason[];

export function isRefusalReason(value: string): value is RefusalReason {
  return Object.hasOwn(REASON_DESCRIPTIONS, value);
}
