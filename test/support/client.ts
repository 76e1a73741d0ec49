// An HTTPS client that presents a client certificate, as a partner does.
import { request, type Agent } from 'node:https';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export interface CallOptions {
  port: number;
  path?: string;
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string;
  /** PEMs of the client identity; omit both to present no certificate. */
  cert?: string;
  key?: string;
  ca: string;
  agent?: Agent | false;
  servername?: string;
}

export interface CallResult {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: Record<string, unknown>;
}

export function call(options: CallOptions): Promise<CallResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: options.port,
        path: options.path ?? '/api/accounts',
        method: options.method ?? 'GET',
        headers: options.headers as OutgoingHttpHeaders,
        cert: options.cert,
        key: options.key,
        ca: options.ca,
        servername: options.servername ?? 'localhost',
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            // not JSON; tests that care read `text`
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}
