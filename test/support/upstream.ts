// An echo API that records what reached it, standing in for the API beside the sidecar.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface EchoUpstream {
  url: string;
  received: Received[];
  /** Milliseconds to wait before answering (to provoke the sidecar's timeout). */
  delayMs: number;
  /** Extra headers on every response. */
  responseHeaders: Record<string, string>;
  stop(): Promise<void>;
}

export async function startEchoUpstream(): Promise<EchoUpstream> {
  const received: Received[] = [];
  const upstream: EchoUpstream = { url: '', received, delayMs: 0, responseHeaders: {}, stop: async () => {} };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    // A request the sidecar aborts (a body cut at the limit) is simply not recorded.
    req.on('error', () => undefined);
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      setTimeout(() => {
        res.setHeader('content-type', 'application/json');
        res.setHeader('x-upstream', 'echo');
        for (const [name, value] of Object.entries(upstream.responseHeaders)) res.setHeader(name, value);
        res.end(JSON.stringify({ method: req.method, url: req.url, body }));
      }, upstream.delayMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstream.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  upstream.stop = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return upstream;
}
