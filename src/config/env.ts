// Reading PHANTOM_* variables: typed accessors that all fail the same way (a ConfigError
// naming the variable, never quoting a secret), and the list of every variable the sidecar
// knows, so that a misspelt one stops the start instead of silently leaving a check off.
import { readFileSync } from 'node:fs';
import { levenshtein } from '../lazy.ts';

export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

export type Env = Readonly<Record<string, string | undefined>>;


/** Every variable the sidecar reads (PHANTOM_*, and the OTEL_* it honours). A `_FILE` form is known where a secret allows it. */
export const KNOWN_VARIABLES: ReadonlySet<string> = new Set([
  'PHANTOM_LISTEN_HOST',
  'PHANTOM_LISTEN_PORT',
  'PHANTOM_TLS_CERT',
  'PHANTOM_TLS_KEY',
  'PHANTOM_TLS_CLIENT_CA',
  'PHANTOM_TLS_CLIENT_CRL',
  'PHANTOM_TLS_MIN_VERSION',
  'PHANTOM_TLS_RELOAD_INTERVAL_S',
  'PHANTOM_TLS_HANDSHAKE_TIMEOUT_MS',
  'PHANTOM_TLS_MAX_CONNECTION_AGE_S',
  'PHANTOM_HEADERS_TIMEOUT_MS',
  'PHANTOM_REQUEST_TIMEOUT_MS',
  'PHANTOM_KEEPALIVE_TIMEOUT_MS',
  'PHANTOM_DRAIN_TIMEOUT_S',
  'PHANTOM_MAX_BODY_BYTES',
  'PHANTOM_MAX_CONCURRENT_PER_CLIENT',
  'PHANTOM_MAX_FAILED_TOKENS_PER_MIN',
  'PHANTOM_MAX_CONCURRENT_INTROSPECTIONS',
  'PHANTOM_MAX_CONCURRENT_INTROSPECTIONS_PER_CLIENT',
  'PHANTOM_MAX_CONNECTIONS',
  'PHANTOM_MAX_CONNECTIONS_PER_CLIENT',
  'PHANTOM_ALLOWED_METHODS',
  'PHANTOM_PUBLIC_HOSTS',
  'PHANTOM_FORWARD_COOKIES',
  'PHANTOM_UPSTREAM_URL',
  'PHANTOM_UPSTREAM_TIMEOUT_MS',
  'PHANTOM_UPSTREAM_CONNECTIONS',
  'PHANTOM_UPSTREAM_QUEUE_TIMEOUT_MS',
  'PHANTOM_INTROSPECTION_URL',
  'PHANTOM_INTROSPECTION_CLIENT_ID',
  'PHANTOM_INTROSPECTION_CLIENT_SECRET',
  'PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE',
  'PHANTOM_INTROSPECTION_CA',
  'PHANTOM_INTROSPECTION_AUTH',
  'PHANTOM_INTROSPECTION_CLIENT_KEY',
  'PHANTOM_INTROSPECTION_CLIENT_KEY_FILE',
  'PHANTOM_INTROSPECTION_CLIENT_KEY_ALG',
  'PHANTOM_INTROSPECTION_CLIENT_KEY_ID',
  'PHANTOM_INTROSPECTION_CLIENT_CERT',
  'PHANTOM_INTROSPECTION_CLIENT_CERT_KEY',
  'PHANTOM_INTROSPECTION_RESPONSE',
  'PHANTOM_AS_ISSUER',
  'PHANTOM_AS_JWKS_URL',
  'PHANTOM_AS_METADATA_REFRESH_S',
  'PHANTOM_AS_JWKS_COOLDOWN_S',
  'PHANTOM_INTROSPECTION_TIMEOUT_MS',
  'PHANTOM_INTROSPECTION_CONNECTIONS',
  'PHANTOM_CACHE_MAX_ENTRIES',
  'PHANTOM_CACHE_MAX_TTL_S',
  'PHANTOM_CACHE_NEGATIVE_TTL_S',
  'PHANTOM_CACHE_NEGATIVE_MAX_ENTRIES',
  'PHANTOM_REQUIRE_BINDING',
  'PHANTOM_SENDER_CONSTRAINTS',
  'PHANTOM_DPOP_ALGS',
  'PHANTOM_DPOP_MAX_AGE_S',
  'PHANTOM_DPOP_NONCE',
  'PHANTOM_DPOP_NONCE_SECRET',
  'PHANTOM_DPOP_NONCE_SECRET_FILE',
  'PHANTOM_RESOURCE',
  'PHANTOM_REDIS_URL',
  'PHANTOM_REDIS_CA',
  'PHANTOM_REDIS_PASSWORD',
  'PHANTOM_REDIS_PASSWORD_FILE',
  'PHANTOM_REDIS_TIMEOUT_MS',
  'PHANTOM_REDIS_KEY',
  'PHANTOM_REDIS_KEY_FILE',
  'PHANTOM_REDIS_PREVIOUS_KEY',
  'PHANTOM_REDIS_PREVIOUS_KEY_FILE',
  'PHANTOM_CACHE_DEGRADED_TTL_S',
  'PHANTOM_CACHE_STALE_IF_ERROR_S',
  'PHANTOM_SSF_ISSUER',
  'PHANTOM_SSF_JWKS_URL',
  'PHANTOM_SSF_AUDIENCE',
  'PHANTOM_SSF_CA',
  'PHANTOM_SSF_AUTH_TOKEN',
  'PHANTOM_SSF_AUTH_TOKEN_FILE',
  'PHANTOM_CLIENT_CERT_SOURCE',
  'PHANTOM_TRUSTED_PROXY_CERT_X5T',
  'PHANTOM_TRUSTED_PROXY_CA',
  'PHANTOM_CLIENT_CERT_HEADER_FORMAT',
  'PHANTOM_CLIENT_CERT_HEADER',
  'PHANTOM_MODE',
  'PHANTOM_DECISION_JWT_HEADER',
  'PHANTOM_EXT_AUTHZ_GRPC_PORT',
  'PHANTOM_DECISION_PATH_PREFIX',
  'PHANTOM_FORWARD_CLIENT_CERT',
  'PHANTOM_REQUIRE_TOKEN_TYPE',
  'PHANTOM_REQUIRED_SCOPES',
  'PHANTOM_POLICY_FILE',
  'PHANTOM_POLICY_CASE_INSENSITIVE',
  'PHANTOM_EXPECTED_ISSUER',
  'PHANTOM_EXPECTED_AUDIENCE',
  'PHANTOM_ALLOW_ANY_AUDIENCE',
  'PHANTOM_UPSTREAM_TOKEN',
  'PHANTOM_JWT_ISSUER',
  'PHANTOM_JWT_AUDIENCE',
  'PHANTOM_JWT_TTL_S',
  'PHANTOM_JWT_ALG',
  'PHANTOM_JWT_SIGNING_KEY',
  'PHANTOM_JWT_SIGNING_KEY_FILE',
  'PHANTOM_ADMIN_HOST',
  'PHANTOM_ADMIN_PORT',
  'PHANTOM_LOG_LEVEL',
  'PHANTOM_LOG_TIME',
  // OpenTelemetry's standard variables, as far as the sidecar reads them.
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_SERVICE_NAME',
  'OTEL_TRACES_SAMPLER',
  'OTEL_TRACES_SAMPLER_ARG',
  'OTEL_SDK_DISABLED',
  'PHANTOM_WEBHOOK_HOST',
  'PHANTOM_WEBHOOK_PORT',
  'PHANTOM_WEBHOOK_TLS_CERT',
  'PHANTOM_WEBHOOK_TLS_KEY',
  'PHANTOM_WEBHOOK_TEMPLATE',
]);

/** Each PHANTOM_* variable nobody reads, with the known one it was probably meant to be. */
export function unknownVariables(env: Env): ConfigError[] {
  const known = [...KNOWN_VARIABLES];
  return Object.keys(env)
    .sort()
    .filter((name) => name.startsWith('PHANTOM_') && !KNOWN_VARIABLES.has(name))
    .map((name) => new ConfigError(name, `is not a known setting (did you mean ${levenshtein().closest(name, known)}?)`));
}

/** A PHANTOM_* variable nobody reads is a typo until proven otherwise: refuse to start. */
export function refuseUnknownVariables(env: Env): void {
  const [first] = unknownVariables(env);
  if (first !== undefined) throw first;
}

/** Reads the environment through small typed accessors that all fail the same way. */
export class EnvReader {
  readonly #env: Env;
  readonly #problems: ConfigError[] | undefined;
  /** With `problems`, a bad number, flag or choice is noted there and its default used, so checking goes on. */
  constructor(env: Env, problems?: ConfigError[]) {
    this.#env = env;
    this.#problems = problems;
  }

  #noted<T>(problem: ConfigError, fallback: T): T {
    if (this.#problems === undefined) throw problem;
    this.#problems.push(problem);
    return fallback;
  }

  optional(name: string): string | undefined {
    // A name missing from the list would make refuseUnknownVariables refuse its own setting.
    if (!KNOWN_VARIABLES.has(name)) throw new Error(`${name} is read but not in KNOWN_VARIABLES`);
    const value = this.#env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  required(name: string): string {
    const value = this.optional(name);
    if (value === undefined) throw new ConfigError(name, 'is required');
    return value;
  }

  /** A secret given inline or as `<NAME>_FILE` (how Kubernetes mounts Secrets). */
  secret(name: string, { required }: { required: boolean }): string | undefined {
    const inline = this.optional(name) === undefined ? undefined : this.#env[name];
    const path = this.optional(`${name}_FILE`);
    if (inline !== undefined && inline !== '' && path !== undefined) {
      throw new ConfigError(name, `set either ${name} or ${name}_FILE, not both`);
    }
    if (path !== undefined) {
      const value = readText(`${name}_FILE`, path).replace(/\r?\n$/, '');
      if (value === '') throw new ConfigError(`${name}_FILE`, `file ${path} is empty`);
      return value;
    }
    if (inline === undefined || inline === '') {
      if (required) throw new ConfigError(name, `is required (or ${name}_FILE)`);
      return undefined;
    }
    return inline;
  }

  /** A secret that must be there: inline or as `<NAME>_FILE`. */
  requiredSecret(name: string): string {
    const value = this.secret(name, { required: true });
    if (value === undefined) throw new ConfigError(name, `is required (or ${name}_FILE)`);
    return value;
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw)) return this.#noted(new ConfigError(name, `must be a whole number, got "${raw}"`), fallback);
    const value = Number(raw);
    if (value < min || value > max) return this.#noted(new ConfigError(name, `must be between ${min} and ${max}, got ${value}`), fallback);
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.optional(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (raw === 'true' || raw === '1' || raw === 'yes') return true;
    if (raw === 'false' || raw === '0' || raw === 'no') return false;
    return this.#noted(new ConfigError(name, `must be true or false, got "${raw}"`), fallback);
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    const match = allowed.find((candidate) => candidate === raw);
    if (match === undefined) return this.#noted(new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`), fallback);
    return match;
  }

  url(name: string, protocols: readonly string[]): URL {
    const raw = this.required(name);
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new ConfigError(name, 'is not a valid absolute URL');
    }
    if (!protocols.includes(url.protocol)) {
      throw new ConfigError(name, `must use ${protocols.map((p) => p.replace(':', '')).join(' or ')}, got ${url.protocol.replace(':', '')}`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new ConfigError(name, 'must not carry credentials in the URL');
    }
    return url;
  }
}

export function readText(variable: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(variable, `cannot read ${path} (${code})`);
  }
}

