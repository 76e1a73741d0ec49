// A scripted authorization server, for what a real one cannot be made to do: a 500, a hang,
// a malformed body, a Curity- or Keycloak-style JWT answer. HTTPS with the test PKI.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Pki } from './pki.ts';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export type FakeHandler = (request: SeenRequest, res: ServerResponse) => void;

export interface FakeAuthorizationServer {
  url: string;
  seen: SeenRequest[];
  handle: FakeHandler;
  stop(): Promise<void>;
}

export function json(res: ServerResponse, body: unknown, status = 200, contentType = 'application/json'): void {
  res.writeHead(status, { 'content-type': contentType });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

/** `identity`: the server certificate to present (default: the AS's own). */
export async function startFakeAuthorizationServer(pki: Pki, identity: { cert: string; key: string } = pki.as): Promise<FakeAuthorizationServer> {
  const fake: FakeAuthorizationServer = { url: '', seen: [], handle: (_r, res) => json(res, { active: false }), stop: async () => {} };
  const server: Server = createServer({ cert: identity.cert, key: identity.key }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('error', () => undefined);
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      fake.seen.push(seen);
      fake.handle(seen, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/oauth/introspect`;
  fake.stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return fake;
}

/**
 * An RFC 7662 answer every default rule accepts: active, an access token for the test API,
 * bound to `thumbprint`, with `accounts`; `extra` overrides (undefined removes a member).
 */
export function boundAnswer(thumbprint: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    active: true,
    client_id: 'partner-a',
    scope: 'accounts',
    aud: 'https://api.example.com',
    token_type: 'Bearer',
    exp: Math.floor(Date.now() / 1000) + 300,
    cnf: { 'x5t#S256': thumbprint },
    ...extra,
  };
}
