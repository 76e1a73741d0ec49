// Stage 6: the rules an active answer must still meet: time (RFC 7662 §2.2 exp/nbf, with
// leeway for clock skew), issuer and audience when configured, then the required scopes.
import { InsufficientScope, InvalidToken } from '../errors.ts';
import type { TokenClaims } from './introspect.ts';

export const CLOCK_LEEWAY_SECONDS = 60;

export interface ClaimRules {
  expectedIssuer: string | undefined;
  expectedAudience: string | undefined;
  requiredScopes: readonly string[];
}

export function checkTokenTimes(claims: TokenClaims, nowSeconds: number): void {
  if (claims.exp !== undefined && nowSeconds > claims.exp + CLOCK_LEEWAY_SECONDS) {
    throw new InvalidToken('token_expired');
  }
  if (claims.nbf !== undefined && nowSeconds + CLOCK_LEEWAY_SECONDS < claims.nbf) {
    throw new InvalidToken('token_not_yet_valid');
  }
}

export function checkIssuerAndAudience(claims: TokenClaims, rules: ClaimRules): void {
  if (rules.expectedIssuer !== undefined && claims.iss !== rules.expectedIssuer) {
    throw new InvalidToken('issuer_mismatch');
  }
  if (rules.expectedAudience !== undefined) {
    const audiences = typeof claims.aud === 'string' ? [claims.aud] : claims.aud ?? [];
    if (!audiences.includes(rules.expectedAudience)) {
      throw new InvalidToken('audience_mismatch');
    }
  }
}

export function checkScopes(claims: TokenClaims, requiredScopes: readonly string[]): void {
  if (requiredScopes.length === 0) return;
  const granted = new Set((claims.scope ?? '').split(' '));
  if (!requiredScopes.every((scope) => granted.has(scope))) {
    throw new InsufficientScope(requiredScopes.join(' '));
  }
}
