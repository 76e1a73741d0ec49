// How the sidecar proves to the authorization server who it is, on every introspection call.
// A method may add headers (client_secret_basic), form parameters (client_secret_post, a
// fresh private_key_jwt assertion) or a client certificate on the connection (RFC 8705
// tls_client_auth and self_signed_tls_client_auth).
import { createHash, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { calculateJwkThumbprint } from 'jose/jwk/thumbprint';
import { SignJWT } from 'jose/jwt/sign';
import type { Logger } from 'pino';
import { readClientCertificate, type Config, type JwtAlg } from '../config/config.ts';
import { WatchedFiles } from '../config/watched-files.ts';

export interface Credentials {
  headers: Record<string, string>;
  form: Record<string, string>;
}

export interface ClientTls {
  cert?: string;
  key?: string;
  /** Changes when the certificate is renewed, so that new connections present the new one. */
  version: string;
}

export interface ClientAuthentication {
  /** For one call: never reused, since an assertion must not be sent twice. */
  credentials(): Credentials | Promise<Credentials>;
  tls(): ClientTls;
  close?(): void;
}

const NO_CLIENT_CERTIFICATE: ClientTls = { version: 'none' };

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined and encoded. */
export function basicCredentials(clientId: string, clientSecret: string): string {
  const encode = (value: string): string => new URLSearchParams({ v: value }).toString().slice(2);
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`;
}

export function clientSecretBasic(clientId: string, secret: string): ClientAuthentication {
  const credentials: Credentials = { headers: { authorization: basicCredentials(clientId, secret) }, form: {} };
  return { credentials: () => credentials, tls: () => NO_CLIENT_CERTIFICATE };
}

/** RFC 6749 §2.3.1: the id and secret in the form body. */
export function clientSecretPost(clientId: string, secret: string): ClientAuthentication {
  const credentials: Credentials = { headers: {}, form: { client_id: clientId, client_secret: secret } };
  return { credentials: () => credentials, tls: () => NO_CLIENT_CERTIFICATE };
}

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ASSERTION_LIFETIME_SECONDS = 60;

/**
 * RFC 7523 §2.2 / OIDC Core §9 private_key_jwt, as FAPI 2.0 §5.3.2.1 wants it: a fresh
 * assertion per call (unique jti, exp 60 s after iat), aud the AS's issuer identifier,
 * iss = sub = the client id; kid the key's RFC 7638 thumbprint unless configured.
 */
export function privateKeyJwt(clientId: string, settings: { key: KeyObject; alg: JwtAlg; keyId: string | undefined }, audience: string): ClientAuthentication {
  let kid: Promise<string> | undefined;
  const keyId = (): Promise<string> => {
    kid ??= settings.keyId !== undefined ? Promise.resolve(settings.keyId) : calculateJwkThumbprint(createPublicKey(settings.key).export({ format: 'jwk' }) as JWK);
    return kid;
  };
  return {
    async credentials() {
      const nowSeconds = Math.floor(Date.now() / 1000);
      const assertion = await new SignJWT({})
        .setProtectedHeader({ alg: settings.alg, kid: await keyId(), typ: 'JWT' })
        .setIssuer(clientId)
        .setSubject(clientId)
        .setAudience(audience)
        .setJti(randomUUID())
        .setIssuedAt(nowSeconds)
        .setExpirationTime(nowSeconds + ASSERTION_LIFETIME_SECONDS)
        .sign(settings.key);
      return { headers: {}, form: { client_id: clientId, client_assertion_type: ASSERTION_TYPE, client_assertion: assertion } };
    },
    tls: () => NO_CLIENT_CERTIFICATE,
  };
}

/**
 * RFC 8705 §2 tls_client_auth and self_signed_tls_client_auth: the sidecar's own certificate
 * on the connection, the client id in the body. The files are re-read on change (cert-manager
 * renews them in place); a pair that does not check out is logged and the current one kept.
 */
export function tlsClientAuth(clientId: string, paths: { certPath: string; keyPath: string }, reloadIntervalSeconds: number, logger: Logger): ClientAuthentication {
  const read = (): ClientTls => {
    const { cert, key } = readClientCertificate(paths.certPath, paths.keyPath);
    return { cert, key, version: createHash('sha256').update(cert).update(key).digest('base64url') };
  };
  let current = read();
  const watched = new WatchedFiles({
    paths: [paths.certPath, paths.keyPath],
    intervalSeconds: reloadIntervalSeconds,
    read,
    changed: (next) => {
      current = next;
      logger.info('client certificate for the authorization server reloaded');
    },
    what: 'client certificate files',
  }, logger);
  watched.start();
  const credentials: Credentials = { headers: {}, form: { client_id: clientId } };
  return { credentials: () => credentials, tls: () => current, close: () => watched.stop() };
}

export function clientAuthentication(settings: Config['introspection'], reloadIntervalSeconds: number, logger: Logger): ClientAuthentication {
  const { auth, clientId } = settings;
  switch (auth.method) {
    case 'client_secret_basic':
      return clientSecretBasic(clientId, auth.secret);
    case 'client_secret_post':
      return clientSecretPost(clientId, auth.secret);
    case 'private_key_jwt':
      // Configuration refuses private_key_jwt without an issuer identifier.
      return privateKeyJwt(clientId, auth, settings.asIdentifier ?? '');
    case 'tls_client_auth':
    case 'self_signed_tls_client_auth':
      return tlsClientAuth(clientId, auth, reloadIntervalSeconds, logger);
  }
}
