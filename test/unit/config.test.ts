import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/config.ts';
import { makePki } from '../support/pki.ts';
import { baseEnv } from '../support/sidecar.ts';

const pki = makePki();
const scratch = mkdtempSync(join(tmpdir(), 'phantom-config-'));
const env = (overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
  ...baseEnv(pki, 'http://127.0.0.1:3000', 'https://as.example.com/introspect'),
  ...overrides,
});

function configError(overrides: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env(overrides));
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail('expected a ConfigError');
}

test('defaults follow the documented contract', () => {
  const config = loadConfig(env({ PHANTOM_LISTEN_HOST: undefined, PHANTOM_LISTEN_PORT: undefined, PHANTOM_ADMIN_HOST: undefined, PHANTOM_ADMIN_PORT: undefined, PHANTOM_LOG_LEVEL: undefined }));
  assert.deepEqual(config.listen, { host: '0.0.0.0', port: 8443 });
  assert.deepEqual(config.admin, { host: '0.0.0.0', port: 9090 });
  assert.equal(config.tls.minVersion, 'TLSv1.2');
  assert.equal(config.tls.reloadIntervalSeconds, 60);
  assert.deepEqual(config.tls.paths, { cert: pki.path('server.pem'), key: pki.path('server.key'), clientCa: pki.path('ca.pem'), crl: [] });
  assert.equal(config.tls.crl, undefined);
  assert.equal(config.tls.handshakeTimeoutMs, 10_000);
  assert.equal(config.tls.maxConnectionAgeSeconds, 3600);
  assert.deepEqual(config.http, {
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
    keepAliveTimeoutMs: 50_000,
    maxBodyBytes: 10_485_760,
    allowedMethods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    publicHosts: undefined,
    forwardCookies: false,
    drainTimeoutSeconds: 20,
  });
  assert.deepEqual(config.limits, { maxConcurrentPerClient: 64, maxFailedTokensPerMinute: 60, maxConcurrentIntrospections: 64, maxConcurrentIntrospectionsPerClient: 16, maxConnections: 1000, maxConnectionsPerClient: 256 });
  assert.deepEqual({ ...config.upstream, url: undefined }, { url: undefined, timeoutMs: 30_000, connections: 128, queueTimeoutMs: 1000 });
  assert.equal(config.introspection.timeoutMs, 2000);
  assert.deepEqual(config.cache, { maxEntries: 10_000, maxTtlSeconds: 300, negativeTtlSeconds: 5, negativeMaxEntries: 1000, staleIfErrorSeconds: 0 });
  assert.equal(config.requireBinding, true);
  assert.equal(config.requireTokenType, true);
  assert.deepEqual(config.weakened, []);
  assert.deepEqual(config.requiredScopes, []);
  assert.equal(config.upstreamToken.mode, 'mint');
  assert.ok(config.upstreamToken.mode === 'mint' && config.upstreamToken.alg === 'ES256' && config.upstreamToken.ttlSeconds === 60);
  assert.equal(config.logLevel, 'info');
  assert.ok(Object.isFrozen(config));
});

const expiredCertAndKey = (overrides: Record<string, string | undefined>): Record<string, string | undefined> =>
  overrides.PHANTOM_TLS_CERT === 'EXPIRED'
    ? { ...overrides, PHANTOM_TLS_CERT: pki.path('partner-a-expired.pem'), PHANTOM_TLS_KEY: pki.path('partner-a.key') }
    : overrides;

// 'KEY' stands for an EC P-256 PEM private key.
const ecKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const withKeys = (overrides: Record<string, string | undefined>): Record<string, string | undefined> =>
  Object.fromEntries(Object.entries(overrides).map(([name, value]) => [name, value === 'KEY' ? ecKey : value]));

const bad: [string, Record<string, string | undefined>, RegExp][] = [
  ['PHANTOM_TLS_CERT', { PHANTOM_TLS_CERT: undefined }, /^PHANTOM_TLS_CERT: is required$/],
  ['PHANTOM_TLS_CERT', { PHANTOM_TLS_CERT: '/nonexistent.pem' }, /cannot read \/nonexistent\.pem \(ENOENT\)/],
  ['PHANTOM_TLS_KEY', { PHANTOM_TLS_KEY: pki.path('partner-a.key') }, /does not match the certificate/],
  ['PHANTOM_TLS_CLIENT_CA', { PHANTOM_TLS_CLIENT_CA: pki.path('server.key') }, /holds no PEM certificate/],
  ['PHANTOM_TLS_MIN_VERSION', { PHANTOM_TLS_MIN_VERSION: 'TLSv1.1' }, /must be one of TLSv1\.2, TLSv1\.3/],
  ['PHANTOM_TLS_CERT', { PHANTOM_TLS_CERT: '' }, /is required/],
  ['PHANTOM_TLS_CERT', { PHANTOM_TLS_CERT: 'EXPIRED' }, /expired on/],
  ['PHANTOM_TLS_RELOAD_INTERVAL_S', { PHANTOM_TLS_RELOAD_INTERVAL_S: 'often' }, /whole number/],
  ['PHANTOM_LISTEN_PORT', { PHANTOM_LISTEN_PORT: '70000' }, /between 0 and 65535/],
  ['PHANTOM_LISTEN_PORT', { PHANTOM_LISTEN_PORT: '80a' }, /whole number/],
  ['PHANTOM_UPSTREAM_URL', { PHANTOM_UPSTREAM_URL: 'not a url' }, /not a valid absolute URL/],
  ['PHANTOM_UPSTREAM_URL', { PHANTOM_UPSTREAM_URL: 'ftp://x' }, /must use http or https/],
  ['PHANTOM_INTROSPECTION_URL', { PHANTOM_INTROSPECTION_URL: 'http://as.example.com/introspect' }, /must use https, got http/],
  ['PHANTOM_INTROSPECTION_URL', { PHANTOM_INTROSPECTION_URL: 'https://u:p@as.example.com/i' }, /must not carry credentials/],
  ['PHANTOM_INTROSPECTION_CLIENT_ID', { PHANTOM_INTROSPECTION_CLIENT_ID: '' }, /is required/],
  ['PHANTOM_INTROSPECTION_CLIENT_SECRET', { PHANTOM_INTROSPECTION_CLIENT_SECRET: undefined }, /is required \(or PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE\)/],
  ['PHANTOM_REQUIRE_BINDING', { PHANTOM_REQUIRE_BINDING: 'maybe' }, /must be true or false/],
  ['PHANTOM_UPSTREAM_TOKEN', { PHANTOM_UPSTREAM_TOKEN: 'forward' }, /must be one of mint, as-jwt/],
  ['PHANTOM_JWT_ISSUER', { PHANTOM_JWT_ISSUER: undefined }, /is required/],
  ['PHANTOM_JWT_ALG', { PHANTOM_JWT_ALG: 'RS256' }, /must be one of ES256, PS256, EdDSA/],
  ['PHANTOM_JWT_ALG', { PHANTOM_JWT_ALG: 'HS256' }, /must be one of/],
  ['PHANTOM_JWT_SIGNING_KEY', { PHANTOM_JWT_SIGNING_KEY: 'not a key' }, /is not a PEM private key/],
  ['PHANTOM_CACHE_MAX_TTL_S', { PHANTOM_CACHE_MAX_TTL_S: '-1' }, /whole number/],
  ['PHANTOM_EXPECTED_AUDIENCE', { PHANTOM_EXPECTED_AUDIENCE: undefined }, /^PHANTOM_EXPECTED_AUDIENCE: is required \(or PHANTOM_ALLOW_ANY_AUDIENCE=true/],
  ['PHANTOM_ALLOW_ANY_AUDIENCE', { PHANTOM_ALLOW_ANY_AUDIENCE: 'true' }, /cannot be true while PHANTOM_EXPECTED_AUDIENCE is set/],
  ['PHANTOM_EXPECTED_AUDIANCE', { PHANTOM_EXPECTED_AUDIANCE: 'https://x' }, /^PHANTOM_EXPECTED_AUDIANCE: is not a known setting \(did you mean PHANTOM_EXPECTED_AUDIENCE\?\)$/],
  ['PHANTOM_MAX_BODY_BYTE', { PHANTOM_MAX_BODY_BYTE: '1' }, /did you mean PHANTOM_MAX_BODY_BYTES\?/],
  ['PHANTOM_REQUEST_TIMEOUT_MS', { PHANTOM_HEADERS_TIMEOUT_MS: '5000', PHANTOM_REQUEST_TIMEOUT_MS: '1000' }, /must not be below PHANTOM_HEADERS_TIMEOUT_MS/],
  ['PHANTOM_ALLOWED_METHODS', { PHANTOM_ALLOWED_METHODS: 'GET TRACE' }, /"TRACE" is not one of/],
  ['PHANTOM_ALLOWED_METHODS', { PHANTOM_ALLOWED_METHODS: 'GET CONNECT' }, /"CONNECT" is not one of/],
  ['PHANTOM_PUBLIC_HOSTS', { PHANTOM_PUBLIC_HOSTS: 'api.example.com https://x' }, /is not a host as a Host header carries it/],
  ['PHANTOM_PUBLIC_HOSTS', { PHANTOM_PUBLIC_HOSTS: 'api.example.com:443' }, /without :443/],
  ['PHANTOM_MAX_CONCURRENT_PER_CLIENT', { PHANTOM_MAX_CONCURRENT_PER_CLIENT: '0' }, /between 1 and/],
  ['PHANTOM_TLS_CLIENT_CRL', { PHANTOM_TLS_CLIENT_CRL: pki.path('ca.pem') }, /a file holds no PEM CRL/],
  ['PHANTOM_INTROSPECTION_AUTH', { PHANTOM_INTROSPECTION_AUTH: 'client_secret_jwt' }, /must be one of client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth, self_signed_tls_client_auth/],
  ['PHANTOM_INTROSPECTION_CLIENT_SECRET', { PHANTOM_INTROSPECTION_AUTH: 'private_key_jwt' }, /does not belong to PHANTOM_INTROSPECTION_AUTH=private_key_jwt/],
  ['PHANTOM_INTROSPECTION_CLIENT_CERT', { PHANTOM_INTROSPECTION_CLIENT_CERT: '/x.pem' }, /does not belong to PHANTOM_INTROSPECTION_AUTH=client_secret_basic/],
  ['PHANTOM_INTROSPECTION_CLIENT_KEY', { PHANTOM_INTROSPECTION_AUTH: 'private_key_jwt', PHANTOM_INTROSPECTION_CLIENT_SECRET: '', PHANTOM_AS_ISSUER: 'https://as' }, /is required/],
  ['PHANTOM_AS_ISSUER', { PHANTOM_INTROSPECTION_AUTH: 'private_key_jwt', PHANTOM_INTROSPECTION_CLIENT_SECRET: '', PHANTOM_INTROSPECTION_CLIENT_KEY: 'KEY' }, /is required for private_key_jwt/],
  ['PHANTOM_INTROSPECTION_CLIENT_KEY', { PHANTOM_INTROSPECTION_AUTH: 'private_key_jwt', PHANTOM_INTROSPECTION_CLIENT_SECRET: '', PHANTOM_AS_ISSUER: 'https://as', PHANTOM_INTROSPECTION_CLIENT_KEY: 'KEY', PHANTOM_INTROSPECTION_CLIENT_KEY_ALG: 'EdDSA' }, /PHANTOM_INTROSPECTION_CLIENT_KEY_ALG=EdDSA needs an Ed25519 key/],
  ['PHANTOM_INTROSPECTION_CLIENT_KEY_ALG', { PHANTOM_INTROSPECTION_AUTH: 'private_key_jwt', PHANTOM_INTROSPECTION_CLIENT_SECRET: '', PHANTOM_AS_ISSUER: 'https://as', PHANTOM_INTROSPECTION_CLIENT_KEY: 'KEY', PHANTOM_INTROSPECTION_CLIENT_KEY_ALG: 'RS256' }, /must be one of ES256, PS256, EdDSA/],
  ['PHANTOM_INTROSPECTION_CLIENT_CERT_KEY', { PHANTOM_INTROSPECTION_AUTH: 'tls_client_auth', PHANTOM_INTROSPECTION_CLIENT_SECRET: '', PHANTOM_INTROSPECTION_CLIENT_CERT: pki.path('partner-a.pem'), PHANTOM_INTROSPECTION_CLIENT_CERT_KEY: pki.path('partner-b.key') }, /does not match the certificate/],
  ['PHANTOM_AS_JWKS_URL', { PHANTOM_INTROSPECTION_RESPONSE: 'jwt', PHANTOM_EXPECTED_ISSUER: 'https://as' }, /is required for PHANTOM_INTROSPECTION_RESPONSE=jwt/],
  ['PHANTOM_AS_ISSUER', { PHANTOM_INTROSPECTION_RESPONSE: 'jwt', PHANTOM_AS_JWKS_URL: 'https://as/jwks' }, /it is the answer's iss/],
  ['PHANTOM_INTROSPECTION_RESPONSE', { PHANTOM_INTROSPECTION_RESPONSE: 'jwt', PHANTOM_AS_ISSUER: 'https://as', PHANTOM_UPSTREAM_TOKEN: 'as-jwt' }, /does not go with PHANTOM_UPSTREAM_TOKEN=as-jwt/],
  ['PHANTOM_AS_ISSUER', { PHANTOM_AS_ISSUER: 'http://as.example.com' }, /must be an https URL without query or fragment/],
  ['PHANTOM_INTROSPECTION_URL', { PHANTOM_INTROSPECTION_URL: undefined }, /is required/],
  ['PHANTOM_SENDER_CONSTRAINTS', { PHANTOM_SENDER_CONSTRAINTS: 'mtls bearer' }, /must be mtls, dpop or "mtls dpop", got "bearer"/],
  ['PHANTOM_PUBLIC_HOSTS', { PHANTOM_SENDER_CONSTRAINTS: 'dpop' }, /is required when PHANTOM_SENDER_CONSTRAINTS accepts dpop/],
  ['PHANTOM_DPOP_ALGS', { PHANTOM_DPOP_ALGS: 'ES256 HS256' }, /"HS256" is not one of/],
  ['PHANTOM_DPOP_ALGS', { PHANTOM_DPOP_ALGS: 'none' }, /"none" is not one of/],
  ['PHANTOM_DPOP_NONCE_SECRET', { PHANTOM_SENDER_CONSTRAINTS: 'dpop', PHANTOM_PUBLIC_HOSTS: 'api.example.com', PHANTOM_DPOP_NONCE: 'true' }, /is required/],
  ['PHANTOM_DPOP_NONCE_SECRET', { PHANTOM_DPOP_NONCE: 'true', PHANTOM_DPOP_NONCE_SECRET: 'short' }, /at least 32 bytes/],
  ['PHANTOM_RESOURCE', { PHANTOM_RESOURCE: 'http://api.example.com' }, /must use https/],
  ['PHANTOM_RESOURCE', { PHANTOM_RESOURCE: 'https://api.example.com/?x=1' }, /no query or fragment/],
  ['PHANTOM_TRUSTED_PROXY_CERT_X5T', { PHANTOM_CLIENT_CERT_SOURCE: 'header' }, /or PHANTOM_TRUSTED_PROXY_CA is required/],
  ['PHANTOM_TRUSTED_PROXY_CERT_X5T', { PHANTOM_CLIENT_CERT_SOURCE: 'header', PHANTOM_TRUSTED_PROXY_CERT_X5T: 'abc' }, /is not a base64url SHA-256 thumbprint/],
  ['PHANTOM_TRUSTED_PROXY_CERT_X5T', { PHANTOM_TRUSTED_PROXY_CERT_X5T: 'A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0' }, /belongs to PHANTOM_CLIENT_CERT_SOURCE=header/],
  ['PHANTOM_REQUIRED_SCOPES', { PHANTOM_REQUIRED_SCOPES: 'accounts', PHANTOM_POLICY_FILE: '/nonexistent.yaml' }, /goes with no PHANTOM_POLICY_FILE/],
  ['PHANTOM_POLICY_FILE', { PHANTOM_POLICY_FILE: '/nonexistent.yaml' }, /cannot read \/nonexistent\.yaml \(ENOENT\)/],
  ['PHANTOM_ADMIN_PORT', { PHANTOM_LISTEN_PORT: '8443', PHANTOM_ADMIN_PORT: '8443', PHANTOM_ADMIN_HOST: '127.0.0.1' }, /must differ from PHANTOM_LISTEN_PORT/],
  ['PHANTOM_LOG_LEVEL', { PHANTOM_LOG_LEVEL: 'loud' }, /must be one of/],
];
for (const [variable, overrides, message] of bad) {
  test(`${variable}: ${message.source}`, () => {
    const error = configError(withKeys(expiredCertAndKey(overrides)));
    assert.ok(error.variable === variable || error.variable === `${variable}_FILE`, error.variable);
    assert.match(error.message, new RegExp(`^${variable}`));
    assert.match(error.message, message);
  });
}

test('the JWT signing key must fit the algorithm', () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  assert.match(configError({ PHANTOM_JWT_SIGNING_KEY: ec, PHANTOM_JWT_ALG: 'EdDSA' }).message, /PHANTOM_JWT_ALG=EdDSA needs an Ed25519 key, got ec/);
  assert.match(configError({ PHANTOM_JWT_SIGNING_KEY: ed, PHANTOM_JWT_ALG: 'PS256' }).message, /needs an RSA key/);
  assert.match(configError({ PHANTOM_JWT_SIGNING_KEY: p384 }).message, /needs an EC P-256 key/);
  const fits = loadConfig(env({ PHANTOM_JWT_SIGNING_KEY: ed, PHANTOM_JWT_ALG: 'EdDSA' }));
  assert.equal(fits.upstreamToken.mode === 'mint' && fits.upstreamToken.signingKey?.asymmetricKeyType, 'ed25519');
});

test('secrets come from <NAME>_FILE with the trailing newline dropped, never both ways', () => {
  const file = join(scratch, 'secret');
  writeFileSync(file, 's3cr3t value\n');
  const config = loadConfig(env({ PHANTOM_INTROSPECTION_CLIENT_SECRET: undefined, PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE: file }));
  assert.deepEqual(config.introspection.auth, { method: 'client_secret_basic', secret: 's3cr3t value' });
  assert.match(configError({ PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE: file }).message, /set either PHANTOM_INTROSPECTION_CLIENT_SECRET or PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE, not both/);
  const empty = join(scratch, 'empty');
  writeFileSync(empty, '\n');
  assert.match(configError({ PHANTOM_INTROSPECTION_CLIENT_SECRET: undefined, PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE: empty }).message, /is empty/);
  const keyFile = join(scratch, 'jwt.key');
  writeFileSync(keyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const withKey = loadConfig(env({ PHANTOM_JWT_SIGNING_KEY_FILE: keyFile }));
  assert.equal(withKey.upstreamToken.mode === 'mint' && withKey.upstreamToken.signingKey?.asymmetricKeyType, 'ec');
});

test('as-jwt mode needs no JWT issuer or audience; scopes split on spaces', () => {
  const config = loadConfig(env({ PHANTOM_UPSTREAM_TOKEN: 'as-jwt', PHANTOM_JWT_ISSUER: undefined, PHANTOM_REQUIRED_SCOPES: ' accounts  payments ' }));
  assert.deepEqual(config.upstreamToken, { mode: 'as-jwt' });
  assert.deepEqual(config.requiredScopes, ['accounts', 'payments']);
});

test('the process stops with exit code 2 and one line naming the variable, never the secret', () => {
  const main = new URL('../../src/main.ts', import.meta.url).pathname;
  const secret = 'top-secret-value-123';
  const result = spawnSync(process.execPath, [main], {
    env: { ...env({ PHANTOM_UPSTREAM_URL: 'ftp://nope', PHANTOM_INTROSPECTION_CLIENT_SECRET: secret }), PATH: process.env.PATH },
    encoding: 'utf8',
  });
  assert.equal(result.status, 2);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] ?? '', /^phantom-sidecar: PHANTOM_UPSTREAM_URL: must use http or https, got ftp$/);
  assert.ok(!`${result.stdout}${result.stderr}`.includes(secret));
});

test('a bad signing key is reported without echoing it', () => {
  const main = new URL('../../src/main.ts', import.meta.url).pathname;
  const keyLike = '-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----';
  const result = spawnSync(process.execPath, [main], { env: { ...env({ PHANTOM_JWT_SIGNING_KEY: keyLike }), PATH: process.env.PATH }, encoding: 'utf8' });
  assert.equal(result.status, 2);
  assert.equal(result.stderr.trim(), 'phantom-sidecar: PHANTOM_JWT_SIGNING_KEY: is not a PEM private key');
});

test('every setting that loosens a check is listed, to be logged at start-up', () => {
  const config = loadConfig(env({
    PHANTOM_EXPECTED_AUDIENCE: undefined,
    PHANTOM_ALLOW_ANY_AUDIENCE: 'true',
    PHANTOM_REQUIRE_BINDING: 'false',
    PHANTOM_REQUIRE_TOKEN_TYPE: 'false',
    PHANTOM_FORWARD_COOKIES: 'true',
  }));
  assert.equal(config.expectedAudience, undefined);
  assert.deepEqual(config.weakened, ['PHANTOM_ALLOW_ANY_AUDIENCE=true', 'PHANTOM_REQUIRE_BINDING=false', 'PHANTOM_REQUIRE_TOKEN_TYPE=false', 'PHANTOM_FORWARD_COOKIES=true']);
});

test('the listener settings are read as documented', () => {
  const config = loadConfig(env({ PHANTOM_PUBLIC_HOSTS: 'API.example.com  api.example.com:8443', PHANTOM_ALLOWED_METHODS: 'GET POST GET', PHANTOM_MAX_BODY_BYTES: '0' }));
  assert.deepEqual(config.http.publicHosts, ['api.example.com', 'api.example.com:8443']);
  assert.deepEqual(config.http.allowedMethods, ['GET', 'POST']);
  assert.equal(config.http.maxBodyBytes, 0);
});

test('every known variable is documented in the README configuration table', async () => {
  const { KNOWN_VARIABLES } = await import('../../src/config/env.ts');
  const { readFileSync } = await import('node:fs');
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const missing = [...KNOWN_VARIABLES].filter((name) => !name.endsWith('_FILE') && !readme.includes(`\`${name}\``));
  assert.deepEqual(missing, []);
});

test('an unknown variable outside PHANTOM_ is none of the sidecar\'s business', () => {
  assert.doesNotThrow(() => loadConfig(env({ PHANTOMS: 'x', OTHER_PHANTOM_THING: 'y' })));
});

test('with PHANTOM_AS_ISSUER the introspection URL is optional, the issuer is expected, and the key\'s algorithm is the default', () => {
  const config = loadConfig(withKeys(env({
    PHANTOM_INTROSPECTION_URL: undefined,
    PHANTOM_AS_ISSUER: 'https://as.example.com',
    PHANTOM_INTROSPECTION_AUTH: 'private_key_jwt',
    PHANTOM_INTROSPECTION_CLIENT_SECRET: undefined,
    PHANTOM_INTROSPECTION_CLIENT_KEY: 'KEY',
    PHANTOM_INTROSPECTION_RESPONSE: 'jwt',
  })));
  assert.equal(config.introspection.url, undefined);
  assert.equal(config.expectedIssuer, 'https://as.example.com');
  assert.equal(config.introspection.asIdentifier, 'https://as.example.com');
  assert.ok(config.introspection.auth.method === 'private_key_jwt' && config.introspection.auth.alg === 'ES256');
  assert.equal(config.introspection.response, 'jwt');
});

test('the fleet needs a sealing key of at least 32 bytes, and the key goes with PHANTOM_REDIS_URL', () => {
  const redis = { PHANTOM_REDIS_URL: 'redis://127.0.0.1:6379' };
  assert.equal(configError(redis).variable, 'PHANTOM_REDIS_KEY');
  const short = configError({ ...redis, PHANTOM_REDIS_KEY: 'too-short-secret' });
  assert.equal(short.variable, 'PHANTOM_REDIS_KEY');
  assert.ok(!short.message.includes('too-short-secret'), 'the secret is never echoed');
  assert.equal(configError({ PHANTOM_REDIS_KEY: 'k'.repeat(32) }).variable, 'PHANTOM_REDIS_KEY');
  assert.equal(configError({ ...redis, PHANTOM_REDIS_KEY: 'k'.repeat(32), PHANTOM_REDIS_PREVIOUS_KEY: 'k'.repeat(32) }).variable, 'PHANTOM_REDIS_PREVIOUS_KEY');
  const config = loadConfig(env({ ...redis, PHANTOM_REDIS_KEY: 'k'.repeat(32), PHANTOM_REDIS_PREVIOUS_KEY: 'p'.repeat(40) }));
  assert.equal(config.fleet.redis?.key.toString(), 'k'.repeat(32));
  assert.equal(config.fleet.redis?.previousKey?.toString(), 'p'.repeat(40));
});

test('the AS is named by one issuer identifier: PHANTOM_AS_ISSUER and PHANTOM_EXPECTED_ISSUER, when both are set, must agree', () => {
  const both = { PHANTOM_AS_ISSUER: 'https://as.example.com', PHANTOM_INTROSPECTION_URL: 'https://as.example.com/introspect' };
  assert.equal(configError({ ...both, PHANTOM_EXPECTED_ISSUER: 'https://other.example.com' }).variable, 'PHANTOM_EXPECTED_ISSUER');
  const agreed = loadConfig(env({ ...both, PHANTOM_EXPECTED_ISSUER: 'https://as.example.com' }));
  assert.equal(agreed.expectedIssuer, 'https://as.example.com');
  assert.equal(agreed.introspection.asIdentifier, 'https://as.example.com');
  const expectedOnly = loadConfig(env({ PHANTOM_EXPECTED_ISSUER: 'https://as.example.com' }));
  assert.equal(expectedOnly.introspection.asIdentifier, expectedOnly.expectedIssuer);
});

test('decision mode: the partner certificate from a trusted gateway, no upstream, the JWT header named', () => {
  const decision = { PHANTOM_MODE: 'decision', PHANTOM_UPSTREAM_URL: undefined };
  assert.equal(configError(decision).variable, 'PHANTOM_CLIENT_CERT_SOURCE');
  const gateway = { ...decision, PHANTOM_CLIENT_CERT_SOURCE: 'header', PHANTOM_TRUSTED_PROXY_CERT_X5T: 'A'.repeat(43), PHANTOM_CLIENT_CERT_HEADER_FORMAT: 'nginx' };
  const config = loadConfig(env(gateway));
  assert.equal(config.mode, 'decision');
  assert.equal(config.upstream, undefined);
  assert.deepEqual(config.decision, { jwtHeader: 'authorization', grpcPort: undefined, pathPrefix: '' });
  assert.equal(loadConfig(env({ ...gateway, PHANTOM_DECISION_PATH_PREFIX: '/ext-authz' })).decision?.pathPrefix, '/ext-authz');
  assert.equal(configError({ ...gateway, PHANTOM_DECISION_PATH_PREFIX: 'ext-authz/' }).variable, 'PHANTOM_DECISION_PATH_PREFIX');
  assert.ok(config.clientCert.source === 'header' && config.clientCert.format === 'nginx' && config.clientCert.header === 'x-ssl-client-cert');
  assert.equal(configError({ ...gateway, PHANTOM_UPSTREAM_URL: 'http://127.0.0.1:3000' }).variable, 'PHANTOM_UPSTREAM_URL');
  assert.equal(loadConfig(env({ ...gateway, PHANTOM_DECISION_JWT_HEADER: 'X-Phantom-JWT' })).decision?.jwtHeader, 'x-phantom-jwt');
  assert.equal(configError({ ...gateway, PHANTOM_DECISION_JWT_HEADER: 'bad header' }).variable, 'PHANTOM_DECISION_JWT_HEADER');
  assert.equal(configError({ PHANTOM_DECISION_JWT_HEADER: 'x-jwt' }).variable, 'PHANTOM_DECISION_JWT_HEADER');
});
