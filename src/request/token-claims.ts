// The claims of an active answer, as the token must still meet them: time (RFC 7662 §2.2 exp/nbf, with
// leeway for clock skew), an access token at all (not a refresh token), someone it was
// issued to, issuer and audience, then the required scopes.
import { InsufficientScope, InvalidToken } from '../errors.ts';
import type { TokenClaims } from '../introspection/answer.ts';

export const CLOCK_LEEWAY_SECONDS = 60;

export interface ClaimRules {
  expectedIssuer: string | undefined;
  expectedAudience: string | undefined;
  /** Require token_type Bearer or DPoP (off for an AS that omits it, and in as-jwt mode). */
  requireTokenType: boolean;
}

// RFC 7662 §2.2 token_type values of access tokens (RFC 6750, RFC 9449), compared
// case-insensitively as RFC 6749 §7.1 says.
const ACCESS_TOKEN_TYPES = new Set(['bearer', 'dpop']);

/**
 * An AS may answer `active: true` for a refresh token (oidc-provider does, even with
 * token_type_hint=access_token) and omits token_type for it: only access tokens pass.
 */
export function checkAccessToken(claims: TokenClaims, rules: Pick<ClaimRules, 'requireTokenType'>): void {
  if (!rules.requireTokenType) return;
  if (claims.token_type === undefined || !ACCESS_TOKEN_TYPES.has(claims.token_type.toLowerCase())) {
    throw new InvalidToken('not_an_access_token', claims.token_type === undefined ? 'absent' : 'other');
  }
}

/** RFC 9068 needs `sub` and `client_id` in the JWT the API gets: a token with neither is refused. */
export function checkSubject(claims: TokenClaims): void {
  if (claims.sub === undefined && claims.client_id === undefined) throw new InvalidToken('token_without_subject');
}

/**
 * `exp` is the one rule for every mode: a token whose exp has passed on this clock is refused,
 * with no leeway, since no JWT for the API can be made from it (RFC 9068 needs a future exp).
 * `nbf` gets leeway for clock skew: the AS said the token is active.
 */
export function checkTokenTimes(claims: TokenClaims, nowSeconds: number): void {
  if (claims.exp !== undefined && nowSeconds >= claims.exp) {
    throw new InvalidToken('token_expired');
  }
  if (claims.nbf !== undefined && nowSeconds + CLOCK_LEEWAY_SECONDS < claims.nbf) {
    throw new InvalidToken('token_not_yet_valid');
  }
}

export function checkIssuerAndAudience(claims: TokenClaims, rules: Pick<ClaimRules, 'expectedIssuer' | 'expectedAudience'>): void {
  if (rules.expectedIssuer !== undefined && claims.iss !== rules.expectedIssuer) {
    throw new InvalidToken('issuer_mismatch');
  }
  if (rules.expectedAudience !== undefined) {
    // A token without `aud` is refused too: it was not issued for this API.
    const audiences = typeof claims.aud === 'string' ? [claims.aud] : claims.aud ?? [];
    if (!audiences.includes(rules.expectedAudience)) {
      throw new InvalidToken('audience_mismatch', claims.aud === undefined ? 'absent' : undefined);
    }
  }
}

/** All of `requiredScopes`, and one of `anyOf` when it is not empty. */
export function checkScopes(claims: TokenClaims, requiredScopes: readonly string[], anyOf: readonly string[] = []): void {
  if (requiredScopes.length === 0 && anyOf.length === 0) return;
  const granted = new Set((claims.scope ?? '').split(' '));
  const all = requiredScopes.every((scope) => granted.has(scope));
  const one = anyOf.length === 0 || anyOf.some((scope) => granted.has(scope));
  if (!all || !one) throw new InsufficientScope([...requiredScopes, ...anyOf].join(' '));
}
