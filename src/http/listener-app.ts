// The mTLS listener's Fastify app, whatever answers on it (the proxy or the decision
// service): each Fastify phase drives one part of request/pipeline.ts, so both front ends run
// the very same checks:
//   connection -> admission.ts (verified certificate, caps, first-request deadline)
//   onRequest  -> the request state, then pipeline.admit (the request head)
//   preHandler -> pipeline.authorize (the token's answer), a form body checked first
//   handler    -> the front end's own: forward to the API, or answer the gateway
//   errors     -> reply-error.ts; on the response's end -> the one access line and the metrics
import type { IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Config } from '../config/config.ts';
import { InternalError, RequestRejected } from '../errors.ts';
import type { RequestHead, RequestPipeline } from '../request/pipeline.ts';
import type { ConnectionAdmission } from './admission.ts';
import type { IdleDrain } from './drain.ts';
import { interactionIdOf } from './interaction-id.ts';
import { createListener } from './listener.ts';
import { limitedBody } from './proxy.ts';
import { writeRawRefusal } from './raw-refusal.ts';
import type { ErrorReplier } from './reply-error.ts';
import type { RequestTracker } from './request-tracker.ts';
import { stateOf } from './request-state-of.ts';
import type { ConnectionRules } from './connections.ts';

// Only form bodies are read (to refuse a token in one); everything else streams.
const FORM_LIMIT_BYTES = 1024 * 1024;

export interface ListenerAppParts {
  config: Config;
  pipeline: RequestPipeline;
  tracker: RequestTracker;
  replyWithError: ErrorReplier;
  admission: ConnectionAdmission;
  connections: ConnectionRules;
  idle: IdleDrain;
  /** The `Allow` of a 405. */
  allow: string;
  /** RFC 9728 metadata, served by the sidecar itself. */
  resourceMetadata: { path: string; document: () => Record<string, unknown> } | undefined;
  connectionRefused: () => void;
}

/** The request head as the pipeline must judge it: this request's, or the one a gateway asks about. */
export type HeadOf = (request: FastifyRequest, headerNames: ReadonlySet<string>) => RequestHead;

/**
 * Every line of the named headers, apart (two Authorization headers are two). Node's
 * headersDistinct would make an array for every header of every request; the pipeline reads
 * two or three of them.
 */
export function linesOf(rawHeaders: readonly string[], names: ReadonlySet<string>): NodeJS.Dict<string[]> {
  const lines: NodeJS.Dict<string[]> = {};
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] ?? '').toLowerCase();
    if (names.has(name)) (lines[name] ??= []).push(rawHeaders[i + 1] ?? '');
  }
  return lines;
}

/** The request head in the pipeline's plain terms: the request itself. */
export function ownHead(request: FastifyRequest, headerNames: ReadonlySet<string>): RequestHead {
  const { raw } = request;
  return { method: request.method, target: raw.url ?? '', headers: raw.headers, distinct: linesOf(raw.rawHeaders, headerNames), connection: raw.socket as TLSSocket };
}

export function buildListenerApp(parts: ListenerAppParts, headOf: HeadOf): { app: FastifyInstance; server: HttpsServer } {
  const { config, pipeline, tracker, admission } = parts;
  const app = Fastify({
    serverFactory: (handler) => createListener(config, handler),
    // No logger for Fastify: it would make a child logger per request. The access recorder
    // writes the one line per request, and the error reply logs what is unexpected.
    logger: false,
    genReqId: interactionIdOf,
    bodyLimit: FORM_LIMIT_BYTES,
    // A drain closes connections after their current response instead (see drain.ts).
    return503OnClosing: false,
    // Errors raised before routing (a malformed URL) would otherwise get Fastify's own body,
    // which quotes the URL, query and all.
    frameworkErrors: parts.replyWithError,
    clientErrorHandler: (error, socket) => tracker.onClientError(error, socket),
  });
  app.decorateRequest('phantom', null);
  // Bodies stream to the API within PHANTOM_MAX_BODY_BYTES; only forms are read, to refuse a
  // token inside one.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.addContentTypeParser('*', (_request, payload, done) => done(null, limitedBody(payload, config.http.maxBodyBytes)));

  // Callback-style hooks where no await is needed: no promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    const state = stateOf(request);
    // Set first, so every answer carries it; the API's copy is dropped in proxy.ts.
    reply.header('x-fapi-interaction-id', request.id);
    tracker.track(request, reply);
    const socket = request.raw.socket as TLSSocket;
    // The admission destroyed every unverified connection; this never lets one through if not.
    if (!socket.authorized) throw new InternalError('unverified_connection');
    admission.requestArrived(socket);
    pipeline.admit(state, headOf(request, pipeline.headerNames));
    done();
  });
  app.addHook('preHandler', (request, _reply, done) => {
    const state = stateOf(request);
    const body = Buffer.isBuffer(request.body) ? request.body : undefined;
    const socket = request.raw.socket as TLSSocket;
    // With tracing, the stages below (cache, Redis, the AS, the JWT) find the request's span;
    // without it, no closure is made for the call.
    const decided = state.trace === undefined ? pipeline.authorize(state, socket, body) : state.trace.within(() => pipeline.authorize(state, socket, body));
    if (decided === true) done();
    else decided.then(() => done(), done);
  });
  app.setErrorHandler(parts.replyWithError);

  const metadata = parts.resourceMetadata;
  if (metadata !== undefined) app.get(metadata.path, (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(metadata.document()));
  // Reached only by methods outside Fastify's list, which the method check has already refused.
  app.setNotFoundHandler(() => {
    throw new RequestRejected('method_not_allowed', { allow: parts.allow });
  });

  // The https server createListener made (Fastify's types assume plain http with a factory).
  const server = app.server as unknown as HttpsServer;
  // Node answers CONNECT outside the request handler; without a listener it drops the socket.
  server.on('connect', (request: IncomingMessage, socket: Duplex) => {
    const refusal = new RequestRejected('method_not_allowed', { allow: parts.allow, detail: 'CONNECT' });
    const interactionId = interactionIdOf(request);
    tracker.record(interactionId, 'CONNECT', refusal);
    writeRawRefusal(socket, refusal, interactionId);
  });
  // First, before HTTP's own listener: an unverified or over-cap connection never reaches it.
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    if (!admission.admit(socket)) return;
    parts.connections.born(socket);
    parts.idle.opened(socket);
  });
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => admission.handshakeError(error, socket));
  // Past PHANTOM_MAX_CONNECTIONS, Node closes new TCP connections before any TLS work.
  server.maxConnections = config.limits.maxConnections;
  server.on('drop', parts.connectionRefused);
  return { app, server };
}
