// PHANTOM_* configuration: read once at start-up, validated whole, frozen.
// A bad value becomes a ConfigError naming the variable; main.ts prints that one line and
// exits 2. No message here ever contains a secret's value.
import type { KeyObject } from 'node:crypto';
import { ConfigError, EnvReader, readText, refuseUnknownVariables, unknownVariables, type Env } from './env.ts';

import { parsePrivateKey, readCertificateFile, readTlsMaterial, type TlsMaterial, type TlsPaths } from './tls-material.ts';
import { readPolicyRules, type SenderConstraints } from './policy.ts';
import { API_METHODS, DEFAULT_DPOP_ALGORITHMS, DPOP_ALGORITHMS, FAPI_ALGORITHMS, type JwtAlg } from '../vocabulary.ts';

export type { JwtAlg };

export type { SenderConstraints };

export { ConfigError };
export type { TlsMaterial, TlsPaths };

export type TlsMinVersion = 'TLSv1.2' | 'TLSv1.3';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface MintConfig {
  mode: 'mint';
  issuer: string;
  audience: string;
  ttlSeconds: number;
  alg: JwtAlg;
  /** Absent: a fresh key is generated per process. */
  signingKey: KeyObject | undefined;
}

export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'] as const;
export type ClientAuthMethod = (typeof CLIENT_AUTH_METHODS)[number];

/** How the sidecar authenticates to the AS (FAPI 2.0 §5.3.2.1 allows only the last three). */
export type IntrospectionAuth =
  | { method: 'client_secret_basic' | 'client_secret_post'; secret: string }
  | { method: 'private_key_jwt'; key: KeyObject; alg: JwtAlg; keyId: string | undefined }
  | { method: 'tls_client_auth' | 'self_signed_tls_client_auth'; certPath: string; keyPath: string };

export interface FleetConfig {
  redis: {
    url: URL;
    ca: string | undefined;
    password: string | undefined;
    timeoutMs: number;
    /** PHANTOM_REDIS_KEY: what every value the fleet writes is sealed under (fleet/sealing.ts). */
    key: Buffer;
    /** PHANTOM_REDIS_PREVIOUS_KEY: still opened, never written, during a rotation. */
    previousKey: Buffer | undefined;
  } | undefined;
  /** While Redis is unreachable, revocation events may be missed: in-process answers live no longer. */
  degradedTtlSeconds: number;
  ssf: { issuer: string | undefined; jwksUrl: URL | undefined; audience: string; ca: string | undefined; authToken: string | undefined } | undefined;
}

export type ClientCertSource =
  | { source: 'tls' }
  | {
      source: 'header';
      /** RFC 9440 Client-Cert, Envoy's XFCC, or nginx's $ssl_client_escaped_cert (URL-encoded PEM). */
      format: 'rfc9440' | 'xfcc' | 'nginx';
      /** The header of the `nginx` format (PHANTOM_CLIENT_CERT_HEADER). */
      header: string;
      /** x5t#S256 of the ingress proxies' own client certificates. */
      trustedProxyThumbprints: ReadonlySet<string>;
      /** A CA bundle of its own for the ingress proxies (PEM), also trusted at the handshake. */
      trustedProxyCa: string | undefined;
    };



export interface DpopConfig {
  algs: readonly string[];
  /** How old (or how far ahead) a proof's iat may be, before a small leeway. */
  maxAgeSeconds: number;
  /** The HMAC key of stateless nonces (RFC 9449 §8), shared by every replica; undefined: no nonces. */
  nonceSecret: Buffer | undefined;
}

export interface AsJwtConfig {
  mode: 'as-jwt';
}

export interface TracingConfig {
  /** The OTLP/HTTP traces URL (…/v1/traces). */
  endpoint: string;
  protocol: 'http/protobuf' | 'http/json';
  headers: Record<string, string>;
  serviceName: string;
  sampler: { name: 'always_on' | 'always_off' | 'traceidratio' | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio'; ratio: number };
  timeoutMs: number;
  scheduledDelayMs: number;
}

export interface Config {
  listen: { host: string; port: number };
  tls: TlsMaterial & {
    minVersion: TlsMinVersion;
    /** Where the material was read, to read it again when it is renewed. */
    paths: TlsPaths;
    /** Seconds between checks of those files; 0: never reloaded. */
    reloadIntervalSeconds: number;
    handshakeTimeoutMs: number;
    /** No connection is kept past this age: the next response on it closes it. */
    maxConnectionAgeSeconds: number;
  };
  /** What one partner may take of the listener. */
  http: {
    headersTimeoutMs: number;
    requestTimeoutMs: number;
    keepAliveTimeoutMs: number;
    maxBodyBytes: number;
    allowedMethods: readonly string[];
    /** Host header values the sidecar answers for; undefined: any (and no X-Forwarded-Host). */
    publicHosts: readonly string[] | undefined;
    forwardCookies: boolean;
    drainTimeoutSeconds: number;
  };
  limits: {
    maxConcurrentPerClient: number;
    maxFailedTokensPerMinute: number;
    maxConcurrentIntrospections: number;
    /** Introspections of tokens the cache does not know, in flight for one partner at once. */
    maxConcurrentIntrospectionsPerClient: number;
    /** TLS connections open at once, all partners together, and per partner certificate. */
    maxConnections: number;
    maxConnectionsPerClient: number;
  };
  /** PHANTOM_MODE: a proxy in front of the API, or a decision service a gateway asks. */
  mode: 'proxy' | 'decision';
  /** The API beside the sidecar; undefined in decision mode (the gateway forwards). */
  upstream: { url: URL; timeoutMs: number; connections: number; queueTimeoutMs: number } | undefined;
  /**
   * Decision mode: the response header that carries the JWT for the gateway to set upstream,
   * and the port of Envoy's gRPC ext_authz (PHANTOM_EXT_AUTHZ_GRPC_PORT; undefined: off).
   */
  decision: { jwtHeader: string; grpcPort: number | undefined; pathPrefix: string } | undefined;
  introspection: {
    /** PHANTOM_INTROSPECTION_URL; when absent, the AS's metadata says where. */
    url: URL | undefined;
    /** PHANTOM_AS_ISSUER: read the AS's metadata from it. */
    issuer: string | undefined;
    /** PHANTOM_AS_JWKS_URL, else the metadata's jwks_uri. */
    jwksUrl: URL | undefined;
    metadataRefreshSeconds: number;
    jwksCooldownSeconds: number;
    clientId: string;
    auth: IntrospectionAuth;
    /** The `aud` of a private_key_jwt assertion and the `iss` of a signed answer. */
    asIdentifier: string | undefined;
    response: 'json' | 'jwt';
    ca: string | undefined;
    timeoutMs: number;
    /** PHANTOM_INTROSPECTION_CONNECTIONS: kept-alive TLS connections to the introspection endpoint. */
    connections: number;
  };
  cache: { maxEntries: number; maxTtlSeconds: number; negativeTtlSeconds: number; negativeMaxEntries: number; staleIfErrorSeconds: number };
  requireBinding: boolean;
  /** PHANTOM_SENDER_CONSTRAINTS: which proofs of possession a token may be bound to. */
  senderConstraints: SenderConstraints;
  dpop: DpopConfig;
  /** Where the partner's certificate comes from: the TLS socket, or a trusted ingress's header. */
  clientCert: ClientCertSource;
  /** PHANTOM_FORWARD_CLIENT_CERT: send the verified certificate to the API (RFC 9440 Client-Cert). */
  forwardClientCert: boolean;
  /** The fleet: a Redis shared by every replica, and Shared Signals revocation events. */
  fleet: FleetConfig;
  /** PHANTOM_RESOURCE: this API's resource identifier (RFC 9728), an https URL. */
  resource: string | undefined;
  requireTokenType: boolean;
  requiredScopes: readonly string[];
  /** PHANTOM_POLICY_FILE: per-route rules (checked whole at start-up); undefined: one rule. */
  policyFile: string | undefined;
  /** PHANTOM_POLICY_CASE_INSENSITIVE: the API routes paths without case. */
  policyCaseInsensitive: boolean;
  expectedIssuer: string | undefined;
  /** Undefined only when PHANTOM_ALLOW_ANY_AUDIENCE=true says so. */
  expectedAudience: string | undefined;
  upstreamToken: MintConfig | AsJwtConfig;
  admin: { host: string; port: number };
  logLevel: LogLevel;
  /** `epoch`: pino's milliseconds; `iso`: ISO 8601 in UTC, as a SIEM wants it. */
  logTime: 'epoch' | 'iso';
  /** OpenTelemetry tracing, when an OTLP endpoint is configured. */
  tracing: TracingConfig | undefined;
  /** Settings that turn a check off or loosen it, as set: logged as a warning at start-up. */
  weakened: readonly string[];
}

function readTls(env: EnvReader): Config['tls'] {
  const paths: TlsPaths = {
    cert: env.required('PHANTOM_TLS_CERT'),
    key: env.required('PHANTOM_TLS_KEY'),
    clientCa: env.required('PHANTOM_TLS_CLIENT_CA'),
    crl: env.optional('PHANTOM_TLS_CLIENT_CRL')?.split(/\s+/) ?? [],
  };
  const proxyCa = env.optional('PHANTOM_TRUSTED_PROXY_CA');
  if (proxyCa !== undefined) paths.proxyCa = proxyCa;
  return {
    ...readTlsMaterial(paths),
    minVersion: env.oneOf<TlsMinVersion>('PHANTOM_TLS_MIN_VERSION', 'TLSv1.2', ['TLSv1.2', 'TLSv1.3']),
    paths,
    reloadIntervalSeconds: env.integer('PHANTOM_TLS_RELOAD_INTERVAL_S', 60, 0, 86_400),
    handshakeTimeoutMs: env.integer('PHANTOM_TLS_HANDSHAKE_TIMEOUT_MS', 10_000, 100, 120_000),
    maxConnectionAgeSeconds: env.integer('PHANTOM_TLS_MAX_CONNECTION_AGE_S', 3600, 1, 86_400),
  };
}


function readAllowedMethods(env: EnvReader): readonly string[] {
  const raw = env.optional('PHANTOM_ALLOWED_METHODS');
  if (raw === undefined) return API_METHODS;
  const methods = raw.split(/\s+/);
  for (const method of methods) {
    if (!(API_METHODS as readonly string[]).includes(method)) {
      throw new ConfigError('PHANTOM_ALLOWED_METHODS', `"${method}" is not one of ${API_METHODS.join(' ')}`);
    }
  }
  return [...new Set(methods)];
}

// A Host header value: a name or an IPv4/bracketed IPv6 address, and a port where not 443.
const HOST_VALUE = /^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;

function readPublicHosts(env: EnvReader): readonly string[] | undefined {
  const raw = env.optional('PHANTOM_PUBLIC_HOSTS');
  if (raw === undefined) return undefined;
  const hosts = raw.toLowerCase().split(/\s+/);
  for (const host of hosts) {
    if (!HOST_VALUE.test(host)) throw new ConfigError('PHANTOM_PUBLIC_HOSTS', `"${host}" is not a host as a Host header carries it`);
    if (host.endsWith(':443')) throw new ConfigError('PHANTOM_PUBLIC_HOSTS', `write "${host.slice(0, -4)}" without :443, as clients send it`);
  }
  return hosts;
}

function readHttp(env: EnvReader): Config['http'] {
  const headersTimeoutMs = env.integer('PHANTOM_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000);
  const requestTimeoutMs = env.integer('PHANTOM_REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000);
  // Node refuses a request timeout shorter than the head's.
  if (requestTimeoutMs < headersTimeoutMs) {
    throw new ConfigError('PHANTOM_REQUEST_TIMEOUT_MS', `must not be below PHANTOM_HEADERS_TIMEOUT_MS (${headersTimeoutMs})`);
  }
  return {
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: env.integer('PHANTOM_KEEPALIVE_TIMEOUT_MS', 50_000, 100, 600_000),
    maxBodyBytes: env.integer('PHANTOM_MAX_BODY_BYTES', 10_485_760, 0, 1_073_741_824),
    allowedMethods: readAllowedMethods(env),
    publicHosts: readPublicHosts(env),
    forwardCookies: env.boolean('PHANTOM_FORWARD_COOKIES', false),
    drainTimeoutSeconds: env.integer('PHANTOM_DRAIN_TIMEOUT_S', 20, 1, 3600),
  };
}

function readLimits(env: EnvReader): Config['limits'] {
  return {
    maxConcurrentPerClient: env.integer('PHANTOM_MAX_CONCURRENT_PER_CLIENT', 64, 1, 100_000),
    maxFailedTokensPerMinute: env.integer('PHANTOM_MAX_FAILED_TOKENS_PER_MIN', 60, 1, 1_000_000),
    maxConcurrentIntrospections: env.integer('PHANTOM_MAX_CONCURRENT_INTROSPECTIONS', 64, 1, 10_000),
    maxConcurrentIntrospectionsPerClient: env.integer('PHANTOM_MAX_CONCURRENT_INTROSPECTIONS_PER_CLIENT', 16, 1, 10_000),
    // About 80 KB of memory per idle TLS connection: 1,000 fit beside the cache in 256 MiB.
    maxConnections: env.integer('PHANTOM_MAX_CONNECTIONS', 1000, 1, 1_000_000),
    maxConnectionsPerClient: env.integer('PHANTOM_MAX_CONNECTIONS_PER_CLIENT', 256, 1, 1_000_000),
  };
}

function readUpstream(env: EnvReader): Config['upstream'] {
  return {
    url: env.url('PHANTOM_UPSTREAM_URL', ['http:', 'https:']),
    timeoutMs: env.integer('PHANTOM_UPSTREAM_TIMEOUT_MS', 30_000, 1, 3_600_000),
    connections: env.integer('PHANTOM_UPSTREAM_CONNECTIONS', 128, 1, 10_000),
    queueTimeoutMs: env.integer('PHANTOM_UPSTREAM_QUEUE_TIMEOUT_MS', 1000, 0, 60_000),
  };
}

function readSenderConstraints(env: EnvReader): SenderConstraints {
  const raw = env.optional('PHANTOM_SENDER_CONSTRAINTS') ?? 'mtls';
  const methods = raw.split(/\s+/);
  for (const method of methods) {
    if (method !== 'mtls' && method !== 'dpop') throw new ConfigError('PHANTOM_SENDER_CONSTRAINTS', `must be mtls, dpop or "mtls dpop", got "${method}"`);
  }
  return { mtls: methods.includes('mtls'), dpop: methods.includes('dpop') };
}

const MIN_NONCE_SECRET_BYTES = 32;

function readDpop(env: EnvReader, constraints: SenderConstraints): DpopConfig {
  const algs = env.optional('PHANTOM_DPOP_ALGS')?.split(/\s+/) ?? DEFAULT_DPOP_ALGORITHMS;
  for (const alg of algs) {
    if (!(DPOP_ALGORITHMS as readonly string[]).includes(alg)) throw new ConfigError('PHANTOM_DPOP_ALGS', `"${alg}" is not one of ${DPOP_ALGORITHMS.join(' ')}`);
  }
  const nonce = env.boolean('PHANTOM_DPOP_NONCE', false);
  const secret = env.secret('PHANTOM_DPOP_NONCE_SECRET', { required: nonce && constraints.dpop });
  if (secret !== undefined && Buffer.byteLength(secret) < MIN_NONCE_SECRET_BYTES) {
    throw new ConfigError('PHANTOM_DPOP_NONCE_SECRET', `must be at least ${MIN_NONCE_SECRET_BYTES} bytes (every replica needs the same one)`);
  }
  return {
    algs,
    maxAgeSeconds: env.integer('PHANTOM_DPOP_MAX_AGE_S', 60, 1, 3600),
    nonceSecret: nonce && secret !== undefined ? Buffer.from(secret) : undefined,
  };
}

const THUMBPRINT = /^[A-Za-z0-9_-]{43}$/;

function readClientCertSource(env: EnvReader): ClientCertSource {
  const source = env.oneOf('PHANTOM_CLIENT_CERT_SOURCE', 'tls', ['tls', 'header'] as const);
  const headerOnly = ['PHANTOM_TRUSTED_PROXY_CERT_X5T', 'PHANTOM_TRUSTED_PROXY_CA', 'PHANTOM_CLIENT_CERT_HEADER_FORMAT', 'PHANTOM_CLIENT_CERT_HEADER'];
  if (source === 'tls') {
    for (const variable of headerOnly) {
      if (env.optional(variable) !== undefined) throw new ConfigError(variable, 'belongs to PHANTOM_CLIENT_CERT_SOURCE=header');
    }
    return { source };
  }
  const thumbprints = env.optional('PHANTOM_TRUSTED_PROXY_CERT_X5T')?.split(/\s+/) ?? [];
  for (const thumbprint of thumbprints) {
    if (!THUMBPRINT.test(thumbprint)) throw new ConfigError('PHANTOM_TRUSTED_PROXY_CERT_X5T', `"${thumbprint}" is not a base64url SHA-256 thumbprint`);
  }
  const caPath = env.optional('PHANTOM_TRUSTED_PROXY_CA');
  if (thumbprints.length === 0 && caPath === undefined) {
    throw new ConfigError('PHANTOM_TRUSTED_PROXY_CERT_X5T', 'or PHANTOM_TRUSTED_PROXY_CA is required with PHANTOM_CLIENT_CERT_SOURCE=header: which connections may speak for a partner');
  }
  return {
    source,
    format: env.oneOf('PHANTOM_CLIENT_CERT_HEADER_FORMAT', 'rfc9440', ['rfc9440', 'xfcc', 'nginx'] as const),
    header: readHeaderName(env, 'PHANTOM_CLIENT_CERT_HEADER', 'x-ssl-client-cert'),
    trustedProxyThumbprints: new Set(thumbprints),
    trustedProxyCa: caPath === undefined ? undefined : readCertificateFile('PHANTOM_TRUSTED_PROXY_CA', caPath).pem,
  };
}

const HEADER_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** Envoy's HTTP ext_authz `path_prefix`: taken off the check request's path to give the original one. */
function readPathPrefix(env: EnvReader): string {
  const prefix = env.optional('PHANTOM_DECISION_PATH_PREFIX') ?? '';
  if (prefix !== '' && !/^\/[A-Za-z0-9\-._~/]*[^/]$/.test(prefix)) throw new ConfigError('PHANTOM_DECISION_PATH_PREFIX', 'must be a path like /ext-authz, without a trailing slash');
  return prefix;
}

function readHeaderName(env: EnvReader, name: string, fallback: string): string {
  const value = env.optional(name)?.toLowerCase() ?? fallback;
  if (!HEADER_NAME.test(value)) throw new ConfigError(name, `"${value}" is not an HTTP header name of letters, digits and "-"`);
  return value;
}

function readFleet(env: EnvReader, introspectionCa: string | undefined): FleetConfig {
  const redisUrl = env.optional('PHANTOM_REDIS_URL') === undefined ? undefined : env.url('PHANTOM_REDIS_URL', ['redis:', 'rediss:']);
  if (redisUrl !== undefined && (redisUrl.username !== '' || redisUrl.password !== '')) {
    throw new ConfigError('PHANTOM_REDIS_URL', 'must not carry credentials: use PHANTOM_REDIS_PASSWORD or _FILE');
  }
  const caPath = env.optional('PHANTOM_REDIS_CA');
  if (caPath !== undefined && redisUrl?.protocol !== 'rediss:') throw new ConfigError('PHANTOM_REDIS_CA', 'goes with a rediss:// PHANTOM_REDIS_URL');
  const password = env.secret('PHANTOM_REDIS_PASSWORD', { required: false });
  if (redisUrl === undefined && password !== undefined) throw new ConfigError('PHANTOM_REDIS_PASSWORD', 'goes with PHANTOM_REDIS_URL');
  const key = readFleetKey(env, 'PHANTOM_REDIS_KEY', redisUrl !== undefined);
  const previousKey = readFleetKey(env, 'PHANTOM_REDIS_PREVIOUS_KEY', false);
  if (redisUrl === undefined && (key !== undefined || previousKey !== undefined)) throw new ConfigError(key === undefined ? 'PHANTOM_REDIS_PREVIOUS_KEY' : 'PHANTOM_REDIS_KEY', 'goes with PHANTOM_REDIS_URL');
  if (key !== undefined && previousKey !== undefined && key.equals(previousKey)) throw new ConfigError('PHANTOM_REDIS_PREVIOUS_KEY', 'is the same as PHANTOM_REDIS_KEY');
  const audience = env.optional('PHANTOM_SSF_AUDIENCE');
  const issuer = env.optional('PHANTOM_SSF_ISSUER');
  const jwksUrl = env.optional('PHANTOM_SSF_JWKS_URL') === undefined ? undefined : env.url('PHANTOM_SSF_JWKS_URL', ['https:']);
  let ssf: FleetConfig['ssf'];
  if (issuer !== undefined || jwksUrl !== undefined || audience !== undefined) {
    if (issuer === undefined) throw new ConfigError('PHANTOM_SSF_ISSUER', 'is required to receive Shared Signals events (their iss)');
    if (audience === undefined) throw new ConfigError('PHANTOM_SSF_AUDIENCE', 'is required to receive Shared Signals events (their aud)');
    const ssfCa = env.optional('PHANTOM_SSF_CA');
    ssf = {
      issuer,
      jwksUrl,
      audience,
      ca: ssfCa === undefined ? introspectionCa : readCertificateFile('PHANTOM_SSF_CA', ssfCa).pem,
      authToken: env.secret('PHANTOM_SSF_AUTH_TOKEN', { required: false }),
    };
  }
  return {
    redis: redisUrl === undefined ? undefined : {
      url: redisUrl,
      ca: caPath === undefined ? undefined : readCertificateFile('PHANTOM_REDIS_CA', caPath).pem,
      password,
      timeoutMs: env.integer('PHANTOM_REDIS_TIMEOUT_MS', 50, 1, 10_000),
      // Required with the URL: readFleetKey has refused its absence.
      key: key ?? Buffer.alloc(0),
      previousKey,
    },
    degradedTtlSeconds: env.integer('PHANTOM_CACHE_DEGRADED_TTL_S', 5, 0, 3600),
    ssf,
  };
}

const MIN_FLEET_KEY_BYTES = 32;

/** A fleet sealing key: the same on every replica, at least 32 bytes (e.g. `openssl rand -base64 32`). */
function readFleetKey(env: EnvReader, name: string, required: boolean): Buffer | undefined {
  const secret = env.secret(name, { required });
  if (secret === undefined) return undefined;
  if (Buffer.byteLength(secret) < MIN_FLEET_KEY_BYTES) throw new ConfigError(name, `must be at least ${MIN_FLEET_KEY_BYTES} bytes (the same on every replica)`);
  return Buffer.from(secret);
}

function readResource(env: EnvReader): string | undefined {
  const resource = env.optional('PHANTOM_RESOURCE');
  if (resource === undefined) return undefined;
  const url = env.url('PHANTOM_RESOURCE', ['https:']);
  // RFC 9728 §1.2: an https URL with no query or fragment.
  if (url.search !== '' || url.hash !== '') throw new ConfigError('PHANTOM_RESOURCE', 'must have no query or fragment');
  return resource;
}

/** PHANTOM_EXPECTED_AUDIENCE is required: without it a token for any API would pass. */
function readExpectedAudience(env: EnvReader): string | undefined {
  const audience = env.optional('PHANTOM_EXPECTED_AUDIENCE');
  const anyAudience = env.boolean('PHANTOM_ALLOW_ANY_AUDIENCE', false);
  if (audience !== undefined && anyAudience) {
    throw new ConfigError('PHANTOM_ALLOW_ANY_AUDIENCE', 'cannot be true while PHANTOM_EXPECTED_AUDIENCE is set');
  }
  if (audience === undefined && !anyAudience) {
    throw new ConfigError('PHANTOM_EXPECTED_AUDIENCE', 'is required (or PHANTOM_ALLOW_ANY_AUDIENCE=true to accept tokens for any API)');
  }
  return audience;
}

// Which settings belong to which method: any other one set is a start-up error naming it.
const METHOD_SETTINGS: Record<string, readonly ClientAuthMethod[]> = {
  PHANTOM_INTROSPECTION_CLIENT_SECRET: ['client_secret_basic', 'client_secret_post'],
  PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE: ['client_secret_basic', 'client_secret_post'],
  PHANTOM_INTROSPECTION_CLIENT_KEY: ['private_key_jwt'],
  PHANTOM_INTROSPECTION_CLIENT_KEY_FILE: ['private_key_jwt'],
  PHANTOM_INTROSPECTION_CLIENT_KEY_ALG: ['private_key_jwt'],
  PHANTOM_INTROSPECTION_CLIENT_KEY_ID: ['private_key_jwt'],
  PHANTOM_INTROSPECTION_CLIENT_CERT: ['tls_client_auth', 'self_signed_tls_client_auth'],
  PHANTOM_INTROSPECTION_CLIENT_CERT_KEY: ['tls_client_auth', 'self_signed_tls_client_auth'],
};

/** The JWS algorithm a key signs with, when PHANTOM_INTROSPECTION_CLIENT_KEY_ALG does not say. */
function algorithmOf(key: KeyObject): JwtAlg | undefined {
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'rsa-pss') return 'PS256';
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  return undefined;
}

function readIntrospectionAuth(env: EnvReader): IntrospectionAuth {
  const method = env.oneOf<ClientAuthMethod>('PHANTOM_INTROSPECTION_AUTH', 'client_secret_basic', CLIENT_AUTH_METHODS);
  for (const [variable, methods] of Object.entries(METHOD_SETTINGS)) {
    if (!methods.includes(method) && env.optional(variable) !== undefined) {
      throw new ConfigError(variable, `does not belong to PHANTOM_INTROSPECTION_AUTH=${method}`);
    }
  }
  switch (method) {
    case 'client_secret_basic':
    case 'client_secret_post':
      return { method, secret: env.requiredSecret('PHANTOM_INTROSPECTION_CLIENT_SECRET') };
    case 'private_key_jwt': {
      const key = parsePrivateKey('PHANTOM_INTROSPECTION_CLIENT_KEY', env.requiredSecret('PHANTOM_INTROSPECTION_CLIENT_KEY'));
      const fallback = algorithmOf(key);
      if (fallback === undefined) throw new ConfigError('PHANTOM_INTROSPECTION_CLIENT_KEY', 'must be an EC P-256, RSA or Ed25519 key');
      const alg = env.oneOf<JwtAlg>('PHANTOM_INTROSPECTION_CLIENT_KEY_ALG', fallback, FAPI_ALGORITHMS);
      checkSigningKeyFits('PHANTOM_INTROSPECTION_CLIENT_KEY', alg, key);
      return { method, key, alg, keyId: env.optional('PHANTOM_INTROSPECTION_CLIENT_KEY_ID') };
    }
    case 'tls_client_auth':
    case 'self_signed_tls_client_auth': {
      const certPath = env.required('PHANTOM_INTROSPECTION_CLIENT_CERT');
      const keyPath = env.required('PHANTOM_INTROSPECTION_CLIENT_CERT_KEY');
      readClientCertificate(certPath, keyPath);
      return { method, certPath, keyPath };
    }
  }
}

/** The sidecar's own client certificate and key, checked to match: at start-up and on every renewal. */
export function readClientCertificate(certPath: string, keyPath: string): { cert: string; key: string } {
  const { pem: cert, certificates } = readCertificateFile('PHANTOM_INTROSPECTION_CLIENT_CERT', certPath);
  const key = readText('PHANTOM_INTROSPECTION_CLIENT_CERT_KEY', keyPath);
  if (!certificates[0]?.checkPrivateKey(parsePrivateKey('PHANTOM_INTROSPECTION_CLIENT_CERT_KEY', key))) {
    throw new ConfigError('PHANTOM_INTROSPECTION_CLIENT_CERT_KEY', 'does not match the certificate in PHANTOM_INTROSPECTION_CLIENT_CERT');
  }
  return { cert, key };
}

function readIssuer(env: EnvReader): string | undefined {
  const issuer = env.optional('PHANTOM_AS_ISSUER');
  if (issuer === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    throw new ConfigError('PHANTOM_AS_ISSUER', 'is not a valid absolute URL');
  }
  // RFC 8414 §2: an https URL with no query or fragment.
  if (url.protocol !== 'https:' || url.search !== '' || url.hash !== '') {
    throw new ConfigError('PHANTOM_AS_ISSUER', 'must be an https URL without query or fragment');
  }
  return issuer;
}

/**
 * The AS's issuer identifier, one value for everything that names it: the `iss` of its tokens
 * and signed answers, the `aud` of our assertions. PHANTOM_AS_ISSUER, else
 * PHANTOM_EXPECTED_ISSUER; set both, they must agree.
 */
function issuerIdentifier(env: EnvReader, issuer: string | undefined): string | undefined {
  const expected = env.optional('PHANTOM_EXPECTED_ISSUER');
  if (issuer !== undefined && expected !== undefined && issuer !== expected) {
    throw new ConfigError('PHANTOM_EXPECTED_ISSUER', 'differs from PHANTOM_AS_ISSUER: the issuer of the tokens is the AS whose metadata is read');
  }
  return issuer ?? expected;
}

function readIntrospection(env: EnvReader): Config['introspection'] {
  const caPath = env.optional('PHANTOM_INTROSPECTION_CA');
  const issuer = readIssuer(env);
  const url = env.optional('PHANTOM_INTROSPECTION_URL') === undefined && issuer !== undefined ? undefined : env.url('PHANTOM_INTROSPECTION_URL', ['https:']);
  const jwksUrl = env.optional('PHANTOM_AS_JWKS_URL') === undefined ? undefined : env.url('PHANTOM_AS_JWKS_URL', ['https:']);
  const auth = readIntrospectionAuth(env);
  const response = env.oneOf('PHANTOM_INTROSPECTION_RESPONSE', 'json', ['json', 'jwt'] as const);
  const asIdentifier = issuerIdentifier(env, issuer);
  if (auth.method === 'private_key_jwt' && asIdentifier === undefined) {
    throw new ConfigError('PHANTOM_AS_ISSUER', 'is required for private_key_jwt: the assertion\'s aud is the AS\'s issuer identifier (FAPI 2.0)');
  }
  if (response === 'jwt') {
    if (asIdentifier === undefined) throw new ConfigError('PHANTOM_AS_ISSUER', 'is required for PHANTOM_INTROSPECTION_RESPONSE=jwt: it is the answer\'s iss');
    if (jwksUrl === undefined && issuer === undefined) throw new ConfigError('PHANTOM_AS_JWKS_URL', 'is required for PHANTOM_INTROSPECTION_RESPONSE=jwt (or PHANTOM_AS_ISSUER, whose metadata names it)');
  }
  return {
    url,
    issuer,
    jwksUrl,
    metadataRefreshSeconds: env.integer('PHANTOM_AS_METADATA_REFRESH_S', 3600, 10, 86_400),
    jwksCooldownSeconds: env.integer('PHANTOM_AS_JWKS_COOLDOWN_S', 10, 0, 3600),
    clientId: env.required('PHANTOM_INTROSPECTION_CLIENT_ID'),
    auth,
    asIdentifier,
    response,
    ca: caPath === undefined ? undefined : readCertificateFile('PHANTOM_INTROSPECTION_CA', caPath).pem,
    timeoutMs: env.integer('PHANTOM_INTROSPECTION_TIMEOUT_MS', 2000, 1, 60_000),
    connections: env.integer('PHANTOM_INTROSPECTION_CONNECTIONS', 8, 1, 1024),
  };
}

/** The key type each algorithm needs (RFC 7518 §3.3/§3.4, RFC 8037). */
function checkSigningKeyFits(variable: string, alg: JwtAlg, key: KeyObject): void {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  const fits =
    (alg === 'ES256' && type === 'ec' && details.namedCurve === 'prime256v1') ||
    (alg === 'PS256' && (type === 'rsa' || type === 'rsa-pss') && (details.modulusLength ?? 0) >= 2048) ||
    (alg === 'EdDSA' && type === 'ed25519');
  if (!fits) {
    const wanted = { ES256: 'an EC P-256 key', PS256: 'an RSA key of 2048 bits or more', EdDSA: 'an Ed25519 key' }[alg];
    const algVariable = variable === 'PHANTOM_JWT_SIGNING_KEY' ? 'PHANTOM_JWT_ALG' : `${variable}_ALG`;
    throw new ConfigError(variable, `${algVariable}=${alg} needs ${wanted}, got ${type ?? 'another kind of key'}`);
  }
}

function readUpstreamToken(env: EnvReader): MintConfig | AsJwtConfig {
  const mode = env.oneOf('PHANTOM_UPSTREAM_TOKEN', 'mint', ['mint', 'as-jwt'] as const);
  if (mode === 'as-jwt') return { mode };
  const alg = env.oneOf<JwtAlg>('PHANTOM_JWT_ALG', 'ES256', FAPI_ALGORITHMS);
  const pem = env.secret('PHANTOM_JWT_SIGNING_KEY', { required: false });
  const signingKey = pem === undefined ? undefined : parsePrivateKey('PHANTOM_JWT_SIGNING_KEY', pem);
  if (signingKey !== undefined) checkSigningKeyFits('PHANTOM_JWT_SIGNING_KEY', alg, signingKey);
  return {
    mode,
    issuer: env.required('PHANTOM_JWT_ISSUER'),
    audience: env.required('PHANTOM_JWT_AUDIENCE'),
    ttlSeconds: env.integer('PHANTOM_JWT_TTL_S', 60, 1, 3600),
    alg,
    signingKey,
  };
}

const PORT_MAX = 65_535;

function readListen(env: EnvReader): Config['listen'] {
  return { host: env.optional('PHANTOM_LISTEN_HOST') ?? '0.0.0.0', port: env.integer('PHANTOM_LISTEN_PORT', 8443, 0, PORT_MAX) };
}

function readAdmin(env: EnvReader): Config['admin'] {
  return { host: env.optional('PHANTOM_ADMIN_HOST') ?? '0.0.0.0', port: env.integer('PHANTOM_ADMIN_PORT', 9090, 0, PORT_MAX) };
}

function readMode(env: EnvReader): Config['mode'] {
  return env.oneOf('PHANTOM_MODE', 'proxy', ['proxy', 'decision'] as const);
}

function readModeUpstream(env: EnvReader): Config['upstream'] {
  const mode = readMode(env);
  if (mode === 'decision' && env.optional('PHANTOM_UPSTREAM_URL') !== undefined) throw new ConfigError('PHANTOM_UPSTREAM_URL', 'goes with PHANTOM_MODE=proxy: in decision mode the gateway forwards the request');
  return mode === 'proxy' ? readUpstream(env) : undefined;
}

function readDecision(env: EnvReader): Config['decision'] {
  if (readMode(env) !== 'decision') return undefined;
  return {
    jwtHeader: readHeaderName(env, 'PHANTOM_DECISION_JWT_HEADER', 'authorization'),
    grpcPort: env.optional('PHANTOM_EXT_AUTHZ_GRPC_PORT') === undefined ? undefined : env.integer('PHANTOM_EXT_AUTHZ_GRPC_PORT', 0, 0, PORT_MAX),
    pathPrefix: readPathPrefix(env),
  };
}

function readCache(env: EnvReader): Config['cache'] {
  return {
    maxEntries: env.integer('PHANTOM_CACHE_MAX_ENTRIES', 10_000, 1, 10_000_000),
    maxTtlSeconds: env.integer('PHANTOM_CACHE_MAX_TTL_S', 300, 0, 86_400),
    negativeTtlSeconds: env.integer('PHANTOM_CACHE_NEGATIVE_TTL_S', 5, 0, 3600),
    negativeMaxEntries: env.integer('PHANTOM_CACHE_NEGATIVE_MAX_ENTRIES', 1000, 1, 1_000_000),
    staleIfErrorSeconds: env.integer('PHANTOM_CACHE_STALE_IF_ERROR_S', 0, 0, 3600),
  };
}

const SAMPLERS = ['always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio'] as const;

/** OTEL_EXPORTER_OTLP_HEADERS: `key=value` pairs, comma-separated, values URL-encoded (the OTel spec). */
function readOtlpHeaders(env: EnvReader): Record<string, string> {
  const raw = env.optional('OTEL_EXPORTER_OTLP_HEADERS');
  const headers: Record<string, string> = {};
  if (raw === undefined) return headers;
  for (const pair of raw.split(',')) {
    const at = pair.indexOf('=');
    const name = pair.slice(0, at).trim().toLowerCase();
    // The value may be an API key: never quoted in the message.
    if (at < 1 || !/^[a-z0-9-]+$/.test(name)) throw new ConfigError('OTEL_EXPORTER_OTLP_HEADERS', 'must be name=value pairs separated by commas');
    try {
      headers[name] = decodeURIComponent(pair.slice(at + 1).trim());
    } catch {
      throw new ConfigError('OTEL_EXPORTER_OTLP_HEADERS', `the value of ${name} is not URL-encoded`);
    }
  }
  return headers;
}

/** Tracing is on when an OTLP endpoint is set (and OTEL_SDK_DISABLED is not true). */
function readTracing(env: EnvReader): TracingConfig | undefined {
  const signal = env.optional('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const base = env.optional('OTEL_EXPORTER_OTLP_ENDPOINT');
  if ((signal === undefined && base === undefined) || env.boolean('OTEL_SDK_DISABLED', false)) return undefined;
  const name = signal === undefined ? 'OTEL_EXPORTER_OTLP_ENDPOINT' : 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT';
  const url = env.url(name, ['http:', 'https:']);
  // The spec: the signal variable is used as is; the base one gets /v1/traces appended.
  const endpoint = signal === undefined ? `${url.href.replace(/\/$/, '')}/v1/traces` : url.href;
  const protocol = env.oneOf('OTEL_EXPORTER_OTLP_PROTOCOL', 'http/protobuf', ['http/protobuf', 'http/json'] as const);
  const samplerName = env.oneOf('OTEL_TRACES_SAMPLER', 'parentbased_always_on', SAMPLERS);
  const rawRatio = env.optional('OTEL_TRACES_SAMPLER_ARG');
  const ratio = rawRatio === undefined ? 1 : Number(rawRatio);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) throw new ConfigError('OTEL_TRACES_SAMPLER_ARG', `must be a number from 0 to 1, got "${rawRatio}"`);
  return {
    endpoint,
    protocol,
    headers: readOtlpHeaders(env),
    serviceName: env.optional('OTEL_SERVICE_NAME') ?? 'phantom-sidecar',
    sampler: { name: samplerName, ratio },
    timeoutMs: 10_000,
    scheduledDelayMs: 1000,
  };
}

function readLogLevel(env: EnvReader): LogLevel {
  return env.oneOf<LogLevel>('PHANTOM_LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
}

/** Every setting read into one object; the rules between settings are checked after. */
function readConfig(env: EnvReader): Config {
  // Read in this order so that the first problem reported is the first a newcomer meets.
  const senderConstraints = readSenderConstraints(env);
  const tls = readTls(env);
  const http = readHttp(env);
  const limits = readLimits(env);
  const upstream = readModeUpstream(env);
  const introspection = readIntrospection(env);
  return {
    listen: readListen(env),
    tls,
    http,
    limits,
    mode: readMode(env),
    upstream,
    decision: readDecision(env),
    introspection,
    cache: readCache(env),
    requireBinding: env.boolean('PHANTOM_REQUIRE_BINDING', true),
    senderConstraints,
    dpop: readDpop(env, senderConstraints),
    clientCert: readClientCertSource(env),
    forwardClientCert: env.boolean('PHANTOM_FORWARD_CLIENT_CERT', false),
    resource: readResource(env),
    fleet: readFleet(env, introspection.ca),
    requireTokenType: env.boolean('PHANTOM_REQUIRE_TOKEN_TYPE', true),
    requiredScopes: env.optional('PHANTOM_REQUIRED_SCOPES')?.split(/\s+/) ?? [],
    policyFile: env.optional('PHANTOM_POLICY_FILE'),
    policyCaseInsensitive: env.boolean('PHANTOM_POLICY_CASE_INSENSITIVE', false),
    expectedIssuer: issuerIdentifier(env, env.optional('PHANTOM_AS_ISSUER')),
    expectedAudience: readExpectedAudience(env),
    upstreamToken: readUpstreamToken(env),
    admin: readAdmin(env),
    logLevel: readLogLevel(env),
    logTime: env.oneOf('PHANTOM_LOG_TIME', 'epoch', ['epoch', 'iso'] as const),
    tracing: readTracing(env),
    weakened: [],
  };
}

/** The rules between settings, each problem on its own. */
function crossProblems(config: Config, env: EnvReader): ConfigError[] {
  const problems: ConfigError[] = [];
  // The partner's certificate comes from the gateway, never from the decision call's own connection.
  if (config.mode === 'decision' && config.clientCert.source !== 'header') {
    problems.push(new ConfigError('PHANTOM_CLIENT_CERT_SOURCE', 'must be header with PHANTOM_MODE=decision: the gateway terminates the partner\'s mTLS and passes its certificate'));
  }
  for (const variable of ['PHANTOM_DECISION_JWT_HEADER', 'PHANTOM_EXT_AUTHZ_GRPC_PORT', 'PHANTOM_DECISION_PATH_PREFIX']) {
    if (config.mode === 'proxy' && env.optional(variable) !== undefined) problems.push(new ConfigError(variable, 'goes with PHANTOM_MODE=decision'));
  }
  // A DPoP proof names the URL the client called (htu): only a vouched-for Host can be compared.
  if (config.senderConstraints.dpop && config.http.publicHosts === undefined) {
    problems.push(new ConfigError('PHANTOM_PUBLIC_HOSTS', 'is required when PHANTOM_SENDER_CONSTRAINTS accepts dpop (the proof\'s htu is checked against it)'));
  }
  if (config.policyFile !== undefined) {
    if (config.requiredScopes.length > 0) problems.push(new ConfigError('PHANTOM_REQUIRED_SCOPES', 'goes with no PHANTOM_POLICY_FILE: the policy\'s rules say which scopes each route needs'));
    // Read and checked now, so a bad policy stops the start with its rule named.
    try {
      readPolicyRules(config.policyFile, { senderConstraints: config.senderConstraints, requiredScopes: [], caseInsensitive: config.policyCaseInsensitive });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(error);
    }
  }
  if (config.introspection.response === 'jwt' && config.upstreamToken.mode === 'as-jwt') {
    problems.push(new ConfigError('PHANTOM_INTROSPECTION_RESPONSE', 'jwt does not go with PHANTOM_UPSTREAM_TOKEN=as-jwt'));
  }
  if (config.admin.port !== 0 && config.admin.port === config.listen.port && config.admin.host === config.listen.host) {
    problems.push(new ConfigError('PHANTOM_ADMIN_PORT', `must differ from PHANTOM_LISTEN_PORT (${config.listen.port})`));
  }
  return problems;
}

/** The configuration the process runs with; the first problem stops it (exit 2, one line). */
export function loadConfig(environment: Env = process.env): Config {
  refuseUnknownVariables(environment);
  const env = new EnvReader(environment);
  const config = readConfig(env);
  const [problem] = crossProblems(config, env);
  if (problem !== undefined) throw problem;
  return Object.freeze({ ...config, weakened: weakenedSettings(config) });
}

// Each part read on its own by `phantom-sidecar check`, so that one problem does not hide the next.
const SECTIONS: readonly ((env: EnvReader) => unknown)[] = [
  readListen,
  readTls,
  readHttp,
  readLimits,
  readModeUpstream,
  readDecision,
  readIntrospection,
  readCache,
  (env) => readDpop(env, readSenderConstraints(env)),
  readClientCertSource,
  readResource,
  (env) => readFleet(env, undefined),
  (env) => issuerIdentifier(env, env.optional('PHANTOM_AS_ISSUER')),
  readExpectedAudience,
  readUpstreamToken,
  readAdmin,
  readLogLevel,
  readTracing,
  (env) => env.oneOf('PHANTOM_LOG_TIME', 'epoch', ['epoch', 'iso'] as const),
  (env) => [env.boolean('PHANTOM_REQUIRE_BINDING', true), env.boolean('PHANTOM_REQUIRE_TOKEN_TYPE', true), env.boolean('PHANTOM_FORWARD_CLIENT_CERT', false), env.boolean('PHANTOM_POLICY_CASE_INSENSITIVE', false)],
];

/** Every problem of an environment at once, for an operator fixing a deployment in one go. */
export function checkConfig(environment: Env = process.env): { config: Config | undefined; problems: ConfigError[] } {
  const problems = unknownVariables(environment);
  const env = new EnvReader(environment, problems);
  const attempt = (read: () => void): void => {
    try {
      read();
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      problems.push(error);
    }
  };
  for (const section of SECTIONS) attempt(() => section(env));
  let config: Config | undefined;
  if (problems.length === 0) {
    attempt(() => {
      const read = readConfig(env);
      problems.push(...crossProblems(read, env));
      config = Object.freeze({ ...read, weakened: weakenedSettings(read) });
    });
  }
  const seen = new Set<string>();
  const unique = problems.filter((problem) => !seen.has(problem.message) && seen.add(problem.message));
  return { config: unique.length === 0 ? config : undefined, problems: unique };
}

/** Each setting that loosens a default check, named as the operator set it. */
function weakenedSettings(config: Config): string[] {
  const weakened: string[] = [];
  if (config.expectedAudience === undefined) weakened.push('PHANTOM_ALLOW_ANY_AUDIENCE=true');
  if (!config.requireBinding) weakened.push('PHANTOM_REQUIRE_BINDING=false');
  if (!config.requireTokenType) weakened.push('PHANTOM_REQUIRE_TOKEN_TYPE=false');
  if (config.http.forwardCookies) weakened.push('PHANTOM_FORWARD_COOKIES=true');
  if (config.cache.staleIfErrorSeconds > 0) weakened.push(`PHANTOM_CACHE_STALE_IF_ERROR_S=${config.cache.staleIfErrorSeconds}`);
  return weakened;
}
