// Stage 3: RFC 7662 token introspection at the authorization server.
// The answer is parsed into a typed result here; whether it grants access is decided by
// the later stages. Any fault of the authorization server (down, slow, non-200, not JSON,
// a wrong shape, our own credentials refused) is an AuthorizationServerUnavailable: the
// client is never blamed and nothing is forwarded.
import { Pool } from 'undici';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { AuthorizationServerUnavailable } from '../errors.ts';
import type { Config } from '../config.ts';

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

// An answer of more than this is not an introspection response.
const MAX_RESPONSE_BYTES = 64 * 1024;

const malformed = (): AuthorizationServerUnavailable => new AuthorizationServerUnavailable('as_malformed_response');

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function optionalOf<T>(value: unknown, check: (v: unknown) => v is T): T | undefined {
  if (value === undefined) return undefined;
  if (!check(value)) throw malformed();
  return value;
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const isAudience = (v: unknown): v is string | string[] => isString(v) || (Array.isArray(v) && v.every(isString));

function parseConfirmation(value: unknown): Confirmation | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) throw malformed();
  const confirmation: Confirmation = {};
  const x5t = optionalOf(value['x5t#S256'], isString);
  const jkt = optionalOf(value.jkt, isString);
  if (x5t !== undefined) confirmation['x5t#S256'] = x5t;
  if (jkt !== undefined) confirmation.jkt = jkt;
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
  const strings = ['iss', 'scope', 'client_id', 'sub', 'token_type'] as const;
  for (const name of strings) {
    const value = optionalOf(source[name], isString);
    if (value !== undefined) claims[name] = value;
  }
  const aud = optionalOf(source.aud, isAudience);
  if (aud !== undefined) claims.aud = aud;
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

/** An AS-issued JWT (phantom-token mode): its claims stand for the introspection answer. */
export function parseUpstreamJwt(jwt: string): Introspection {
  try {
    const header = decodeProtectedHeader(jwt);
    if (typeof header.alg !== 'string' || header.alg === 'none') throw malformed();
    return { active: true, claims: parseClaims(decodeJwt(jwt)), jwt };
  } catch {
    throw malformed();
  }
}

/** Curity answers with the JWT as the body, Keycloak in `jwt`, others in `phantom_token`. */
export function parseAsJwtAnswer(status: number, contentType: string, text: string): Introspection {
  if (status === 204) return { active: false };
  if (contentType === 'application/jwt') return parseUpstreamJwt(text.trim());
  if (contentType !== 'application/json') throw malformed();
  const body = parseJson(text);
  if (!isRecord(body)) throw malformed();
  if (body.active === false) return { active: false };
  const jwt = typeof body.jwt === 'string' ? body.jwt : body.phantom_token;
  if (typeof jwt !== 'string') throw malformed();
  return parseUpstreamJwt(jwt);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw malformed();
  }
}

function mediaType(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return (value ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined and encoded. */
export function basicCredentials(clientId: string, clientSecret: string): string {
  const encode = (value: string): string => new URLSearchParams({ v: value }).toString().slice(2);
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`;
}

function unreachable(error: unknown): AuthorizationServerUnavailable {
  const code = (error as { code?: unknown }).code;
  const name = (error as { name?: unknown }).name;
  if (name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new AuthorizationServerUnavailable('as_timeout');
  }
  return new AuthorizationServerUnavailable('as_unreachable', typeof code === 'string' ? code : undefined);
}

function isStaleConnection(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET';
}

async function readLimited(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) throw malformed();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** RFC 7662 client over a kept-alive, TLS-verified connection pool. */
export class IntrospectionClient implements Introspector {
  readonly #pool: Pool;
  readonly #path: string;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #asJwt: boolean;

  constructor(settings: Config['introspection'], mode: Config['upstreamToken']['mode']) {
    this.#timeoutMs = settings.timeoutMs;
    this.#asJwt = mode === 'as-jwt';
    this.#path = `${settings.url.pathname}${settings.url.search}`;
    this.#headers = {
      authorization: basicCredentials(settings.clientId, settings.clientSecret),
      'content-type': 'application/x-www-form-urlencoded',
      accept: this.#asJwt ? 'application/jwt' : 'application/json',
    };
    this.#pool = new Pool(settings.url.origin, {
      connections: 32,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: settings.timeoutMs,
      headersTimeout: settings.timeoutMs,
      bodyTimeout: settings.timeoutMs,
      connect: { ca: settings.ca, rejectUnauthorized: true },
    });
  }

  /** One POST; a kept-alive connection the server closed under us is retried once. */
  async #exchange(body: string, signal: AbortSignal): Promise<{ status: number; contentType: string; text: string }> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const response = await this.#pool.request({ method: 'POST', path: this.#path, headers: this.#headers, body, signal });
        return {
          status: response.statusCode,
          contentType: mediaType(response.headers['content-type']),
          text: await readLimited(response.body),
        };
      } catch (error) {
        if (error instanceof AuthorizationServerUnavailable) throw error;
        // Introspection reads and changes nothing, so asking again is safe.
        if (attempt === 1 && isStaleConnection(error) && !signal.aborted) continue;
        throw unreachable(error);
      }
    }
  }

  async introspect(token: string): Promise<Introspection> {
    const body = `token=${encodeURIComponent(token)}&token_type_hint=access_token`;
    // One deadline over the whole exchange, so a trickling body cannot outlast it.
    const { status, contentType, text } = await this.#exchange(body, AbortSignal.timeout(this.#timeoutMs));
    if (status === 401 || status === 403) {
      throw new AuthorizationServerUnavailable('as_rejected_sidecar_credentials');
    }
    if (this.#asJwt && (status === 200 || status === 204)) return parseAsJwtAnswer(status, contentType, text);
    if (status !== 200) throw new AuthorizationServerUnavailable('as_error_status', String(status));
    if (contentType !== 'application/json') throw malformed();
    return parseIntrospectionJson(parseJson(text));
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}
