// Stage 3: RFC 7662 token introspection at the authorization server.
// The answer is parsed into a typed result here; whether it grants access is decided by
// the later stages. Any fault of the authorization server (down, slow, non-200, not JSON,
// a wrong shape, our own credentials refused) is an AuthorizationServerUnavailable: the
// client is never blamed and nothing is forwarded.
import { Pool } from 'undici';
import { AuthorizationServerUnavailable } from '../errors.ts';
import type { Config } from '../config.ts';
import type { AnswerFormat } from '../authorization-server/answer-format.ts';
import type { ClientAuthentication } from '../authorization-server/client-auth.ts';

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

export const malformed = (detail?: string): AuthorizationServerUnavailable => new AuthorizationServerUnavailable('as_malformed_response', detail);

export function isRecord(value: unknown): value is Record<string, unknown> {
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

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw malformed();
  }
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

export interface IntrospectionParts {
  /** Where to ask: configured, or from the AS's metadata (undefined until it is known). */
  endpoint: () => URL | undefined;
  auth: ClientAuthentication;
  format: AnswerFormat;
}

interface PoolFor {
  key: string;
  pool: Pool;
}

/**
 * RFC 7662 client over a kept-alive, TLS-verified connection pool. How the sidecar proves who
 * it is (client-auth.ts) and how the answer is asked for and read (answer-format.ts) are
 * parts of their own; this is the exchange: one POST, one deadline, one retry on a kept-alive
 * connection the AS closed.
 */
export class IntrospectionClient implements Introspector {
  readonly #settings: Pick<Config['introspection'], 'ca' | 'timeoutMs'>;
  readonly #parts: IntrospectionParts;
  #current: PoolFor | undefined;

  constructor(settings: Pick<Config['introspection'], 'ca' | 'timeoutMs'>, parts: IntrospectionParts) {
    this.#settings = settings;
    this.#parts = parts;
  }

  /** The pool for this origin and client certificate; a new one when either changed. */
  #poolFor(endpoint: URL): Pool {
    const tls = this.#parts.auth.tls();
    const key = `${endpoint.origin} ${tls.version}`;
    if (this.#current?.key === key) return this.#current.pool;
    const previous = this.#current?.pool;
    const pool = new Pool(endpoint.origin, {
      connections: 32,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: this.#settings.timeoutMs,
      headersTimeout: this.#settings.timeoutMs,
      bodyTimeout: this.#settings.timeoutMs,
      connect: { ca: this.#settings.ca, rejectUnauthorized: true, cert: tls.cert, key: tls.key },
    });
    this.#current = { key, pool };
    // Calls under way on the old pool finish there; it closes once they have.
    void previous?.close().catch(() => undefined);
    return pool;
  }

  /** One POST; a kept-alive connection the server closed under us is retried once. */
  async #exchange(endpoint: URL, token: string, signal: AbortSignal): Promise<{ status: number; contentType: string; text: string }> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        // Fresh credentials per attempt: an assertion is never sent twice.
        const { headers, form } = await this.#parts.auth.credentials();
        const body = new URLSearchParams({ token, token_type_hint: 'access_token', ...form }).toString();
        const response = await this.#poolFor(endpoint).request({
          method: 'POST',
          path: `${endpoint.pathname}${endpoint.search}`,
          headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded', accept: this.#parts.format.accept },
          body,
          signal,
        });
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
    const endpoint = this.#parts.endpoint();
    if (endpoint === undefined) throw new AuthorizationServerUnavailable('as_unreachable', 'no_metadata');
    // One deadline over the whole exchange, so a trickling body cannot outlast it.
    const { status, contentType, text } = await this.#exchange(endpoint, token, AbortSignal.timeout(this.#settings.timeoutMs));
    if (status === 401 || status === 403) {
      throw new AuthorizationServerUnavailable('as_rejected_sidecar_credentials', String(status));
    }
    return this.#parts.format.parse(status, contentType, text);
  }

  async close(): Promise<void> {
    await this.#current?.pool.close();
  }
}

export function mediaType(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return (value ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}
