// The plain-HTTP admin listener, for kubelet probes (which carry no client certificate) and
// for the API to fetch the sidecar's JWKS. It serves nothing that needs protecting.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { JWK } from 'jose';

export interface Readiness {
  ready: boolean;
}

export function buildAdmin(logger: Logger, readiness: Readiness, jwks: { keys: JWK[] }): FastifyInstance {
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
  return admin;
}
