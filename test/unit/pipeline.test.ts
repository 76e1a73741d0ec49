// The request pipeline with plain objects: no server, no socket, no framework. A connection is
// an object with a verified certificate; the authorization server is a function. Every stage
// runs as in production, and the synchronous cache-hit path decides as the asynchronous one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import fc from 'fast-check';
import { SidecarError } from '../../src/errors.ts';
import type { Introspection, Introspector } from '../../src/introspection/answer.ts';
import { IntrospectionCache } from '../../src/introspection/cache.ts';
import { createUpstreamTokenSource } from '../../src/introspection/upstream-token.ts';
import { createRequestAuthorizer } from '../../src/request/authorization.ts';
import { partnerCertificates } from '../../src/request/partner-certificate.ts';
import { PartnerLimits } from '../../src/request/partner-limits.ts';
import { requestPipeline, type RequestHead } from '../../src/request/pipeline.ts';
import { defaultPolicy } from '../../src/request/route-policy.ts';
import { newRequestState, type RequestState } from '../../src/request/state.ts';
import { targetRules } from '../../src/request/target.ts';
import { API_METHODS } from '../../src/vocabulary.ts';
import type { Config } from '../../src/config/config.ts';
import { makePki } from '../support/pki.ts';

const pki = makePki();
const NOW = 1_800_000_000_000;
const nowSeconds = NOW / 1000;
const connectionOf = (pem: string) => ({ authorized: true, getPeerX509Certificate: () => new X509Certificate(pem) });
const partnerA = connectionOf(pki.partnerA.cert);
const cacheSettings = { maxEntries: 100, maxTtlSeconds: 300, negativeTtlSeconds: 5, negativeMaxEntries: 100, staleIfErrorSeconds: 0 };
const limitSettings = { maxConcurrentPerClient: 64, maxFailedTokensPerMinute: 1_000_000, maxConcurrentIntrospectionsPerClient: 16 };
const tokens = await createUpstreamTokenSource({ mode: 'mint', issuer: 'https://sidecar', audience: 'https://api.internal', ttlSeconds: 60, alg: 'ES256', signingKey: undefined });

/** A pipeline over an authorization server that answers `answers[token]` (inactive when unknown). */
function pipelineFor(answers: Record<string, Introspection>, requiredScopes: readonly string[] = []) {
  let calls = 0;
  const introspector: Introspector = {
    introspect: async (token) => {
      calls += 1;
      return answers[token] ?? { active: false };
    },
    close: async () => undefined,
  };
  const limits = new PartnerLimits(limitSettings, () => NOW);
  const cache = new IntrospectionCache(introspector, cacheSettings, () => NOW);
  const authorizer = createRequestAuthorizer({
    cache,
    tokens,
    limits,
    dpop: undefined,
    now: () => NOW,
    rules: { requireBinding: true, expectedIssuer: 'https://as', expectedAudience: 'https://api', requireTokenType: true },
  });
  const senderConstraints = { mtls: true, dpop: false };
  const pipeline = requestPipeline({
    partners: partnerCertificates({ source: 'tls' }, () => ({}) as Config['tls']),
    target: targetRules(API_METHODS, undefined, new URL('http://127.0.0.1:3000')),
    policy: () => defaultPolicy({ senderConstraints, requiredScopes }),
    metadataRule: undefined,
    schemes: { bearer: true, dpop: false },
    maxBodyBytes: 1000,
    limits,
    authorizer,
  });
  return { pipeline, calls: () => calls };
}

const head = (token: string | undefined, extra: Partial<RequestHead> = {}): RequestHead => ({
  method: 'GET',
  target: '/accounts/42?page=1',
  headers: { host: 'api.example.com' },
  distinct: token === undefined ? {} : { authorization: [`Bearer ${token}`] },
  connection: partnerA,
  ...extra,
});

const bound = (claims: Record<string, unknown> = {}): Introspection => ({
  active: true,
  claims: { iss: 'https://as', aud: 'https://api', client_id: 'partner-a', token_type: 'Bearer', exp: nowSeconds + 60, scope: 'accounts', cnf: { 'x5t#S256': pki.partnerA.thumbprint }, ...claims },
});

type Outcome = { decided: 'at admission' | 'at once' | 'later'; result: string };

const reasonOf = (error: unknown): string => {
  assert.ok(error instanceof SidecarError, String(error));
  return error.reason;
};

/** Runs the whole sequence and says how and when it ended: a JWT for the API, or a refusal's reason. */
async function run(pipeline: ReturnType<typeof pipelineFor>['pipeline'], request: RequestHead): Promise<Outcome & { state: RequestState }> {
  const state = newRequestState();
  try {
    pipeline.admit(state, request);
  } catch (error) {
    return { decided: 'at admission', result: reasonOf(error), state };
  }
  let decided: true | Promise<void>;
  try {
    decided = pipeline.authorize(state, request.connection, undefined);
  } catch (error) {
    return { decided: 'at once', result: reasonOf(error), state };
  }
  if (decided === true) return { decided: 'at once', result: state.upstreamJwt === undefined ? 'no jwt' : 'jwt', state };
  try {
    await decided;
    return { decided: 'later', result: state.upstreamJwt === undefined ? 'no jwt' : 'jwt', state };
  } catch (error) {
    return { decided: 'later', result: reasonOf(error), state };
  }
}

test('a bound token: the head admitted, the token authorized, a JWT for the API; the second time from the cache at once', async () => {
  const { pipeline, calls } = pipelineFor({ good: bound() });
  const first = await run(pipeline, head('good'));
  assert.deepEqual([first.decided, first.result], ['later', 'jwt']);
  assert.equal(first.state.upstreamPath, '/accounts/42');
  assert.equal(first.state.route?.name, 'default');
  assert.equal(first.state.x5t, pki.partnerA.thumbprint);
  const second = await run(pipeline, head('good'));
  assert.deepEqual([second.decided, second.result], ['at once', 'jwt']);
  assert.equal(calls(), 1);
});

test('each stage refuses what it is for, in order, with its reason', async () => {
  const { pipeline } = pipelineFor({ good: bound() });
  const cases: [string, RequestHead, string][] = [
    ['another partner\'s connection', head('good', { connection: connectionOf(pki.partnerB.cert) }), 'binding_mismatch'],
    ['TRACE', head('good', { method: 'TRACE' }), 'method_not_allowed'],
    ['a traversal', head('good', { target: '/a/../admin' }), 'bad_request_target'],
    ['a declared body too large', head('good', { headers: { host: 'h', 'content-length': '5000' } }), 'body_too_large'],
    ['a token in the query', head('good', { target: '/accounts?access_token=x' }), 'token_in_query'],
    ['no credentials', head(undefined), 'no_credentials'],
    ['Basic credentials', head(undefined, { distinct: { authorization: ['Basic eDp5'] } }), 'other_scheme'],
    ['two Authorization headers', head(undefined, { distinct: { authorization: ['Bearer a', 'Bearer b'] } }), 'multiple_authorization_headers'],
    ['an unknown token', head('unknown'), 'token_inactive'],
  ];
  for (const [name, request, reason] of cases) assert.equal((await run(pipeline, request)).result, reason, name);
});

test('property: the synchronous cache-hit path decides exactly as the asynchronous path, for any answer', async () => {
  const answer = fc.record({
    active: fc.boolean(),
    exp: fc.constantFrom(nowSeconds - 10, nowSeconds + 60, undefined),
    nbf: fc.constantFrom(undefined, nowSeconds - 5, nowSeconds + 3600),
    aud: fc.constantFrom('https://api', 'https://other', undefined),
    iss: fc.constantFrom('https://as', 'https://evil'),
    token_type: fc.constantFrom('Bearer', 'refresh_token', undefined),
    cnf: fc.constantFrom({ 'x5t#S256': pki.partnerA.thumbprint }, { 'x5t#S256': pki.partnerB.thumbprint }, undefined),
    scope: fc.constantFrom('accounts', 'payments', undefined),
    client_id: fc.constantFrom('partner-a', undefined),
  });
  let atOnce = 0;
  await fc.assert(
    fc.asyncProperty(answer, fc.constantFrom<readonly string[]>([], ['accounts']), async (claims, requiredScopes) => {
      const { active, ...members } = claims;
      const introspection: Introspection = active ? { active: true, claims: Object.fromEntries(Object.entries(members).filter(([, value]) => value !== undefined)) } : { active: false };
      const { pipeline } = pipelineFor({ t: introspection }, requiredScopes);
      const first = await run(pipeline, head('t'));
      const second = await run(pipeline, head('t'));
      // The second run meets the cached answer (when it was cached at all): decided at once or
      // by the same asynchronous path; either way, the same decision.
      assert.equal(second.result, first.result);
      assert.equal(first.decided, 'later', 'the first time, the answer is asked for');
      if (second.decided === 'at once') atOnce += 1;
    }),
    { numRuns: 300 },
  );
  // Cached answers (active ones not expired, inactive ones) are decided on the synchronous path.
  assert.ok(atOnce > 100, `only ${atOnce} of 300 runs decided at once`);
});
