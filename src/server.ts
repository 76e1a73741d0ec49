// The mTLS listener: builds the Fastify app and wires the stages in the order a request
// meets them. Hooks map one-to-one onto stages:
//   onRequest  -> interaction id, TLS thumbprint (1), token extraction (2)
//   preHandler -> no token in a form body (2), introspection .. upstream token (3-7)
//   handler    -> proxy (8)
//   error      -> errors.ts (9); onResponse -> the one log line (10)
import type { TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { RequestRejected } from './errors.ts';
import { interactionIdOf } from './http/interaction-id.ts';
import { errorReplier } from './http/reply-error.ts';
import { stateOf } from './http/request-state-of.ts';
import { logAccess, pathOnly } from './log.ts';
import { SidecarMetrics } from './metrics.ts';
import type { RequestState } from './request-state.ts';
import { IntrospectionCache } from './pipeline/cache.ts';
import { IntrospectionClient, type Introspector } from './pipeline/introspect.ts';
import { forward, registerProxy, upstreamBasePath } from './pipeline/proxy.ts';
import { createRequestAuthoriser } from './pipeline/request-path.ts';
import { connectionThumbprint, reloadTlsOnChange, serverTlsOptions } from './pipeline/tls.ts';
import { extractBearerToken, rejectTokenInForm, rejectTokenInQuery } from './pipeline/token.ts';
import { createUpstreamTokenSource, type UpstreamTokenSource } from './pipeline/upstream-token.ts';

// Only form bodies are read (to refuse a token in one); everything else streams.
const BODY_LIMIT_BYTES = 1024 * 1024;

export interface SidecarParts {
  introspector?: Introspector;
  tokens?: UpstreamTokenSource;
  logger: Logger;
  now?: () => number;
}

export interface Sidecar {
  app: FastifyInstance;
  cache: IntrospectionCache;
  tokens: UpstreamTokenSource;
  metrics: SidecarMetrics;
}

export async function buildSidecar(config: Config, parts: SidecarParts): Promise<Sidecar> {
  const { logger } = parts;
  const now = parts.now ?? Date.now;
  const introspector = parts.introspector ?? new IntrospectionClient(config.introspection, config.upstreamToken.mode);
  const tokens = parts.tokens ?? (await createUpstreamTokenSource(config.upstreamToken));
  const cache = new IntrospectionCache(introspector, config.cache, now);
  const authorise = createRequestAuthoriser(cache, tokens, config, now);
  const metrics = new SidecarMetrics(() => cache.size);

  const replyWithError = errorReplier(logger);
  const app = Fastify({
    https: serverTlsOptions(config.tls),
    loggerInstance: logger as FastifyBaseLogger,
    // Fastify's own pair of lines per request is off: logAccess writes the one line.
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'interaction_id' }),
    genReqId: interactionIdOf,
    bodyLimit: BODY_LIMIT_BYTES,
    return503OnClosing: true,
    // Errors raised before routing (a malformed URL) would otherwise get Fastify's own body,
    // which quotes the URL, query and all.
    frameworkErrors: replyWithError,
  });
  app.decorateRequest('phantom', null as unknown as RequestState);

  // Bodies stream to the API untouched; only forms are read, to refuse a token inside one.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  // Callback-style hooks where no await is needed: no promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    // Set first, so every answer carries it; the API's copy is dropped in proxy.ts.
    reply.header('x-fapi-interaction-id', request.id);
    const state = stateOf(request);
    state.x5t = connectionThumbprint(request.raw.socket as TLSSocket);
    rejectTokenInQuery(request.url);
    state.token = extractBearerToken(request.raw.headersDistinct.authorization);
    done();
  });

  app.addHook('preHandler', (request) => {
    if (Buffer.isBuffer(request.body)) rejectTokenInForm(request.body);
    return authorise(request.phantom, request.raw.socket);
  });

  app.addHook('onResponse', (request, reply, done) => {
    const state = stateOf(request);
    const line = {
      interactionId: request.id,
      method: request.method,
      path: state.upstreamPath ?? pathOnly(request.url),
      status: reply.statusCode,
      durationMs: performance.now() - state.startedAt,
      clientId: state.clientId,
      sub: state.sub,
      cache: state.cache,
      x5t: state.x5t,
      reason: state.reason,
      detail: state.detail,
    };
    logAccess(logger, line);
    metrics.record(line);
    done();
  });

  app.setErrorHandler(replyWithError);

  await registerProxy(app, config.upstream);
  // logLevel 'error' keeps reply-from's own warnings out: the access line carries the reason.
  const basePath = upstreamBasePath(config.upstream.url);
  app.all('/*', { logLevel: 'error' }, (request, reply) => forward(request, reply, basePath));
  // Reached only by methods outside Fastify's list: nothing to forward them with.
  app.setNotFoundHandler(() => {
    throw new RequestRejected(405, 'method_not_allowed');
  });

  const stopTlsReload = reloadTlsOnChange(app.server, config.tls, logger);
  app.addHook('onClose', async () => {
    stopTlsReload();
    await introspector.close();
  });
  return { app, cache, tokens, metrics };
}
