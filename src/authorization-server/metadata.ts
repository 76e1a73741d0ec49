// RFC 8414 authorization server metadata (and its OpenID Connect Discovery twin): where the
// introspection endpoint and the AS's keys are, and which client authentication methods it
// takes. Read at start and then every PHANTOM_AS_METADATA_REFRESH_S. While the AS cannot be
// reached the sidecar keeps trying with back-off and is not ready; metadata that contradicts
// the configuration (another issuer, a method the AS does not list) stops the start.
import { Agent, request } from 'undici';
import type { Logger } from 'pino';
import { ConfigError, type ClientAuthMethod, type Config } from '../config/config.ts';
import { isRecord } from '../json.ts';
import { mediaType } from '../media-type.ts';
import { verifiedAgent } from './outbound.ts';

export interface AuthorizationServerMetadata {
  issuer: string;
  introspectionEndpoint: URL;
  jwksUri: URL | undefined;
}

const MAX_METADATA_BYTES = 256 * 1024;
const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 30_000;

/** RFC 8414 §3.1: the well-known path goes between the host and the issuer's own path. */
export function metadataUrls(issuer: string): URL[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [
    new URL(`${url.origin}/.well-known/oauth-authorization-server${path}`),
    // OpenID Connect Discovery 1.0 §4: appended to the issuer.
    new URL(`${url.origin}${path}/.well-known/openid-configuration`),
  ];
}

function httpsUrl(value: unknown, member: string): URL {
  try {
    const url = new URL(String(value));
    if (url.protocol === 'https:' && typeof value === 'string') return url;
  } catch {
    // refused below
  }
  throw new ConfigError('PHANTOM_AS_ISSUER', `the metadata's ${member} is not an https URL`);
}

/** Checks one metadata document against the configuration; a ConfigError names what disagrees. */
export function readMetadata(document: unknown, issuer: string, method: ClientAuthMethod): AuthorizationServerMetadata {
  if (!isRecord(document)) throw new ConfigError('PHANTOM_AS_ISSUER', 'the metadata is not a JSON object');
  // RFC 8414 §3.3: the issuer must be identical, or the document is not to be used.
  if (document.issuer !== issuer) throw new ConfigError('PHANTOM_AS_ISSUER', 'the metadata names another issuer');
  const tlsMethod = method === 'tls_client_auth' || method === 'self_signed_tls_client_auth';
  const aliases = isRecord(document.mtls_endpoint_aliases) ? document.mtls_endpoint_aliases : {};
  // RFC 8705 §5: with mutual TLS client auth, the alias when the AS publishes one.
  const endpoint = tlsMethod && aliases.introspection_endpoint !== undefined ? aliases.introspection_endpoint : document.introspection_endpoint;
  if (endpoint === undefined) throw new ConfigError('PHANTOM_AS_ISSUER', 'the metadata names no introspection_endpoint');
  // RFC 8414 §2 leaves an absent introspection list to "other means": the token endpoint's,
  // which ASes such as oidc-provider apply to every endpoint. With neither, nothing to check.
  const listed = document.introspection_endpoint_auth_methods_supported === undefined ? 'token_endpoint_auth_methods_supported' : 'introspection_endpoint_auth_methods_supported';
  const methods = document[listed];
  if (methods !== undefined && (!Array.isArray(methods) || !methods.includes(method))) {
    throw new ConfigError('PHANTOM_INTROSPECTION_AUTH', `${method} is not in the AS's ${listed}`);
  }
  return {
    issuer,
    introspectionEndpoint: httpsUrl(endpoint, 'introspection_endpoint'),
    jwksUri: document.jwks_uri === undefined ? undefined : httpsUrl(document.jwks_uri, 'jwks_uri'),
  };
}

export class MetadataSource {
  readonly #issuer: string;
  readonly #method: ClientAuthMethod;
  readonly #refreshMs: number;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #dispatcher: Agent;
  #current: AuthorizationServerMetadata | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #onInvalid: (error: ConfigError) => void = () => undefined;

  constructor(settings: Config['introspection'] & { issuer: string }, logger: Logger) {
    this.#issuer = settings.issuer;
    this.#method = settings.auth.method;
    this.#refreshMs = settings.metadataRefreshSeconds * 1000;
    this.#timeoutMs = settings.timeoutMs;
    this.#logger = logger;
    this.#dispatcher = verifiedAgent({ ca: settings.ca, timeoutMs: settings.timeoutMs });
  }

  current(): AuthorizationServerMetadata | undefined {
    return this.#current;
  }

  /** Starts reading; `onInvalid` hears of metadata that contradicts the configuration at start. */
  start(onInvalid: (error: ConfigError) => void): void {
    this.#onInvalid = onInvalid;
    void this.#attempt(FIRST_RETRY_MS);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#dispatcher.close();
  }

  #schedule(ms: number, next: () => Promise<void>): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void next(), ms);
    this.#timer.unref();
  }

  async #attempt(retryMs: number): Promise<void> {
    try {
      const metadata = readMetadata(await this.#fetch(), this.#issuer, this.#method);
      const first = this.#current === undefined;
      this.#current = metadata;
      if (first) this.#logger.info({ introspection_endpoint: metadata.introspectionEndpoint.href }, 'authorization server metadata read');
      this.#schedule(this.#refreshMs, () => this.#attempt(FIRST_RETRY_MS));
    } catch (error) {
      if (error instanceof ConfigError) {
        if (this.#current === undefined) {
          this.#onInvalid(error);
          return;
        }
        // Metadata that was right and now contradicts the configuration: keep what was verified.
        this.#logger.error({ problem: error.message }, 'authorization server metadata refused; the previous metadata stays in use');
        this.#schedule(this.#refreshMs, () => this.#attempt(FIRST_RETRY_MS));
        return;
      }
      const code = (error as { code?: unknown }).code;
      this.#logger.warn({ retry_ms: retryMs, code: typeof code === 'string' ? code : undefined }, 'authorization server metadata unreachable; trying again');
      // Known metadata stays in use while a refresh fails; a start keeps backing off.
      const next = this.#current === undefined ? retryMs : this.#refreshMs;
      this.#schedule(next, () => this.#attempt(Math.min(retryMs * 2, MAX_RETRY_MS)));
    }
  }

  /** The first well-known document the AS serves (RFC 8414's, else OpenID's). */
  async #fetch(): Promise<unknown> {
    let lastStatus = 0;
    for (const url of metadataUrls(this.#issuer)) {
      const response = await request(url, { dispatcher: this.#dispatcher, headersTimeout: this.#timeoutMs, bodyTimeout: this.#timeoutMs, headers: { accept: 'application/json' } });
      if (response.statusCode !== 200 || mediaType(response.headers['content-type']) !== 'application/json') {
        lastStatus = response.statusCode;
        await response.body.dump();
        continue;
      }
      const text = await response.body.text();
      if (text.length > MAX_METADATA_BYTES) throw Object.assign(new Error('metadata too large'), { code: 'METADATA_TOO_LARGE' });
      try {
        return JSON.parse(text) as unknown;
      } catch {
        // A garbled answer may be passing: tried again like an unreachable AS.
        throw Object.assign(new Error('metadata is not JSON'), { code: 'METADATA_NOT_JSON' });
      }
    }
    throw Object.assign(new Error('no metadata'), { code: `HTTP_${lastStatus}` });
  }

  /** A dispatcher that trusts PHANTOM_INTROSPECTION_CA, for the JWKS too. */
  get dispatcher(): Agent {
    return this.#dispatcher;
  }
}
