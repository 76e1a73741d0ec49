// PHANTOM_* configuration: read once at start-up, validated whole, frozen.
// A bad value becomes a ConfigError naming the variable; main.ts prints that one line and
// exits 2. No message here ever contains a secret's value.
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';

export type TlsMinVersion = 'TLSv1.2' | 'TLSv1.3';
export type JwtAlg = 'ES256' | 'PS256' | 'EdDSA';
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

export interface AsJwtConfig {
  mode: 'as-jwt';
}

export interface TlsPaths {
  cert: string;
  key: string;
  clientCa: string;
}

/** PEM texts of the listener's certificate chain, its key and the partner CA bundle. */
export interface TlsMaterial {
  cert: string;
  key: string;
  clientCa: string;
}

export interface Config {
  listen: { host: string; port: number };
  tls: TlsMaterial & {
    minVersion: TlsMinVersion;
    /** Where the material was read, to read it again when it is renewed. */
    paths: TlsPaths;
    /** Seconds between checks of those files; 0: never reloaded. */
    reloadIntervalSeconds: number;
  };
  upstream: { url: URL; timeoutMs: number };
  introspection: {
    url: URL;
    clientId: string;
    clientSecret: string;
    ca: string | undefined;
    timeoutMs: number;
  };
  cache: { maxEntries: number; maxTtlSeconds: number; negativeTtlSeconds: number };
  requireBinding: boolean;
  requiredScopes: readonly string[];
  expectedIssuer: string | undefined;
  expectedAudience: string | undefined;
  upstreamToken: MintConfig | AsJwtConfig;
  admin: { host: string; port: number };
  logLevel: LogLevel;
}

export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads the environment through small typed accessors that all fail the same way. */
class EnvReader {
  readonly #env: Env;
  constructor(env: Env) {
    this.#env = env;
  }

  optional(name: string): string | undefined {
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
    const inline = this.#env[name];
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

  integer(name: string, fallback: number, min: number, max: number): number {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw)) throw new ConfigError(name, `must be a whole number, got "${raw}"`);
    const value = Number(raw);
    if (value < min || value > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${value}`);
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const raw = this.optional(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (raw === 'true' || raw === '1' || raw === 'yes') return true;
    if (raw === 'false' || raw === '0' || raw === 'no') return false;
    throw new ConfigError(name, `must be true or false, got "${raw}"`);
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    const match = allowed.find((candidate) => candidate === raw);
    if (match === undefined) throw new ConfigError(name, `must be one of ${allowed.join(', ')}, got "${raw}"`);
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

function readText(variable: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(variable, `cannot read ${path} (${code})`);
  }
}

function pemCertificates(variable: string, pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new ConfigError(variable, 'holds no PEM certificate');
  return blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new ConfigError(variable, 'holds a PEM certificate that does not parse');
    }
  });
}

function readCertificateFile(variable: string, path: string): { pem: string; certificates: X509Certificate[] } {
  const pem = readText(variable, path);
  return { pem, certificates: pemCertificates(variable, pem) };
}

function parsePrivateKey(variable: string, pem: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch {
    // The parser's message may quote the input; this one never does.
    throw new ConfigError(variable, 'is not a PEM private key');
  }
}

/**
 * Reads and checks the listener's TLS files: the key matches the leaf, the leaf is in date,
 * the CA bundle holds certificates. Used at start-up and again on each reload.
 */
export function readTlsMaterial(paths: TlsPaths): TlsMaterial {
  const { pem: cert, certificates } = readCertificateFile('PHANTOM_TLS_CERT', paths.cert);
  const key = readText('PHANTOM_TLS_KEY', paths.key);
  const leaf = certificates[0];
  if (leaf === undefined || !leaf.checkPrivateKey(parsePrivateKey('PHANTOM_TLS_KEY', key))) {
    throw new ConfigError('PHANTOM_TLS_KEY', 'does not match the certificate in PHANTOM_TLS_CERT');
  }
  if (Date.parse(leaf.validTo) <= Date.now()) {
    throw new ConfigError('PHANTOM_TLS_CERT', `expired on ${leaf.validTo}`);
  }
  const clientCa = readCertificateFile('PHANTOM_TLS_CLIENT_CA', paths.clientCa).pem;
  return { cert, key, clientCa };
}

function readTls(env: EnvReader): Config['tls'] {
  const paths = {
    cert: env.required('PHANTOM_TLS_CERT'),
    key: env.required('PHANTOM_TLS_KEY'),
    clientCa: env.required('PHANTOM_TLS_CLIENT_CA'),
  };
  return {
    ...readTlsMaterial(paths),
    minVersion: env.oneOf<TlsMinVersion>('PHANTOM_TLS_MIN_VERSION', 'TLSv1.2', ['TLSv1.2', 'TLSv1.3']),
    paths,
    reloadIntervalSeconds: env.integer('PHANTOM_TLS_RELOAD_INTERVAL_S', 60, 0, 86_400),
  };
}

function readIntrospection(env: EnvReader): Config['introspection'] {
  const caPath = env.optional('PHANTOM_INTROSPECTION_CA');
  return {
    url: env.url('PHANTOM_INTROSPECTION_URL', ['https:']),
    clientId: env.required('PHANTOM_INTROSPECTION_CLIENT_ID'),
    clientSecret: env.secret('PHANTOM_INTROSPECTION_CLIENT_SECRET', { required: true }) ?? '',
    ca: caPath === undefined ? undefined : readCertificateFile('PHANTOM_INTROSPECTION_CA', caPath).pem,
    timeoutMs: env.integer('PHANTOM_INTROSPECTION_TIMEOUT_MS', 2000, 1, 60_000),
  };
}

/** The key type each algorithm needs (RFC 7518 §3.3/§3.4, RFC 8037). */
function checkSigningKeyFits(alg: JwtAlg, key: KeyObject): void {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  const fits =
    (alg === 'ES256' && type === 'ec' && details.namedCurve === 'prime256v1') ||
    (alg === 'PS256' && (type === 'rsa' || type === 'rsa-pss') && (details.modulusLength ?? 0) >= 2048) ||
    (alg === 'EdDSA' && type === 'ed25519');
  if (!fits) {
    const wanted = { ES256: 'an EC P-256 key', PS256: 'an RSA key of 2048 bits or more', EdDSA: 'an Ed25519 key' }[alg];
    throw new ConfigError('PHANTOM_JWT_SIGNING_KEY', `PHANTOM_JWT_ALG=${alg} needs ${wanted}, got ${type ?? 'another kind of key'}`);
  }
}

function readUpstreamToken(env: EnvReader): MintConfig | AsJwtConfig {
  const mode = env.oneOf('PHANTOM_UPSTREAM_TOKEN', 'mint', ['mint', 'as-jwt'] as const);
  if (mode === 'as-jwt') return { mode };
  const alg = env.oneOf<JwtAlg>('PHANTOM_JWT_ALG', 'ES256', ['ES256', 'PS256', 'EdDSA']);
  const pem = env.secret('PHANTOM_JWT_SIGNING_KEY', { required: false });
  const signingKey = pem === undefined ? undefined : parsePrivateKey('PHANTOM_JWT_SIGNING_KEY', pem);
  if (signingKey !== undefined) checkSigningKeyFits(alg, signingKey);
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

export function loadConfig(environment: Env = process.env): Config {
  const env = new EnvReader(environment);
  const requiredScopes = env.optional('PHANTOM_REQUIRED_SCOPES')?.split(/\s+/) ?? [];
  const config: Config = {
    listen: {
      host: env.optional('PHANTOM_LISTEN_HOST') ?? '0.0.0.0',
      port: env.integer('PHANTOM_LISTEN_PORT', 8443, 0, PORT_MAX),
    },
    tls: readTls(env),
    upstream: {
      url: env.url('PHANTOM_UPSTREAM_URL', ['http:', 'https:']),
      timeoutMs: env.integer('PHANTOM_UPSTREAM_TIMEOUT_MS', 30_000, 1, 3_600_000),
    },
    introspection: readIntrospection(env),
    cache: {
      maxEntries: env.integer('PHANTOM_CACHE_MAX_ENTRIES', 10_000, 1, 10_000_000),
      maxTtlSeconds: env.integer('PHANTOM_CACHE_MAX_TTL_S', 300, 0, 86_400),
      negativeTtlSeconds: env.integer('PHANTOM_CACHE_NEGATIVE_TTL_S', 5, 0, 3600),
    },
    requireBinding: env.boolean('PHANTOM_REQUIRE_BINDING', true),
    requiredScopes,
    expectedIssuer: env.optional('PHANTOM_EXPECTED_ISSUER'),
    expectedAudience: env.optional('PHANTOM_EXPECTED_AUDIENCE'),
    upstreamToken: readUpstreamToken(env),
    admin: {
      host: env.optional('PHANTOM_ADMIN_HOST') ?? '0.0.0.0',
      port: env.integer('PHANTOM_ADMIN_PORT', 9090, 0, PORT_MAX),
    },
    logLevel: env.oneOf<LogLevel>('PHANTOM_LOG_LEVEL', 'info', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  };
  if (config.admin.port !== 0 && config.admin.port === config.listen.port && config.admin.host === config.listen.host) {
    throw new ConfigError('PHANTOM_ADMIN_PORT', `must differ from PHANTOM_LISTEN_PORT (${config.listen.port})`);
  }
  return Object.freeze(config);
}
