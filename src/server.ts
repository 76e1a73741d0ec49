// The mTLS listener: builds the Fastify app and wires the stages in the order a request
// meets them. Hooks map one-to-one onto stages:
//   onRequest  -> interaction id, TLS thumbprint (1), token extraction (2)
//   preHandler -> no token in a form body (2), introspection .. upstream token (3-7)
//   handler    -> proxy (8)
//   error      -> errors.ts (9); onResponse -> the one log line (10)
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { InternalError, RequestRejected, SidecarError, asSidecarError, toErrorResponse } from './errors.ts';
import { logAccess } from './log.ts';
import { SidecarMetrics } from './metrics.ts';
import type { RequestState } from './request-state.ts';
import { IntrospectionCache } from './pipeline/cache.ts';
import { IntrospectionClient, type Introspector } from './pipeline/introspect.ts';
import { forward, registerProxy, upstreamBasePath } from './pipeline/proxy.ts';
import { createRequestAuthoriser } from './pipeline/request-path.ts';
import { connectionThumbprint, reloadTlsOnChange, serverTlsOptions } from './pipeline/tls.ts';
import { extractBearerToken, rejectTokenInForm, rejectTokenInQuery } from './pipeline/token.ts';
import { createUpstreamTokenSource, type UpstreamTokenSource } from './pipeline/upstream-token.ts';

export const REALM = 'phantom-sidecar';
const BODY_LIMIT_BYTES = 1024 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * FAPI `x-fapi-interaction-id`: the client's value when it is one RFC 4122 UUID, else a new
 * one, so whatever is echoed and logged has a known, harmless shape.
 */
export function interactionIdOf(request: IncomingMessage): string {
  // Node joins repeated x- headers with ", ", which no UUID matches: two values get a new id.
  const value = request.headers['x-fapi-interaction-id'];
  return typeof value === 'string' && UUID.test(value) ? value : randomUUID();
}

/** The one way an error leaves the sidecar, for the pipeline's errors and Fastify's own. */
function replyWithError(error: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const failure = asSidecarError(error);
  stateOf(request).facts.reason = failure.reason;
  if (failure instanceof InternalError && !(error instanceof SidecarError)) logUnexpected(request, error);
  const response = toErrorResponse(failure, REALM);
  return reply.code(response.status).headers(response.headers).header('x-fapi-interaction-id', request.id).send(response.body);
}

/**
 * A bug, not a refusal: worth a line of its own. Only the error's class, code and stack
 * frames are logged; a message could quote a header or a token, so it is left out.
 */
function logUnexpected(request: FastifyRequest, error: unknown): void {
  const { name, code, stack } = (error instanceof Error ? error : new Error('non-error thrown')) as Error & { code?: unknown };
  const frames = (stack ?? '').split('\n').slice(1, 6).map((frame) => frame.trim());
  request.log.error({ err_name: name, err_code: typeof code === 'string' ? code : undefined, frames }, 'unexpected error');
}

function stateOf(request: FastifyRequest): RequestState {
  // Set by the first hook; an error raised before any hook (a bad URL) still needs one.
  request.phantom ??= { token: undefined, upstreamJwt: undefined, facts: { cache: 'none' }, startedAt: performance.now() };
  return request.phantom;
}

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
    state.facts.x5t = connectionThumbprint(request.raw.socket as TLSSocket);
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
      url: request.url,
      status: reply.statusCode,
      durationMs: performance.now() - state.startedAt,
      facts: state.facts,
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
    throw new RequestRejected(405, 'method_not_supported');
  });

  const stopTlsReload = reloadTlsOnChange(app.server, config.tls, logger);
  app.addHook('onClose', async () => {
    stopTlsReload();
    await introspector.close();
  });
  return { app, cache, tokens, metrics };
}
