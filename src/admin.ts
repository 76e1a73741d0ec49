// The plain-HTTP admin listener, for kubelet probes (which carry no client certificate), for
// the API to fetch the sidecar's JWKS and for Prometheus. It serves nothing secret; keep it
// off the Service (deploy/k8s exposes only the mTLS port).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Config } from './config/config.ts';
import { checkingIntervalMs } from './http/listener.ts';
import type { Logger } from 'pino';
import type { JWK } from 'jose';
import type { SidecarMetrics } from './metrics.ts';
import { UNAUTHENTICATED, type SsfReceiver } from './fleet/ssf-receiver.ts';

export interface Readiness {
  readonly ready: boolean;
}

export interface AdminParts {
  logger: Logger;
  /** The same head, request and keep-alive deadlines as the mTLS listener. */
  deadlines: Pick<Config['http'], 'headersTimeoutMs' | 'requestTimeoutMs' | 'keepAliveTimeoutMs'>;
  readiness: Readiness;
  jwks: { keys: JWK[] };
  metrics: SidecarMetrics;
  resourceMetadata?: { path: string; document: () => Record<string, unknown> } | undefined;
  ssf?: SsfReceiver | undefined;
}

// kubelet, Prometheus, the API and a Shared Signals transmitter: a handful of clients.
const ADMIN_MAX_CONNECTIONS = 256;
// Nothing the admin listener reads is larger than a SET.
const ADMIN_BODY_LIMIT_BYTES = 64 * 1024;

/**
 * The admin listener's server, with the mTLS listener's deadlines: its /ssf/events is reachable
 * from the cluster network, so a slow client must not hold a socket for ever. A connection that
 * sends no request at all is closed like one whose head never ends.
 */
function adminServer(deadlines: AdminParts['deadlines'], handler: (request: IncomingMessage, response: ServerResponse) => void): Server {
  const server = createServer(
    {
      headersTimeout: deadlines.headersTimeoutMs,
      requestTimeout: deadlines.requestTimeoutMs,
      keepAliveTimeout: deadlines.keepAliveTimeoutMs,
      connectionsCheckingInterval: checkingIntervalMs(deadlines),
    },
    handler,
  );
  server.maxConnections = ADMIN_MAX_CONNECTIONS;
  const firstRequestMs = deadlines.headersTimeoutMs + checkingIntervalMs(deadlines);
  server.on('connection', (socket: Socket) => socket.setTimeout(firstRequestMs));
  server.prependListener('request', (request: IncomingMessage) => request.socket.setTimeout(0));
  return server;
}

export function buildAdmin({ logger, deadlines, readiness, jwks, metrics, resourceMetadata, ssf }: AdminParts): FastifyInstance {
  const admin = Fastify({
    serverFactory: (handler) => adminServer(deadlines, handler),
    bodyLimit: ADMIN_BODY_LIMIT_BYTES,
    loggerInstance: logger.child({ listener: 'admin' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  admin.get('/healthz', async () => ({ status: 'ok' }));
  admin.get('/readyz', async (_request, reply) => {
    if (!readiness.ready) return reply.code(503).send({ status: 'not ready' });
    return { status: 'ready' };
  });
  admin.get('/.well-known/jwks.json', async (_request, reply) => {
    // The set is public; a short cache lets the API pick up a restart's new key soon.
    return reply.header('cache-control', 'public, max-age=60').send(jwks);
  });
  if (resourceMetadata !== undefined) {
    admin.get(resourceMetadata.path, async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(resourceMetadata.document()));
  }
  if (ssf !== undefined) {
    // RFC 8935 push delivery: the body is the SET itself, read as text (and no larger than a SET).
    // Any media type is read (as text, no larger than a SET), so that a wrong one is answered
    // by the receiver with RFC 8935's 400 invalid_request rather than Fastify's 415.
    admin.removeAllContentTypeParsers();
    admin.addContentTypeParser('*', { parseAs: 'string', bodyLimit: ADMIN_BODY_LIMIT_BYTES }, (_request, body, done) => done(null, body));
    admin.post('/ssf/events', {
      // The bearer token is checked before a byte of the body is read.
      onRequest: async (request, reply) => {
        if (ssf.authenticated(request.headers.authorization)) return;
        metrics.ssfEvent(UNAUTHENTICATED.status);
        await reply.code(UNAUTHENTICATED.status).header('cache-control', 'no-store').send(UNAUTHENTICATED.body);
      },
    }, async (request, reply) => {
      const answer = await ssf.receive(request.headers['content-type'], request.headers.authorization, typeof request.body === 'string' ? request.body : '');
      metrics.ssfEvent(answer.status);
      return reply.code(answer.status).header('cache-control', 'no-store').send(answer.body ?? '');
    });
  }
  admin.get('/metrics', async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  return admin;
}
