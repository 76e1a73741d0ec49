// The real oidc-provider authorization server of deploy/, and a partner's mTLS token request.
import { createHash, randomUUID, type KeyObject } from 'node:crypto';
import { request } from 'node:https';
import { SignJWT, exportJWK } from 'jose';
import { startAuthorizationServer, type AuthorizationServerOptions, type RunningAuthorizationServer } from '../../deploy/authorization-server/server.ts';
import type { Identity, Pki } from './pki.ts';

export const SIDECAR_CLIENT = { clientId: 'phantom-sidecar', clientSecret: 'sidecar-secret-0123456789' };
export const API_AUDIENCE = 'https://api.example.com';

export function startTestAuthorizationServer(pki: Pki, more: Partial<AuthorizationServerOptions> = {}): Promise<RunningAuthorizationServer> {
  return startAuthorizationServer({
    host: '127.0.0.1',
    port: 0,
    tls: { cert: pki.as.cert, key: pki.as.key, clientCa: pki.ca },
    introspector: SIDECAR_CLIENT,
    audience: API_AUDIENCE,
    partners: [
      { clientId: 'partner-a', subjectDn: 'CN=partner-a,O=Partner A Ltd', scope: 'accounts transactions' },
      { clientId: 'partner-b', sanDns: 'partner-b.example.com', scope: 'accounts' },
      // Partner A's certificate authenticates it; its tokens are bound to a DPoP key.
      { clientId: 'partner-a-dpop', subjectDn: 'CN=partner-a,O=Partner A Ltd', scope: 'accounts transactions', dpop: true },
    ],
    ...more,
  });
}

export interface FormResult {
  status: number;
  body: Record<string, unknown>;
}

/** POSTs a form over mTLS with the partner's certificate (token and revocation endpoints). */
export function postForm(url: string, form: Record<string, string>, identity: Identity, pki: Pki, headers: Record<string, string> = {}): Promise<FormResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        cert: identity.cert,
        key: identity.key,
        ca: pki.ca,
        agent: false,
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) });
        });
      },
    );
    req.on('error', reject);
    req.end(new URLSearchParams(form).toString());
  });
}

export async function partnerToken(as: RunningAuthorizationServer, clientId: string, identity: Identity, pki: Pki, scope = 'accounts'): Promise<string> {
  const { status, body } = await postForm(as.tokenUrl, { grant_type: 'client_credentials', client_id: clientId, scope }, identity, pki);
  if (status !== 200 || typeof body.access_token !== 'string') {
    throw new Error(`token request failed: ${status} ${JSON.stringify(body)}`);
  }
  return body.access_token;
}

/**
 * A real refresh token of the real AS for `clientId`, bound to `identity`'s certificate: what
 * an authorization-code client holds. Made through the provider's own models, since the dev
 * AS serves client_credentials only (which never issues one).
 */
export async function refreshToken(as: RunningAuthorizationServer, clientId: string, identity: Identity): Promise<string> {
  const { provider } = as;
  const client = await provider.Client.find(clientId);
  if (client === undefined) throw new Error(`no client ${clientId}`);
  const grant = new provider.Grant({ clientId, accountId: 'user-1' });
  grant.addOIDCScope('openid offline_access');
  const grantId = await grant.save();
  const token = new provider.RefreshToken({ client, accountId: 'user-1', grantId, scope: 'openid offline_access', gty: 'authorization_code', 'x5t#S256': identity.thumbprint });
  return token.save();
}

/**
 * A DPoP proof (RFC 9449 §4.2) made with jose, as a client library makes it; `claims` and
 * `header` override any member, for the tests that break one rule at a time.
 */
export async function dpopProof(
  key: { privateKey: KeyObject; publicKey: KeyObject },
  htm: string,
  htu: string,
  options: { token?: string; claims?: Record<string, unknown>; header?: Record<string, unknown>; alg?: string } = {},
): Promise<string> {
  const jwk = await exportJWK(key.publicKey);
  const payload: Record<string, unknown> = { htm, htu, jti: randomUUID(), iat: Math.floor(Date.now() / 1000) };
  if (options.token !== undefined) payload.ath = createHash('sha256').update(options.token).digest('base64url');
  return new SignJWT({ ...payload, ...options.claims })
    .setProtectedHeader({ alg: options.alg ?? 'ES256', typ: 'dpop+jwt', jwk, ...options.header })
    .sign(key.privateKey);
}

/** A DPoP-bound access token for partner A's DPoP client, bound to `key`. */
export async function dpopBoundToken(as: RunningAuthorizationServer, identity: Identity, pki: Pki, key: { privateKey: KeyObject; publicKey: KeyObject }): Promise<string> {
  const proof = await dpopProof(key, 'POST', as.tokenUrl);
  const { status, body } = await postForm(as.tokenUrl, { grant_type: 'client_credentials', client_id: 'partner-a-dpop', scope: 'accounts' }, identity, pki, { dpop: proof });
  if (status !== 200 || typeof body.access_token !== 'string' || body.token_type !== 'DPoP') {
    throw new Error(`DPoP token request failed: ${status} ${JSON.stringify(body)}`);
  }
  return body.access_token;
}
