// Stage 2b: which rule of the route policy a request falls under, by its method and the path
// the API receives: the scopes it needs, the sender constraints it accepts, its audience, or
// none at all for a public path. First match wins; no match is 403 and nothing is forwarded.
// The policy is a YAML file (PHANTOM_POLICY_FILE), checked whole at start-up and re-read on
// change; without one, one rule covers every path with PHANTOM_REQUIRED_SCOPES.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { parse } from 'yaml';
import type { Logger } from 'pino';
import { ConfigError, type SenderConstraints } from '../config.ts';
import { RequestRejected } from '../errors.ts';
import { normalisedPath } from './request-target.ts';

export interface RouteRule {
  name: string;
  /** Undefined: every method the listener allows. */
  methods: ReadonlySet<string> | undefined;
  path: string;
  /** All required. */
  scopes: readonly string[];
  /** At least one required, when not empty. */
  anyOf: readonly string[];
  senderConstraints: SenderConstraints;
  /** Overrides PHANTOM_EXPECTED_AUDIENCE for this rule. */
  audience: string | undefined;
  /** Forwarded without a token and without a JWT. */
  anonymous: boolean;
}

export interface PolicyDefaults {
  senderConstraints: SenderConstraints;
  requiredScopes: readonly string[];
  /** PHANTOM_POLICY_CASE_INSENSITIVE: paths compared without case, for APIs that route so. */
  caseInsensitive?: boolean;
}

const RULE_NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const RULE_KEYS = new Set(['name', 'methods', 'path', 'scopes', 'any_of', 'sender_constraint', 'audience', 'anonymous']);
// A path pattern: segments of path characters, or a whole-segment {param}; a trailing / is a prefix.
const PATH_PATTERN = /^\/(?:(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)\/)*(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)?$/;

/** A path's segments without the leading and one trailing slash: `/a/b/` and `/a/b` are one path. */
function segmentsOf(path: string): string[] {
  const segments = path.split('/').slice(1);
  if (segments.length > 0 && segments.at(-1) === '') segments.pop();
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
  const want = segmentsOf(foldCase ? pattern.toLowerCase() : pattern);
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
      if (only === undefined) throw new RequestRejected(403, 'no_matching_rule');
      return only;
    }
    const folded = this.#first(method, path, true);
    const rule = this.#caseInsensitive ? folded : this.#first(method, path, false);
    if (rule === undefined) throw new RequestRejected(403, 'no_matching_rule');
    if (rule !== folded) throw new RequestRejected(403, 'no_matching_rule', { detail: 'another_case_meets_another_rule' });
    return rule;
  }

  /** Every scope any rule asks for, for the RFC 9728 metadata. */
  scopes(): string[] {
    return [...new Set(this.rules.flatMap((rule) => [...rule.scopes, ...rule.anyOf]))];
  }
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

function stringList(value: unknown, what: string, pattern: RegExp): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string' || !pattern.test(item))) throw new Error(`${what} must be a list of ${what === 'methods' ? 'HTTP methods' : 'scope names'}`);
  return value as string[];
}

function readRule(value: unknown, defaults: PolicyDefaults): RouteRule {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('is not a mapping');
  const raw = value as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!RULE_KEYS.has(key)) throw new Error(`has an unknown key "${key}"`);
  }
  // A dot segment could never match a path stage 2 lets through: refused as a likely mistake.
  const dotted = typeof raw.path === 'string' && raw.path.split('/').some((segment) => segment === '.' || segment === '..');
  if (typeof raw.path !== 'string' || !PATH_PATTERN.test(raw.path) || dotted) throw new Error('needs a path: /exact, /prefix/ or with {param} segments');
  const methods = stringList(raw.methods, 'methods', /^[A-Z]+$/);
  for (const method of methods) if (!METHODS.includes(method)) throw new Error(`has an unknown method "${method}"`);
  const anonymous = raw.anonymous === undefined ? false : raw.anonymous;
  if (typeof anonymous !== 'boolean') throw new Error('anonymous must be true or false');
  const scopes = stringList(raw.scopes, 'scopes', SCOPE);
  const anyOf = stringList(raw.any_of, 'any_of', SCOPE);
  const constraint = raw.sender_constraint;
  if (constraint !== undefined && constraint !== 'mtls' && constraint !== 'dpop' && constraint !== 'either') throw new Error('sender_constraint must be mtls, dpop or either');
  if (raw.audience !== undefined && typeof raw.audience !== 'string') throw new Error('audience must be a string');
  if (anonymous && (scopes.length > 0 || anyOf.length > 0 || constraint !== undefined || raw.audience !== undefined)) {
    throw new Error('is anonymous: it cannot also ask for scopes, a sender constraint or an audience');
  }
  const senderConstraints = constraint === undefined || constraint === 'either' ? defaults.senderConstraints : { mtls: constraint === 'mtls', dpop: constraint === 'dpop' };
  if (constraint !== undefined && constraint !== 'either' && !defaults.senderConstraints[constraint]) {
    throw new Error(`asks for ${constraint}, which PHANTOM_SENDER_CONSTRAINTS does not accept`);
  }
  return {
    name: String(raw.name),
    methods: methods.length === 0 ? undefined : new Set(methods),
    // Judged in the form requests are: unreserved escapes decoded.
    path: normalisedPath(raw.path),
    scopes,
    anyOf,
    senderConstraints,
    audience: raw.audience as string | undefined,
    anonymous,
  };
}

/** Parses and checks a policy document; an Error names the rule and what is wrong. */
export function parsePolicy(text: string, defaults: PolicyDefaults): RoutePolicy {
  let document: unknown;
  try {
    document = parse(text);
  } catch {
    throw new Error('is not valid YAML');
  }
  const rules = (document as { rules?: unknown } | null)?.rules;
  if (!Array.isArray(rules) || rules.length === 0) throw new Error('needs a non-empty "rules" list');
  const names = new Set<string>();
  return new RoutePolicy(
    rules.map((value, index) => {
      const name = (value as { name?: unknown } | null)?.name;
      const label = typeof name === 'string' ? `rule "${name}"` : `rule #${index + 1}`;
      if (typeof name !== 'string' || !RULE_NAME.test(name)) throw new Error(`${label}: needs a name of lower-case letters, digits, "-", "_" or "."`);
      if (names.has(name)) throw new Error(`${label}: the name is used twice`);
      names.add(name);
      try {
        return readRule(value, defaults);
      } catch (error) {
        throw new Error(`${label}: ${(error as Error).message}`);
      }
    }),
    defaults.caseInsensitive === true,
  );
}

export function readPolicyFile(path: string, defaults: PolicyDefaults): RoutePolicy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError('PHANTOM_POLICY_FILE', `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  try {
    return parsePolicy(text, defaults);
  } catch (error) {
    throw new ConfigError('PHANTOM_POLICY_FILE', `${path}: ${(error as Error).message}`);
  }
}

/** The policy in force: re-read when the file changes; a bad edit is logged and ignored. */
export class PolicySource {
  #policy: RoutePolicy;
  #digest: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastProblem: string | undefined;
  private readonly settings: { path: string | undefined; reloadIntervalSeconds: number; defaults: PolicyDefaults };
  private readonly logger: Logger;

  constructor(settings: { path: string | undefined; reloadIntervalSeconds: number; defaults: PolicyDefaults }, logger: Logger) {
    this.settings = settings;
    this.logger = logger;
    this.#policy = settings.path === undefined ? defaultPolicy(settings.defaults) : readPolicyFile(settings.path, settings.defaults);
    this.#digest = this.#fileDigest();
  }

  get current(): RoutePolicy {
    return this.#policy;
  }

  #fileDigest(): string | undefined {
    if (this.settings.path === undefined) return undefined;
    try {
      return createHash('sha256').update(readFileSync(this.settings.path)).digest('base64url');
    } catch {
      return undefined;
    }
  }

  start(): void {
    if (this.settings.path === undefined || this.settings.reloadIntervalSeconds === 0) return;
    this.#timer = setInterval(() => this.check(), this.settings.reloadIntervalSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  check(): void {
    const path = this.settings.path;
    if (path === undefined) return;
    const digest = this.#fileDigest();
    if (digest === undefined || digest === this.#digest) return;
    try {
      this.#policy = readPolicyFile(path, this.settings.defaults);
      this.#digest = digest;
      this.#lastProblem = undefined;
      this.logger.info({ rules: this.#policy.rules.length }, 'route policy reloaded');
    } catch (error) {
      const problem = (error as Error).message;
      if (problem !== this.#lastProblem) this.logger.warn({ problem }, 'route policy does not check out; the last good one stays in force');
      this.#lastProblem = problem;
    }
  }
}
