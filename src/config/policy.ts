// PHANTOM_POLICY_FILE: the route policy's rules, read and checked whole (at start-up, where a
// problem stops the start naming the rule, and on every reload). Matching them is
// request/route-policy.ts's business.
import { readFileSync } from 'node:fs';
import { yaml } from '../lazy.ts';
import { ConfigError } from './env.ts';
import { normalisedPath } from '../path.ts';
import { API_METHODS } from '../vocabulary.ts';

/** PHANTOM_SENDER_CONSTRAINTS, or a rule's own: which proofs of possession a token may be bound to. */
export interface SenderConstraints {
  mtls: boolean;
  dpop: boolean;
}

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
const RULE_KEYS = new Set(['name', 'methods', 'path', 'scopes', 'any_of', 'sender_constraint', 'audience', 'anonymous']);
// A path pattern: segments of path characters, or a whole-segment {param}; a trailing / is a prefix.
const PATH_PATTERN = /^\/(?:(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)\/)*(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z0-9\-._~!$&'()*+,;=:@%]+)?$/;

/** A path's segments without the leading and one trailing slash: `/a/b/` and `/a/b` are one path. */
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
  // A dot segment could never match a path the request-target rules let through: refused as a likely mistake.
  const dotted = typeof raw.path === 'string' && raw.path.split('/').some((segment) => segment === '.' || segment === '..');
  if (typeof raw.path !== 'string' || !PATH_PATTERN.test(raw.path) || dotted) throw new Error('needs a path: /exact, /prefix/ or with {param} segments');
  const methods = stringList(raw.methods, 'methods', /^[A-Z]+$/);
  for (const method of methods) if (!(API_METHODS as readonly string[]).includes(method)) throw new Error(`has an unknown method "${method}"`);
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

/** The rules of a policy document, checked; an Error names the rule and what is wrong. */
export function parseRules(text: string, defaults: PolicyDefaults): RouteRule[] {
  let document: unknown;
  try {
    document = yaml().parse(text);
  } catch {
    throw new Error('is not valid YAML');
  }
  const rules = (document as { rules?: unknown } | null)?.rules;
  if (!Array.isArray(rules) || rules.length === 0) throw new Error('needs a non-empty "rules" list');
  const names = new Set<string>();
  return rules.map((value, index) => {
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
    });
}

/** The rules of PHANTOM_POLICY_FILE; a ConfigError names the file, the rule and the problem. */
export function readPolicyRules(path: string, defaults: PolicyDefaults): RouteRule[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError('PHANTOM_POLICY_FILE', `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  try {
    return parseRules(text, defaults);
  } catch (error) {
    throw new ConfigError('PHANTOM_POLICY_FILE', `${path}: ${(error as Error).message}`);
  }
}

