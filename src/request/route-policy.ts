// The route: which rule of the route policy a request falls under, by its method and the path
// the API receives: the scopes it needs, the sender constraints it accepts, its audience, or
// none at all for a public path. First match wins; no match is 403 and nothing is forwarded.
// The policy is a YAML file (PHANTOM_POLICY_FILE), checked whole at start-up and re-read on
// change; without one, one rule covers every path with PHANTOM_REQUIRED_SCOPES.
import type { Logger } from 'pino';
import { parseRules, readPolicyRules, type PolicyDefaults, type RouteRule } from '../config/policy.ts';
import { RequestRejected } from '../errors.ts';
import { WatchedFiles } from '../config/watched-files.ts';
import type { RequestState } from './state.ts';
import { upstreamPathOf, type TargetRules } from './target.ts';

export type { PolicyDefaults, RouteRule };

function segmentsOf(path: string): string[] {
  const segments = path.split('/').slice(1);
  if (segments.length > 0 && segments.at(-1) === '') segments.pop();
  return segments;
}

// A rule's pattern split once, not on every request it is tried for. Patterns come from the
// policy file alone; the bound only matters across many reloads.
const PATTERNS_MAX = 10_000;
const patterns = new Map<string, readonly string[]>();

function patternSegments(pattern: string): readonly string[] {
  let segments = patterns.get(pattern);
  if (segments === undefined) {
    if (patterns.size >= PATTERNS_MAX) patterns.clear();
    segments = segmentsOf(pattern);
    patterns.set(pattern, segments);
  }
  return segments;
}

/**
 * Whether the path the API receives falls under a rule's path: exact, prefix (a trailing `/`:
 * the path itself and everything under it), {param} (one non-empty segment). A trailing slash
 * of the request is the same path, as routers with ignoreTrailingSlash (or Spring's default)
 * read it; a router that tells them apart only ever gets a narrower rule for one of them.
 */
export function pathMatches(pattern: string, path: string, foldCase = false): boolean {
  const prefix = pattern.endsWith('/');
  const want = patternSegments(foldCase ? pattern.toLowerCase() : pattern);
  // A prefix rule for `/` covers every path: there is nothing to compare.
  if (prefix && want.length === 0) return true;
  const have = segmentsOf(foldCase ? path.toLowerCase() : path);
  if (prefix ? have.length < want.length : have.length !== want.length) return false;
  for (let i = 0; i < want.length; i += 1) {
    const segment = want[i] ?? '';
    const actual = have[i] ?? '';
    if (segment.startsWith('{') && segment.endsWith('}')) {
      if (actual === '') return false;
    } else if (segment !== actual) {
      return false;
    }
  }
  return true;
}

export class RoutePolicy {
  readonly rules: readonly RouteRule[];
  readonly #caseInsensitive: boolean;
  constructor(rules: readonly RouteRule[], caseInsensitive = false) {
    this.rules = rules;
    this.#caseInsensitive = caseInsensitive;
  }

  #first(method: string, path: string, foldCase: boolean): RouteRule | undefined {
    for (const rule of this.rules) {
      if ((rule.methods === undefined || rule.methods.has(method)) && pathMatches(rule.path, path, foldCase)) return rule;
    }
    return undefined;
  }

  /**
   * The first rule for this method and path; 403 when none. Compared with case by default; and
   * where another case of the same path would meet another rule, refused as well: an API that
   * routes without case would otherwise run the other rule's handler under this one's scopes.
   */
  match(method: string, path: string): RouteRule {
    // Folding case only adds matches: with one rule, it cannot pick another one.
    if (this.rules.length === 1 && !this.#caseInsensitive) {
      const only = this.#first(method, path, false);
      if (only === undefined) throw new RequestRejected('no_matching_rule');
      return only;
    }
    const folded = this.#first(method, path, true);
    const rule = this.#caseInsensitive ? folded : this.#first(method, path, false);
    if (rule === undefined) throw new RequestRejected('no_matching_rule');
    if (rule !== folded) throw new RequestRejected('no_matching_rule', { detail: 'another_case_meets_another_rule' });
    return rule;
  }

  /** Every scope any rule asks for, for the RFC 9728 metadata. */
  scopes(): string[] {
    return [...new Set(this.rules.flatMap((rule) => [...rule.scopes, ...rule.anyOf]))];
  }
}

/**
 * The path the API receives and the rule it falls under. The RFC 9728 metadata is the
 * sidecar's own path, not the API's: it meets its own anonymous rule.
 */
export function routeRequest(state: RequestState, method: string, target: string, rules: { target: TargetRules; policy: RoutePolicy; metadataRule: RouteRule | undefined }): void {
  const { metadataRule } = rules;
  if (metadataRule !== undefined && target === metadataRule.path && metadataRule.methods?.has(method) === true) {
    state.upstreamPath = metadataRule.path;
    state.route = metadataRule;
    return;
  }
  state.upstreamPath = upstreamPathOf(target, rules.target);
  state.route = rules.policy.match(method, state.upstreamPath);
}

/**
 * RFC 9728 metadata is public and served by the sidecar itself: the rule its requests meet, so
 * they go the way of every anonymous route (no token looked at) and are logged as such.
 */
export function resourceMetadataRule(path: string): RouteRule {
  return { name: 'resource-metadata', methods: new Set(['GET', 'HEAD']), path, scopes: [], anyOf: [], senderConstraints: { mtls: false, dpop: false }, audience: undefined, anonymous: true };
}

export function defaultPolicy(defaults: PolicyDefaults): RoutePolicy {
  return new RoutePolicy([
    { name: 'default', methods: undefined, path: '/', scopes: defaults.requiredScopes, anyOf: [], senderConstraints: defaults.senderConstraints, audience: undefined, anonymous: false },
  ]);
}

/** A policy document as a RoutePolicy (checked as at start-up). */
export function parsePolicy(text: string, defaults: PolicyDefaults): RoutePolicy {
  return new RoutePolicy(parseRules(text, defaults), defaults.caseInsensitive === true);
}

export function readPolicyFile(path: string, defaults: PolicyDefaults): RoutePolicy {
  return new RoutePolicy(readPolicyRules(path, defaults), defaults.caseInsensitive === true);
}

/** The policy in force: re-read when the file changes; a bad edit is logged and ignored. */
export class PolicySource {
  #policy: RoutePolicy;
  readonly #watched: WatchedFiles<RoutePolicy> | undefined;

  constructor(settings: { path: string | undefined; reloadIntervalSeconds: number; defaults: PolicyDefaults }, logger: Logger) {
    const { path, defaults } = settings;
    this.#policy = path === undefined ? defaultPolicy(defaults) : readPolicyFile(path, defaults);
    this.#watched = path === undefined ? undefined : new WatchedFiles({
      paths: [path],
      intervalSeconds: settings.reloadIntervalSeconds,
      read: () => readPolicyFile(path, defaults),
      changed: (policy) => {
        this.#policy = policy;
        logger.info({ rules: policy.rules.length }, 'route policy reloaded');
      },
      what: 'route policy rules',
    }, logger);
  }

  get current(): RoutePolicy {
    return this.#policy;
  }

  start(): void {
    this.#watched?.start();
  }

  stop(): void {
    this.#watched?.stop();
  }

  check(): void {
    this.#watched?.check();
  }
}
