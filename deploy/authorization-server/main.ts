// DEVELOPMENT AUTHORIZATION SERVER - NOT FOR PRODUCTION. Configured by environment:
//   AS_HOST (127.0.0.1), AS_PORT (9443), AS_ISSUER (https://localhost:<port>)
//   AS_TLS_CERT, AS_TLS_KEY, AS_TLS_CLIENT_CA   PEM paths (certs/out/as.pem, as.key, ca.pem)
//   AS_INTROSPECTION_CLIENT_ID (phantom-sidecar)
//   AS_INTROSPECTION_CLIENT_KEY                  the sidecar's private_key_jwt key (PEM; its public half is
//                                                registered), or else AS_INTROSPECTION_CLIENT_SECRET or _FILE
//   AS_AUDIENCE (https://api.example.com)       the `aud` of issued tokens (and of Shared Signals events)
//   AS_SSF_RECEIVERS                             comma-separated push URLs for revocation events (RFC 8935)
//   AS_PARTNERS                                  JSON list of {clientId, subjectDn|sanDns, scope}
import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { startAuthorizationServer, type IntrospectorClient, type PartnerClient } from './server.ts';

const certs = new URL('../../certs/out/', import.meta.url).pathname;

export const DEFAULT_PARTNERS: PartnerClient[] = [
  // Partner A is matched on its subject DN, partner B on a SAN: both RFC 8705 §2.1.2 ways.
  { clientId: 'partner-a', subjectDn: 'CN=partner-a,O=Partner A Ltd', scope: 'accounts transactions' },
  { clientId: 'partner-b', sanDns: 'partner-b.example.com', scope: 'accounts transactions' },
  // Partner A's certificate authenticates it; the tokens of this client are bound to a DPoP key.
  { clientId: 'partner-a-dpop', subjectDn: 'CN=partner-a,O=Partner A Ltd', scope: 'accounts transactions', dpop: true },
];

function env(name: string, fallback?: string): string {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    process.stderr.write(`authorization-server: ${name} is required\n`);
    process.exit(2);
  }
  return value;
}

function secret(name: string): string {
  const file = process.env[`${name}_FILE`];
  return file === undefined ? env(name) : readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

/** FAPI 2.0: the sidecar authenticates with private_key_jwt when its key is given. */
async function introspector(clientId: string): Promise<IntrospectorClient> {
  const keyFile = process.env.AS_INTROSPECTION_CLIENT_KEY;
  if (keyFile === undefined || keyFile === '') return { clientId, clientSecret: secret('AS_INTROSPECTION_CLIENT_SECRET') };
  const publicJwk = await exportJWK(createPublicKey(readFileSync(keyFile, 'utf8')));
  return { clientId, method: 'private_key_jwt', publicJwk: { ...publicJwk, kid: await calculateJwkThumbprint(publicJwk), use: 'sig' } };
}

const port = Number(env('AS_PORT', '9443'));
const running = await startAuthorizationServer({
  host: env('AS_HOST', '127.0.0.1'),
  port,
  // As this file's header says: the name the development certificate carries and .env.example uses.
  issuer: process.env.AS_ISSUER ?? `https://localhost:${port}`,
  tls: {
    cert: readFileSync(env('AS_TLS_CERT', `${certs}as.pem`), 'utf8'),
    key: readFileSync(env('AS_TLS_KEY', `${certs}as.key`), 'utf8'),
    clientCa: readFileSync(env('AS_TLS_CLIENT_CA', `${certs}ca.pem`), 'utf8'),
  },
  introspector: await introspector(env('AS_INTROSPECTION_CLIENT_ID', 'phantom-sidecar')),
  audience: env('AS_AUDIENCE', 'https://api.example.com'),
  partners: process.env.AS_PARTNERS === undefined ? DEFAULT_PARTNERS : (JSON.parse(process.env.AS_PARTNERS) as PartnerClient[]),
}).catch((error: unknown) => {
  const code = (error as NodeJS.ErrnoException).code;
  process.stderr.write(code === 'EADDRINUSE' ? `authorization-server: AS_PORT: port ${port} is already in use\n` : `authorization-server: ${String(error)}\n`);
  process.exit(2);
});
// Shared Signals: every revoked access token is pushed to these receivers (comma-separated URLs).
for (const receiver of (process.env.AS_SSF_RECEIVERS ?? '').split(',').filter(Boolean)) running.ssfReceivers.push(receiver);
process.stdout.write(`development authorization server (NOT FOR PRODUCTION) at ${running.issuer}\n`);
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => void running.stop().then(() => process.exit(0)));
