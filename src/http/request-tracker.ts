// Every request gets exactly one access line and gives back what it held, once its response
// is over: sent, refused, or cut off by the client or by a deadline Node enforces on the
// socket (which Node reports as a client error, with no request object).
import type { Duplex } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RequestRejected, asSidecarError, type SidecarError } from '../errors.ts';
import { endRequest, newRequestState, type RequestState } from '../request/state.ts';
import { accessLineOf, boundedUserAgent, type AccessRecorder } from './access.ts';
import { pathOnly } from '../log.ts';
import { writeRawRefusal } from './raw-refusal.ts';
import { stateOf } from './request-state-of.ts';
import type { Tracing } from '../tracing/seam.ts';
import type { TLSSocket } from 'node:tls';

/** OpenTelemetry's HTTP server attributes of a request, as it arrived (the path without its query). */
function requestAttributes(request: FastifyRequest): Record<string, string | number | undefined> {
  const socket = request.raw.socket as TLSSocket;
  return {
    'http.request.method': request.method,
    'url.scheme': 'https',
    'url.path': pathOnly(request.raw.url ?? ''),
    'server.address': request.host.split(':')[0],
    'network.protocol.version': request.raw.httpVersion,
    'client.address': socket.remoteAddress,
    'client.port': socket.remotePort,
    'tls.protocol.version': socket.getProtocol?.() ?? undefined,
    'user_agent.original': boundedUserAgent(request.headers['user-agent']),
  };
}

/** Errors Node raises on a connection before Fastify has a request: the client's, never ours. */
function clientErrorOf(error: NodeJS.ErrnoException): SidecarError {
  const refusal = asSidecarError(error);
  return refusal.status >= 500 ? new RequestRejected('bad_request', { detail: error.code }) : refusal;
}

export class RequestTracker {
  readonly #access: AccessRecorder;
  // The request each connection is serving, for a deadline Node reports on the socket.
  readonly #serving = new WeakMap<Duplex, RequestState>();

  readonly #tracing: Tracing | undefined;

  constructor(access: AccessRecorder, tracing?: Tracing) {
    this.#access = access;
    this.#tracing = tracing;
  }

  /** Watches the request's response; idempotent, so any hook (or an early error) may call it. */
  track(request: FastifyRequest, reply: FastifyReply): void {
    const state = stateOf(request);
    if (state.tracked) return;
    state.tracked = true;
    const socket = request.raw.socket;
    this.#serving.set(socket, state);
    if (this.#tracing !== undefined) state.trace = this.#tracing.startRequest(request.raw.headers, requestAttributes(request));
    // 'close' comes once per response: on() spares the wrapper once() makes per request.
    reply.raw.on('close', () => {
      if (this.#serving.get(socket) === state) this.#serving.delete(socket);
      endRequest(state);
      const sentStatus = reply.raw.headersSent ? reply.raw.statusCode : undefined;
      // Forwarded: the status going out is the API's own.
      if (state.upstreamMs !== undefined) state.upstreamStatus = sentStatus;
      const line = accessLineOf({ interactionId: request.id, method: request.method, rawUrl: request.raw.url ?? '', sentStatus, socket: socket as TLSSocket, userAgent: request.headers['user-agent'] }, state);
      state.upstreamSpan?.end(state.upstreamStatus, state.upstreamMs === undefined ? (state.reason ?? 'no_answer') : undefined);
      state.trace?.end(
        { 'http.response.status_code': line.status, 'http.route': line.rule, 'phantom.refusal_reason': line.reason, 'phantom.cache_outcome': line.cache, 'phantom.partner.x5t_s256': line.x5t, 'phantom.client_id': line.clientId, 'url.path': line.path },
        line.status >= 500 ? (line.reason ?? 'server_error') : undefined,
      );
      this.#access.record(line);
    });
  }

  /** Whether a request is being served on this connection (its response not yet over). */
  isServing(socket: Duplex): boolean {
    return this.#serving.has(socket);
  }

  /** Fastify's clientErrorHandler: a head that never ended, a body too slow, an unparsable request. */
  onClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const refusal = clientErrorOf(error);
    const current = this.#serving.get(socket);
    // Node reports the end of a connection it has just timed out as a second, parse error.
    if (current?.rawStatus !== undefined) return;
    if (current !== undefined) {
      // The request in Fastify's hands gets its access line when its response ends.
      current.reason = refusal.reason;
      current.detail = refusal.detail;
      current.rawStatus = refusal.status;
    } else {
      this.record('-', '-', refusal);
    }
    writeRawRefusal(socket, refusal, '-');
  }

  /** The access line of a refusal made outside Fastify (a CONNECT, a client error). */
  record(interactionId: string, method: string, refusal: SidecarError): void {
    const state = newRequestState();
    state.reason = refusal.reason;
    state.detail = refusal.detail;
    this.#access.record(accessLineOf({ interactionId, method, rawUrl: '-', sentStatus: refusal.status }, state));
  }
}
