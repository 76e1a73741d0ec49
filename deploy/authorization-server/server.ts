// DEVELOPMENT AUTHORIZATION SERVER - NOT FOR PRODUCTION.
//
// oidc-provider configured as the authorization server a FAPI partner meets: an HTTPS
// token endpoint with mutual-TLS client authentication (RFC 8705 tls_client_auth, matched
// on subject DN or SAN), certificate-bound client_credentials tokens that are opaque,
// RFC 7662 introspection for the sidecar's client only, RFC 7009 revocation and a JWKS.
// Keys are generated per process and every token lives in memory.
import { X509Certificate, createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import Provider, { type Configuration, type KoaContextWithOIDC } from 'oidc-provider';

export interface PartnerClient {
  clientId: string;
  /** RFC 4514 subject, e.g. "CN=partner-a,O=Partner A Ltd" (tls_client_auth_subject_dn). */
  subjectDn?: string;
  /** A dNSName SAN of the certificate (tls_client_auth_san_dns). */
  sanDns?: string;
  scope: string;
  /** Tokens bound to a DPoP key (RFC 9449) instead of the certificate. */
  dpop?: boolean;
}

/**
 * A client allowed to introspect, by how it authenticates: a secret (client_secret_basic or
 * _post), a public JWK (private_key_jwt), a subject DN (tls_client_auth) or a self-signed
 * certificate (self_signed_tls_client_auth).
 */
export type IntrospectorClient =
  | { clientId: string; method?: 'client_secret_basic' | 'client_secret_post'; clientSecret: string }
  | { clientId: string; method: 'private_key_jwt'; publicJwk: Record<string, unknown> }
  | { clientId: string; method: 'tls_client_auth'; subjectDn: string }
  | { clientId: string; method: 'self_signed_tls_client_auth'; certificate: string };

function introspectorMetadata(client: IntrospectorClient): Record<string, unknown> {
  const base = { client_id: client.clientId, grant_types: [], response_types: [], redirect_uris: [] };
  switch (client.method) {
    case undefined:
    case 'client_secret_basic':
    case 'client_secret_post':
      return { ...base, client_secret: client.clientSecret, token_endpoint_auth_method: client.method ?? 'client_secret_basic' };
    case 'private_key_jwt':
      return { ...base, token_endpoint_auth_method: 'private_key_jwt', token_endpoint_auth_signing_alg: 'ES256', jwks: { keys: [client.publicJwk] } };
    case 'tls_client_auth':
      return { ...base, token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: client.subjectDn };
    case 'self_signed_tls_client_auth': {
      // RFC 8705 §2.2: the certificate is registered as an x5c of a JWK in the client's set.
      const certificate = new X509Certificate(client.certificate);
      const jwk = certificate.publicKey.export({ format: 'jwk' });
      return { ...base, token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [{ ...jwk, x5c: [certificate.raw.toString('base64')] }] } };
    }
  }
}

export interface AuthorizationServerOptions {
  host: string;
  port: number;
  /** Defaults to https://localhost:<port>. */
  issuer?: string;
  tls: { cert: string; key: string; clientCa: string };
  /** The sidecar's own client (and any more, for tests of each authentication method). */
  introspector: IntrospectorClient;
  moreIntrospectors?: IntrospectorClient[];
  /** The AS's signing keys, private JWKs, the first one used (default: a fresh ES256 key). */
  signingKeys?: Record<string, unknown>[];
  /** The resource (API) the tokens are for: their `aud`. */
  audience: string;
  partners: PartnerClient[];
  accessTokenTtlSeconds?: number;
  /** Client authentication methods the AS takes (default: all five of RFC 6749, 7523 and 8705). */
  clientAuthMethods?: string[];
}

export interface RunningAuthorizationServer {
  issuer: string;
  tokenUrl: string;
  introspectionUrl: string;
  revocationUrl: string;
  /** Requests seen per endpoint path, for tests that count introspection calls. */
  readonly requests: Map<string, number>;
  /** The oidc-provider instance, for tests that need a token no grant of this AS issues. */
  readonly provider: Provider;
  /**
   * Shared Signals push receivers (RFC 8935): every revoked or destroyed access token is sent to
   * each as a signed SET. Empty: no events (add receivers any time).
   */
  readonly ssfReceivers: string[];
  /** Push outcomes, for the demo and the tests: the HTTP status of each delivery. */
  readonly ssfDeliveries: number[];
  stop(): Promise<void>;
}

/** Tokens asking for this scope live 2 s: how the demo shows an expired token. */
export const SHORT_LIVED_SCOPE = 'short-lived';
const SHORT_TTL_SECONDS = 2;

function socketOf(ctx: KoaContextWithOIDC): TLSSocket {
  return ctx.req.socket as TLSSocket;
}

function normalisedDn(dn: string): string[] {
  return dn.split(/[,\n]/).map((part) => part.trim().replace(/\s*=\s*/, '=')).filter(Boolean).sort();
}

function subjectMatches(certificate: X509Certificate, property: string, expected: string): boolean {
  if (property === 'tls_client_auth_subject_dn') {
    return normalisedDn(certificate.subject).join(',') === normalisedDn(expected).join(',');
  }
  if (property === 'tls_client_auth_san_dns') {
    return (certificate.subjectAltName ?? '').split(', ').includes(`DNS:${expected}`);
  }
  return false;
}

function introspectors(options: AuthorizationServerOptions): IntrospectorClient[] {
  return [options.introspector, ...(options.moreIntrospectors ?? [])];
}

function signingJwks(): { keys: Record<string, unknown>[] } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), alg: 'ES256', use: 'sig' }] };
}

function providerConfiguration(options: AuthorizationServerOptions): Configuration {
  // offline_access: like a real AS, this one knows refresh tokens (and introspects them),
  // which is how the sidecar's refusal of a refresh token is tested.
  const scopes = new Set<string>([SHORT_LIVED_SCOPE, 'openid', 'offline_access']);
  for (const partner of options.partners) for (const scope of partner.scope.split(' ')) scopes.add(scope);
  const resourceScope = [...scopes].join(' ');
  const ttl = options.accessTokenTtlSeconds ?? 300;
  return {
    clients: [
      ...options.partners.map((partner) => ({
        client_id: partner.clientId,
        token_endpoint_auth_method: 'tls_client_auth',
        ...(partner.subjectDn === undefined ? {} : { tls_client_auth_subject_dn: partner.subjectDn }),
        ...(partner.sanDns === undefined ? {} : { tls_client_auth_san_dns: partner.sanDns }),
        // One token is bound one way: to the certificate, or to the DPoP key of the request.
        tls_client_certificate_bound_access_tokens: partner.dpop !== true,
        ...(partner.dpop === true ? { dpop_bound_access_tokens: true } : {}),
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: `${partner.scope} ${SHORT_LIVED_SCOPE}`,
      })),
      ...introspectors(options).map(introspectorMetadata),
    ],
    clientAuthMethods: options.clientAuthMethods ?? ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'],
    // The signing keys are ES256 (FAPI 2.0 forbids RS256); clients default to it, and so do
    // RFC 9701 signed introspection answers (given to whoever asks for one).
    clientDefaults: { id_token_signed_response_alg: 'ES256', introspection_signed_response_alg: 'ES256' },
    scopes: [...scopes],
    jwks: (options.signingKeys === undefined ? signingJwks() : { keys: options.signingKeys }) as Configuration['jwks'],
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      revocation: { enabled: true, allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId },
      introspection: {
        enabled: true,
        // Only the sidecar's own client may introspect; partners cannot probe tokens.
        allowedPolicy: async (_ctx, client) => introspectors(options).some((introspector) => introspector.clientId === client.clientId),
      },
      jwtIntrospection: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        getCertificate: (ctx) => socketOf(ctx).getPeerX509Certificate(),
        certificateAuthorized: (ctx) => socketOf(ctx).authorized,
        certificateSubjectMatches: (ctx, property, expected) => {
          const certificate = socketOf(ctx).getPeerX509Certificate();
          return certificate !== undefined && subjectMatches(certificate, property, expected);
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => options.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: resourceScope, audience: options.audience, accessTokenFormat: 'opaque' }),
      },
    },
    ttl: {
      ClientCredentials: (_ctx, token) => (token.scope?.split(' ').includes(SHORT_LIVED_SCOPE) ? SHORT_TTL_SECONDS : ttl),
    },
  } as Configuration;
}

const SSF_JWKS_PATH = '/ssf/jwks';
const TOKEN_REVOKED = 'urn:phantom-sidecar:secevent:token-revoked';

/** The AS as a Shared Signals transmitter: its own signing key, and SETs for revoked tokens. */
async function shippingSignals(): Promise<{ jwks: { keys: JWK[] }; sign(issuer: string, audience: string, token: string): Promise<string> }> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return {
    jwks: { keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] },
    sign: (issuer, audience, token) =>
      new SignJWT({
        jti: randomBytes(16).toString('base64url'),
        // The token is named by its SHA-256 only: a SET never carries a usable token.
        events: { [TOKEN_REVOKED]: { subject: { format: 'opaque', id: createHash('sha256').update(token).digest('base64url') } } },
      })
        .setProtectedHeader({ alg: 'ES256', typ: 'secevent+jwt', kid })
        .setIssuer(issuer)
        .setAudience(audience)
        .setIssuedAt()
        .sign(privateKey),
  };
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startAuthorizationServer(options: AuthorizationServerOptions): Promise<RunningAuthorizationServer> {
  const requests = new Map<string, number>();
  let handler: ((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void) | undefined;
  // Ask for a certificate without demanding one, so a bad one comes back as invalid_client.
  const server = createServer(
    { cert: options.tls.cert, key: options.tls.key, ca: options.tls.clientCa, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
      requests.set(path, (requests.get(path) ?? 0) + 1);
      if (path === '/.well-known/ssf-configuration' || path === SSF_JWKS_PATH) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(path === SSF_JWKS_PATH ? ssf.jwks : { issuer, jwks_uri: `${issuer}${SSF_JWKS_PATH}`, delivery_methods_supported: ['urn:ietf:rfc:8935'] }));
        return;
      }
      if (handler === undefined) {
        res.statusCode = 503;
        res.end();
        return;
      }
      handler(req, res);
    },
  );
  const ssf = await shippingSignals();
  const port = await listen(server, options.host, options.port);
  const stop = (): Promise<void> =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  const issuer = options.issuer ?? `https://${options.host === '0.0.0.0' ? 'localhost' : options.host}:${port}`;
  let provider: Provider;
  try {
    provider = new Provider(issuer, providerConfiguration(options));
    // Static clients are validated lazily; load them now so bad metadata fails at start-up.
    for (const client of [...options.partners.map((p) => p.clientId), ...introspectors(options).map((i) => i.clientId)]) {
      await provider.Client.find(client);
    }
    handler = provider.callback();
    // A revoked token (RFC 7009) or one otherwise destroyed: a Shared Signals event to every receiver.
    provider.on('access_token.destroyed', (token) => void transmit(token.jti));
    provider.on('client_credentials.destroyed', (token) => void transmit(token.jti));
  } catch (error) {
    await stop();
    throw error;
  }
  const ssfReceivers: string[] = [];
  const ssfDeliveries: number[] = [];
  async function transmit(tokenValue: string): Promise<void> {
    const set = await ssf.sign(issuer, options.audience, tokenValue);
    for (const receiver of ssfReceivers) {
      const status = await fetch(receiver, { method: 'POST', headers: { 'content-type': 'application/secevent+jwt' }, body: set }).then((response) => response.status, () => 0);
      ssfDeliveries.push(status);
    }
  }
  return {
    ssfReceivers,
    ssfDeliveries,
    issuer,
    tokenUrl: `${issuer}/token`,
    introspectionUrl: `${issuer}/token/introspection`,
    revocationUrl: `${issuer}/token/revocation`,
    requests,
    provider,
    stop,
  };
}
