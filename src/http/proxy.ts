// The proxy to the API beside the sidecar, on @fastify/reply-from (undici).
// Method, the checked path, query and body pass through (the body streamed, within
// PHANTOM_MAX_BODY_BYTES); the client's credentials and every header only the sidecar may
// set are replaced. A request that cannot get an upstream connection within
// PHANTOM_UPSTREAM_QUEUE_TIMEOUT_MS is refused rather than queued behind a stalled partner.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import replyFrom, { type FastifyReplyFromHooks } from '@fastify/reply-from';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { InternalError, RequestRejected, UpstreamTimeout, UpstreamUnavailable, type SidecarError } from '../errors.ts';
import type { Config } from '../config/config.ts';
import { stateOf } from './request-state-of.ts';

// RFC 9110 §7.6.1 hop-by-hop headers, plus the proxy ones: never forwarded either way.
// `expect` too: Node has already answered 100-continue to the client, and undici refuses it.
const HOP_BY_HOP = new Set([
  'connection',
  'expect',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

// Headers that carry identity, origin or routing to the API: only the sidecar sets them, so a
// client's copy is dropped. RFC 9440 Client-Cert, Envoy's XFCC and the x-client-cert* and
// x-ssl-client* families of other proxies; RFC 7239 Forwarded and the x-forwarded-* set; the
// rewrite headers of IIS and nginx; the client-IP headers of CDNs; the user headers that
// Kong, AWS ALB, Azure App Service, oauth2-proxy and CGI-style stacks set and APIs trust.
const SIDECAR_ONLY = new Set([
  'authorization',
  'x-fapi-interaction-id',
  'client-cert',
  'client-cert-chain',
  'forwarded',
  'x-real-ip',
  'x-original-url',
  'x-rewrite-url',
  'x-original-uri',
  'true-client-ip',
  'cf-connecting-ip',
  'remote-user',
  'x-remote-user',
  'x-userinfo',
  'dpop',
  // Method overrides: an API (or its framework) that honours one would run a DELETE under a
  // route rule that allowed a POST. Dropped, so the API sees the method the policy judged.
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);
const SIDECAR_ONLY_PREFIXES = [
  'x-client-cert',
  'x-ssl-client',
  'x-forwarded-',
  'x-authenticated-',
  'x-consumer-',
  'x-amzn-oidc-',
  'x-ms-client-principal',
];

/**
 * Whether a client's header must not reach the API. A name with `_` is dropped as nginx
 * does by default: CGI, WSGI and PHP read `X_Forwarded_For` as `X-Forwarded-For`.
 */
export function isSidecarOnly(name: string): boolean {
  return SIDECAR_ONLY.has(name) || name.includes('_') || SIDECAR_ONLY_PREFIXES.some((prefix) => name.startsWith(prefix));
}

export interface SidecarHeaders {
  /** Undefined on an anonymous route: the API gets no Authorization at all. */
  jwt: string | undefined;
  interactionId: string;
  /** The partner's address as the sidecar's socket sees it. */
  clientIp: string;
  /** The Host the partner asked for, when PHANTOM_PUBLIC_HOSTS vouches for it. */
  checkedHost: string | undefined;
  /** The verified partner certificate's DER, with PHANTOM_FORWARD_CLIENT_CERT. */
  clientCertificate?: Buffer | undefined;
  forwardCookies: boolean;
  /** W3C Trace Context of the sidecar's upstream span, when tracing is on (else the client's passes). */
  traceContext?: { traceparent: string; tracestate?: string } | undefined;
}

/** The client's headers as the API may see them, with the sidecar's own set on top. */
export function upstreamRequestHeaders(clientHeaders: IncomingHttpHeaders, own: SidecarHeaders): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  for (const name of Object.keys(clientHeaders)) {
    if (HOP_BY_HOP.has(name) || isSidecarOnly(name)) continue;
    if (name === 'cookie' && !own.forwardCookies) continue;
    headers[name] = clientHeaders[name];
  }
  if (own.jwt !== undefined) headers.authorization = `Bearer ${own.jwt}`;
  headers['x-fapi-interaction-id'] = own.interactionId;
  headers['x-forwarded-for'] = own.clientIp;
  headers['x-forwarded-proto'] = 'https';
  if (own.checkedHost !== undefined) headers['x-forwarded-host'] = own.checkedHost;
  // RFC 9440 §2: the certificate the sidecar verified, as a byte sequence; never a client's copy.
  if (own.clientCertificate !== undefined) headers['client-cert'] = `:${own.clientCertificate.toString('base64')}:`;
  if (own.traceContext !== undefined) {
    headers.traceparent = own.traceContext.traceparent;
    if (own.traceContext.tracestate === undefined) delete headers.tracestate;
    else headers.tracestate = own.traceContext.tracestate;
  }
  return headers;
}

// What the API says about itself is not the partner's business.
const API_ONLY = new Set(['server', 'x-powered-by', 'x-fapi-interaction-id']);

const NO_OPTIONS: readonly string[] = [];

/** The names an HTTP message lists in its own Connection header: hop-by-hop for that message. */
function connectionOptions(value: string | string[] | undefined): readonly string[] {
  // What nearly every API sends: no option naming another header (keep-alive is hop-by-hop itself).
  if (value === undefined || value === 'keep-alive' || value === 'close') return NO_OPTIONS;
  return (Array.isArray(value) ? value.join(',') : value).split(',').map((name) => name.trim().toLowerCase()).filter(Boolean);
}

/**
 * The API's response headers without hop-by-hop ones, also those the API names in its
 * Connection header (RFC 9110 §7.6.1), and without what identifies the API's software; its
 * own interaction id too: the sidecar's is the one the client gets.
 */
export function clientResponseHeaders(upstreamHeaders: IncomingHttpHeaders): IncomingHttpHeaders {
  const named = connectionOptions(upstreamHeaders.connection);
  const headers: IncomingHttpHeaders = {};
  for (const name of Object.keys(upstreamHeaders)) {
    if (!HOP_BY_HOP.has(name) && !API_ONLY.has(name) && !named.includes(name)) headers[name] = upstreamHeaders[name];
  }
  return headers;
}

/**
 * A request body streamed to the API, cut when it grows past PHANTOM_MAX_BODY_BYTES (a
 * chunked body announces no length): the upstream request then fails, never passing off a
 * truncated body as the whole one, and the client gets 413.
 */
export class BodyLimit extends Transform {
  readonly #max: number;
  #seen = 0;
  exceeded = false;

  constructor(max: number) {
    super();
    this.#max = max;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#max) {
      this.exceeded = true;
      done(new RequestRejected('body_too_large', { detail: 'streamed' }));
      return;
    }
    done(null, chunk);
  }
}

export function limitedBody(payload: Readable, max: number): BodyLimit {
  const limited = new BodyLimit(max);
  // A body nobody reads (the request was refused before forwarding) may still fail, when
  // the client aborts or overshoots the limit: with no listener, that error would take the
  // whole process down. Whoever does read it (undici) adds a listener of its own.
  limited.on('error', () => undefined);
  payload.on('error', (error) => limited.destroy(error));
  return payload.pipe(limited);
}

/**
 * Upstream connections handed out to requests. With one request per connection (no
 * pipelining), a request that holds a slot has a connection of the pool to itself; one that
 * cannot get a slot in time is refused with 503 instead of waiting in undici's queue.
 */
export class UpstreamSlots {
  readonly #size: number;
  #used = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(size: number) {
    this.#size = size;
  }

  /** Resolves with the release of a slot, or rejects with 503 after `timeoutMs`. */
  acquire(timeoutMs: number): Promise<() => void> | (() => void) {
    if (this.#used < this.#size) {
      this.#used += 1;
      return this.#releaser();
    }
    return new Promise((resolve, reject) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(this.#releaser());
      };
      const timer = setTimeout(() => {
        const at = this.#waiting.indexOf(wake);
        if (at !== -1) this.#waiting.splice(at, 1);
        reject(new RequestRejected('upstream_busy', { retryAfterSeconds: 1 }));
      }, timeoutMs);
      this.#waiting.push(wake);
    });
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      // The slot passes straight to the next waiter; otherwise it is free again.
      if (next === undefined) this.#used -= 1;
      else next();
    };
  }

  get used(): number {
    return this.#used;
  }
}

interface ReplyFromError {
  statusCode?: number;
  cause?: { code?: string };
}

function upstreamFailure(error: ReplyFromError, body: unknown): SidecarError {
  if (body instanceof BodyLimit && body.exceeded) return new RequestRejected('body_too_large', { detail: 'streamed' });
  if (error.statusCode === 504) return new UpstreamTimeout();
  return new UpstreamUnavailable(error.cause?.code);
}

export async function registerProxy(app: FastifyInstance, upstream: NonNullable<Config['upstream']>): Promise<void> {
  await app.register(replyFrom, {
    base: upstream.url.origin,
    disableRequestLogging: true,
    undici: {
      connections: upstream.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: Math.min(upstream.timeoutMs, 10_000),
      headersTimeout: upstream.timeoutMs,
      bodyTimeout: upstream.timeoutMs,
    },
  });
}

export interface ProxySettings {
  forwardCookies: boolean;
  /** PHANTOM_FORWARD_CLIENT_CERT: the verified partner certificate goes to the API as RFC 9440 Client-Cert. */
  forwardClientCert: boolean;
  /** Whether the response now going out must be the last on its connection (age, trust, drain). */
  isLastResponse: (socket: Socket) => boolean;
}

// Built once: the hooks read everything per request from the request itself.
export function proxyHooks(settings: ProxySettings): FastifyReplyFromHooks {
  return {
    rewriteRequestHeaders: (request, headers) => {
      const state = stateOf(request);
      state.upstreamStartedAt = performance.now();
      state.upstreamSpan = state.trace?.upstream({ 'http.request.method': request.method, 'url.path': state.upstreamPath });
      return upstreamRequestHeaders(headers, {
        jwt: state.upstreamJwt,
        interactionId: request.id,
        clientIp: request.ip,
        checkedHost: state.checkedHost,
        clientCertificate: settings.forwardClientCert ? state.partnerDer?.() : undefined,
        forwardCookies: settings.forwardCookies,
        traceContext: state.upstreamSpan?.headers,
      });
    },
    rewriteHeaders: (headers, request) => {
      // The API has answered: its own latency (to its response head), apart from the sidecar's;
      // its status is the one the response goes out with.
      if (request !== undefined) {
        const state = stateOf(request);
        if (state.upstreamStartedAt !== undefined) state.upstreamMs = performance.now() - state.upstreamStartedAt;
      }
      const own = clientResponseHeaders(headers);
      // Decided as the response leaves, so that a trust change during the request counts.
      if (request !== undefined && settings.isLastResponse(request.raw.socket as Socket)) own.connection = 'close';
      return own;
    },
    // No retries: a request that reached the API once must not be replayed by the sidecar.
    retryDelay: () => null,
    onError: (reply, { error }) => {
      const state = stateOf(reply.request);
      state.upstreamSpan?.end(undefined, (error as Error).name);
      state.upstreamSpan = undefined;
      reply.send(upstreamFailure(error as ReplyFromError, reply.request.body));
    },
  };
}

/** Forwards the authorized request to the checked path; the query follows. */
export function forward(request: FastifyRequest, reply: FastifyReply, hooks: FastifyReplyFromHooks): FastifyReply {
  const { upstreamJwt, upstreamPath, route } = stateOf(request);
  // Only an authorized request has a JWT (or an anonymous route none), and only a checked
  // target a path: else nothing leaves.
  const authorized = upstreamJwt !== undefined || route?.anonymous === true;
  if (!authorized || upstreamPath === undefined) throw new InternalError('forward_unchecked');
  return reply.from(upstreamPath, hooks);
}
