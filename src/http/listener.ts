// The mTLS listener's server: Node's https server with the timeouts that keep one partner
// from holding connections for ever (Fastify's defaults are none). Made here rather than by
// Fastify because Node takes the handshake timeout and the check interval of the head and
// request timeouts only at construction.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/config.ts';
import { serverTlsOptions } from './tls.ts';

/**
 * Node checks the head and request deadlines on a timer, 30 s apart by default: far too
 * coarse for a 10 s deadline. A quarter of the shortest deadline, at most a second.
 */
export function checkingIntervalMs(http: Pick<Config['http'], 'headersTimeoutMs' | 'requestTimeoutMs'>): number {
  return Math.max(25, Math.min(1000, Math.floor(Math.min(http.headersTimeoutMs, http.requestTimeoutMs) / 4)));
}

/** A trusted ingress's own CA: it may complete the handshake, its certificates are no partner's. */
export function handshakeOnlyCa(config: Config): string | undefined {
  return config.clientCert.source === 'header' ? config.clientCert.trustedProxyCa : undefined;
}

export function createListener(config: Config, handler: (request: IncomingMessage, response: ServerResponse) => void): Server {
  const server = createServer(
    {
      ...serverTlsOptions(config.tls, handshakeOnlyCa(config)),
      handshakeTimeout: config.tls.handshakeTimeoutMs,
      headersTimeout: config.http.headersTimeoutMs,
      requestTimeout: config.http.requestTimeoutMs,
      keepAliveTimeout: config.http.keepAliveTimeoutMs,
      connectionsCheckingInterval: checkingIntervalMs(config.http),
      requireHostHeader: true,
    },
    handler,
  );
  // No idle-socket timeout besides those: a response the API takes long over is the
  // upstream timeout's business.
  server.setTimeout(0);
  return server;
}
