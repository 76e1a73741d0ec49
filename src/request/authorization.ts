// The authorization of one request by its token's answer, in the order the checks run, with
// no HTTP framework in sight, so the whole decision is testable with plain objects. Any throw
// stops the request: fail closed.
import { InternalError, InvalidDpopProof, InvalidToken, MissingCredentials } from '../errors.ts';
import type { Config } from '../config/config.ts';
import type { RequestState } from './state.ts';
import { checkAccessToken, checkIssuerAndAudience, checkScopes, checkSubject, checkTokenTimes, type ClaimRules } from './token-claims.ts';
import { checkBinding } from './binding.ts';
import type { DpopVerifier } from './dpop.ts';
import type { IntrospectionCache } from '../introspection/cache.ts';
import type { Introspection } from '../introspection/answer.ts';
import type { PartnerLimits } from './partner-limits.ts';
import type { UpstreamTokenSource } from '../introspection/upstream-token.ts';
import { inSpan, type Spans } from '../tracing/seam.ts';

export type AuthorizationRules = ClaimRules & Pick<Config, 'requireBinding'>;

export interface RequestAuthorizer {
  (state: RequestState, connection?: object): Promise<void>;
  /**
   * The cache-hit path without a promise: true when the request is decided here (every check
   * run, the JWT at hand); false when the asynchronous path must decide it. Throws a refusal
   * like the other.
   */
  atOnce(state: RequestState, connection?: object): boolean;
}

export interface AuthorizerParts {
  cache: IntrospectionCache;
  tokens: UpstreamTokenSource;
  limits: PartnerLimits;
  rules: AuthorizationRules;
  /** Present where DPoP is accepted. */
  dpop: DpopVerifier | undefined;
  /** Child spans of the request's, when tracing is on. */
  spans?: Spans | undefined;
  now?: () => number;
}

/** The token's claims and its binding, for one answer; throws what fails first. */
function checkAnswer(introspection: Introspection, state: RequestState, dpopJkt: string | undefined, rules: AuthorizationRules, nowSeconds: number): void {
  if (!introspection.active) throw new InvalidToken('token_inactive');
  const { claims } = introspection;
  state.clientId = claims.client_id;
  state.sub = claims.sub;
  checkTokenTimes(claims, nowSeconds);
  checkAccessToken(claims, rules);
  checkSubject(claims);
  // The route's rule says what this request needs (without a policy file, one rule for all).
  const route = state.route;
  if (route === undefined) throw new InternalError('unrouted');
  checkIssuerAndAudience(claims, { expectedIssuer: rules.expectedIssuer, expectedAudience: route.audience ?? rules.expectedAudience });
  checkBinding(claims.cnf, { scheme: state.scheme, x5t: state.x5t, dpopJkt, accepted: route.senderConstraints }, rules.requireBinding);
  checkScopes(claims, route.scopes, route.anyOf);
}

/**
 * Decides one request whose token the credential step extracted and whose partner the
 * partner step identified; on success `state.upstreamJwt` holds the JWT to forward. A token the cache does
 * not know takes one of the partner's introspection slots; a token or proof that proves
 * invalid costs it one failure of its budget.
 */
export function createRequestAuthorizer({ cache, tokens, limits, rules, dpop, spans, now = Date.now }: AuthorizerParts): RequestAuthorizer {
  const atOnce = (state: RequestState, connection?: object): boolean => {
    // A DPoP proof needs its (possibly remote) jti store: never decided synchronously.
    if (state.token === undefined || state.scheme === 'DPoP' || state.dpopProof !== undefined) return false;
    const entry = cache.peek(state.token, connection);
    if (entry === undefined) return false;
    const nowSeconds = Math.floor(now() / 1000);
    const jwt = entry.introspection.active ? tokens.readyJwtFor(entry, nowSeconds) : undefined;
    // The same checks as the asynchronous path, in the same order; an inactive answer refuses.
    if (entry.introspection.active && jwt === undefined) return false;
    state.cache = 'hit';
    if (spans !== undefined) {
      const at = now();
      spans.record('cache lookup', at, at, { 'phantom.cache.level': 'memory', 'phantom.cache.outcome': 'hit' });
    }
    checkAnswer(entry.introspection, state, undefined, rules, nowSeconds);
    state.upstreamJwt = jwt;
    return true;
  };
  const authorize = async (state: RequestState, connection?: object): Promise<void> => {
    if (state.token === undefined) throw new MissingCredentials('no_credentials');
    const partner = state.x5t ?? '';
    // The DPoP proof is checked, and its jti spent, before the AS is asked anything.
    let dpopJkt: string | undefined;
    if (state.scheme === 'DPoP' || state.dpopProof !== undefined) {
      // Never a DPoP request without its proof checked, whatever led here.
      if (dpop === undefined || state.dpopProof === undefined) throw new InvalidDpopProof('dpop_proof_invalid', 'unchecked');
      // A partner whose failures are spent costs no signature check either.
      limits.checkFailureBudget(partner);
      try {
        dpopJkt = await dpop.verify(state.dpopProof, { method: state.method, htu: state.htu ?? '', token: state.token });
      } catch (error) {
        if (error instanceof InvalidDpopProof) limits.recordFailure(partner);
        throw error;
      }
    }
    const token = state.token;
    const { entry, outcome, ticket } = await inSpan(spans, 'cache lookup', 'internal', {}, async (notes) => {
      const found = await cache.lookup(token, connection, () => limits.admitIntrospection(partner));
      notes.set('phantom.cache.outcome', found.outcome);
      // Where the answer came from: this pod's memory, the fleet's Redis, or the AS.
      notes.set('phantom.cache.level', found.outcome === 'fleet' ? 'redis' : found.outcome === 'miss' ? 'authorization_server' : 'memory');
      return found;
    });
    state.cache = outcome;
    const nowSeconds = Math.floor(now() / 1000);
    try {
      checkAnswer(entry.introspection, state, dpopJkt, rules, nowSeconds);
    } catch (error) {
      // Only a token that proves invalid is a failure; a missing scope is the partner's right to ask.
      if (error instanceof InvalidToken) ticket?.failed();
      throw error;
    } finally {
      ticket?.release();
    }
    state.upstreamJwt = spans === undefined ? await tokens.jwtFor(entry, nowSeconds) : await inSpan(spans, 'jwt', 'internal', {}, () => tokens.jwtFor(entry, nowSeconds));
  };
  return Object.assign(authorize, { atOnce });
}
