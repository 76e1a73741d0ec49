// How the sidecar proves to the authorization server who it is, on every introspection call.
// A method may add headers (client_secret_basic), form parameters (client_secret_post, a
// fresh private_key_jwt assertion) or a client certificate on the connection (RFC 8705
// tls_client_auth and self_signed_tls_client_auth).
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
