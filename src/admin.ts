// The plain-HTTP admin listener, for kubelet probes (which carry no client certificate), for
// the API to fetch the sidecar's JWKS and for Prometheus. It serves nothing secret; keep it
// off the Service (deploy/k8s exposes only the mTLS port).
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { JWK } from 'jose';
import type { SidecarMetrics } from './metrics.ts';
import type { SsfReceiver } from './fleet/ssf-receiver.ts';

export interface Readiness {
  readonly ready: boolean;
}

export interface AdminParts {
  logger: Logger;
  readiness: Readiness;
  jwks: { keys: JWK[] };
  metrics: SidecarMetrics;
  resourceMetadata?: { path: string; document: Record<string, unknown> } | undefined;
  ssf?: SsfReceiver | undefined;
}

export function buildAdmin({ logger, readiness, jwks, metrics, resourceMetadata, ssf }: AdminParts): FastifyInstance {
  const admin = Fastify({ loggerInstance: logger.child({ listener: 'admin' }) as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
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
    admin.get(resourceMetadata.path, async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(resourceMetadata.document));
  }
  if (ssf !== undefined) {
    // RFC 8935 push delivery: the body is the SET itself, read as text (and no larger than a SET).
    // Any media type is read (as text, no larger than a SET), so that a wrong one is answered
    // by the receiver with RFC 8935's 400 invalid_request rather than Fastify's 415.
    admin.removeAllContentTypeParsers();
    admin.addContentTypeParser('*', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_request, body, done) => done(null, body));
    admin.post('/ssf/events', async (request, reply) => {
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
