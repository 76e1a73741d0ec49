// The JWS algorithms the sidecar signs and accepts (FAPI 2.0 §5.4.1, RFC 8725): asymmetric
// only, never `none`, HMAC or RS256. One list for every JWT it makes or reads: its own JWTs,
// its client assertions, signed introspection answers and Security Event Tokens.
export const FAPI_ALGORITHMS = ['ES256', 'PS256', 'EdDSA'] as const;
export type JwtAlg = (typeof FAPI_ALGORITHMS)[number];

// RFC 9449 §4.3 / FAPI 2.0 §5.4.1: a DPoP proof may also use the larger curve and hash.
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'PS256', 'PS384', 'EdDSA'] as const;
/** What PHANTOM_DPOP_ALGS accepts when it is not set. */
export const DEFAULT_DPOP_ALGORITHMS: readonly string[] = ['ES256', 'PS256', 'EdDSA'];

// RFC 9110 §9 methods an API may serve. CONNECT and TRACE are not among them: a proxy that
// tunnels or reflects requests has no place in front of an API.
export const API_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
