// Stages 3 to 7 in the order a request meets them, with no HTTP framework in sight, so the
// whole decision is testable with plain objects. Any throw stops the request: fail closed.
import { InvalidToken, MissingCredentials } from '../errors.ts';
import type { Config } from '../config.ts';
import type { RequestState } from '../request-state.ts';
import { checkIssuerAndAudience, checkScopes, checkTokenTimes } from './authorize.ts';
import { checkCertificateBinding } from './binding.ts';
import type { IntrospectionCache } from './cache.ts';
import type { UpstreamTokenSource } from './upstream-token.ts';

export type AuthorisationRules = Pick<Config, 'requireBinding' | 'requiredScopes' | 'expectedIssuer' | 'expectedAudience'>;

export type RequestAuthoriser = (state: RequestState, connection?: object) => Promise<void>;

/**
 * Decides one request whose token stage 2 extracted and whose connection thumbprint stage 1
 * recorded; on success `state.upstreamJwt` holds the JWT to forward.
 */
export function createRequestAuthoriser(
  cache: IntrospectionCache,
  tokens: UpstreamTokenSource,
  rules: AuthorisationRules,
  now: () => number = Date.now,
): RequestAuthoriser {
  return async (state, connection) => {
    if (state.token === undefined) throw new MissingCredentials('no_credentials');
    const { entry, outcome } = await cache.lookup(state.token, connection);
    state.cache = outcome;
    const { introspection } = entry;
    if (!introspection.active) throw new InvalidToken('token_inactive');
    const { claims } = introspection;
    state.clientId = claims.client_id;
    state.sub = claims.sub;
    const nowSeconds = Math.floor(now() / 1000);
    checkTokenTimes(claims, nowSeconds);
    checkIssuerAndAudience(claims, rules);
    checkCertificateBinding(claims.cnf, state.x5t, rules.requireBinding);
    checkScopes(claims, rules.requiredScopes);
    state.upstreamJwt = await tokens.jwtFor(entry, nowSeconds);
  };
}
