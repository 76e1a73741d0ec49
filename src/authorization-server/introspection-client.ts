// RFC 7662 token introspection at the authorization server: the exchange. How the sidecar
// proves who it is (client-auth.ts) and how the answer is asked for and read
// (answer-format.ts) are parts of their own. Any fault of the authorization server (down,
// slow, non-200, not JSON, a wrong shape, our own credentials refused) is an
// AuthorizationServerUnavailable: the client is never blamed and nothing is forwarded.
import type { Pool } from 'undici';
import { verifiedPool } from './outbound.ts';
import { AuthorizationServerUnavailable } from '../errors.ts';
import type { Config } from '../config/config.ts';
import { mediaType } from '../media-type.ts';
import { malformed, type Introspection, type Introspector } from '../introspection/answer.ts';
import type { AnswerFormat } from './answer-format.ts';
import type { ClientAuthentication } from './client-auth.ts';
import { inSpan, type Spans } from '../tracing/seam.ts';

type IntrospectionSettings = Pick<Config['introspection'], 'ca' | 'timeoutMs' | 'connections'>;

// An answer of more than this is not an introspection response.
const MAX_RESPONSE_BYTES = 64 * 1024;

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
  readonly #settings: IntrospectionSettings;
  readonly #parts: IntrospectionParts;
  readonly #spans: Spans | undefined;
  #current: PoolFor | undefined;

  constructor(settings: IntrospectionSettings, parts: IntrospectionParts, spans?: Spans) {
    this.#settings = settings;
    this.#parts = parts;
    this.#spans = spans;
  }

  /** The pool for this origin and client certificate; a new one when either changed. */
  #poolFor(endpoint: URL): Pool {
    const tls = this.#parts.auth.tls();
    const key = `${endpoint.origin} ${tls.version}`;
    if (this.#current?.key === key) return this.#current.pool;
    const previous = this.#current?.pool;
    const clientCertificate = tls.cert === undefined || tls.key === undefined ? undefined : { cert: tls.cert, key: tls.key };
    const pool = verifiedPool(endpoint.origin, { ca: this.#settings.ca, timeoutMs: this.#settings.timeoutMs, ...(clientCertificate === undefined ? {} : { clientCertificate }) }, this.#settings.connections);
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

  introspect(token: string): Promise<Introspection> {
    const endpoint = this.#parts.endpoint();
    if (endpoint === undefined) return Promise.reject(new AuthorizationServerUnavailable('as_unreachable', 'no_metadata'));
    if (this.#spans === undefined) return this.#introspectAt(endpoint, token);
    // The AS's latency and outcome; the endpoint's origin and path, never the form sent.
    const attributes = { 'server.address': endpoint.hostname, 'server.port': Number(endpoint.port || 443), 'url.full': `${endpoint.origin}${endpoint.pathname}` };
    return inSpan(this.#spans, 'introspection', 'client', attributes, async (notes) => {
      try {
        const answer = await this.#introspectAt(endpoint, token);
        notes.set('phantom.introspection.active', answer.active);
        return answer;
      } catch (error) {
        notes.failed(error instanceof AuthorizationServerUnavailable ? error.reason : 'as_unreachable');
        throw error;
      }
    });
  }

  async #introspectAt(endpoint: URL, token: string): Promise<Introspection> {
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

