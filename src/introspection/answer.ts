// What an introspection answer is once read: the members the sidecar uses, each checked for
// its JSON type (RFC 7662 §2.2), whoever asked for it (the AS client, a signed answer, the
// fleet's Redis). A wrong shape is the authorization server's fault.
import { AuthorizationServerUnavailable } from '../errors.ts';
import { isRecord } from '../json.ts';

export interface Confirmation {
  'x5t#S256'?: string;
  /** RFC 9449 DPoP key thumbprint: such a token is not usable as a plain bearer token. */
  jkt?: string;
}

/** The members of an introspection answer (or of an AS-issued JWT) the sidecar uses. */
export interface TokenClaims {
  exp?: number;
  nbf?: number;
  iat?: number;
  iss?: string;
  aud?: string | string[];
  scope?: string;
  client_id?: string;
  sub?: string;
  token_type?: string;
  cnf?: Confirmation;
}

export type Introspection =
  | { active: false }
  | { active: true; claims: TokenClaims; jwt?: string };

export interface Introspector {
  introspect(token: string): Promise<Introspection>;
  close(): Promise<void>;
}

export const malformed = (detail?: string): AuthorizationServerUnavailable => new AuthorizationServerUnavailable('as_malformed_response', detail);

function optionalOf<T>(value: unknown, check: (v: unknown) => v is T): T | undefined {
  if (value === undefined) return undefined;
  if (!check(value)) throw malformed();
  return value;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isAudience = (v: unknown): v is string | string[] => isString(v) || (Array.isArray(v) && v.every(isString));

// The same issuer, audience, scope, client and thumbprint arrive in thousands of answers; one
// copy each instead of one per cached answer (JSON.parse makes a new string every time).
// Bounded: past its size it starts again, so odd values cannot grow it. Never `sub`.
const INTERNED_MAX = 4096;
const interned = new Map<string, string>();

function intern(value: string): string {
  const known = interned.get(value);
  if (known !== undefined) return known;
  if (interned.size >= INTERNED_MAX) interned.clear();
  interned.set(value, value);
  return value;
}

function parseConfirmation(value: unknown): Confirmation | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) throw malformed();
  const confirmation: Confirmation = {};
  const x5t = optionalOf(value['x5t#S256'], isString);
  const jkt = optionalOf(value.jkt, isString);
  if (x5t !== undefined) confirmation['x5t#S256'] = intern(x5t);
  if (jkt !== undefined) confirmation.jkt = intern(jkt);
  return confirmation;
}

/**
 * Picks the members the sidecar uses, each checked for its JSON type. Privacy-sensitive
 * members (username, email, …) are dropped here and never cached, logged or forwarded.
 */
export function parseClaims(source: Record<string, unknown>): TokenClaims {
  const claims: TokenClaims = {};
  const numbers = ['exp', 'nbf', 'iat'] as const;
  for (const name of numbers) {
    const value = optionalOf(source[name], isNumber);
    if (value !== undefined) claims[name] = value;
  }
  const shared = ['iss', 'scope', 'client_id', 'token_type'] as const;
  for (const name of shared) {
    const value = optionalOf(source[name], isString);
    if (value !== undefined) claims[name] = intern(value);
  }
  const sub = optionalOf(source.sub, isString);
  if (sub !== undefined) claims.sub = sub;
  const aud = optionalOf(source.aud, isAudience);
  if (aud !== undefined) claims.aud = typeof aud === 'string' ? intern(aud) : aud.map(intern);
  const cnf = parseConfirmation(source.cnf);
  if (cnf !== undefined) claims.cnf = cnf;
  return claims;
}

/** RFC 7662 §2.2: only the JSON boolean `true` is active; anything else but `false` is a fault. */
export function parseIntrospectionJson(body: unknown): Introspection {
  if (!isRecord(body)) throw malformed();
  if (body.active === false) return { active: false };
  if (body.active !== true) throw malformed();
  return { active: true, claims: parseClaims(body) };
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw malformed();
  }
}

