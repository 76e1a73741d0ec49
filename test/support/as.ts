// The real oidc-provider authorization server of deploy/, and a partner's mTLS token request.
import { request } from 'node:https';
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
    ],
    ...more,
  });
}

export interface FormResult {
  status: number;
  body: Record<string, unknown>;
}

/** POSTs a form over mTLS with the partner's certificate (token and revocation endpoints). */
export function postForm(url: string, form: Record<string, string>, identity: Identity, pki: Pki): Promise<FormResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        cert: identity.cert,
        key: identity.key,
        ca: pki.ca,
        agent: false,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
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
