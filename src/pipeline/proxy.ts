// Stage 8: the proxy to the API beside the sidecar, on @fastify/reply-from (undici).
// Method, path, query and body pass through (the body streamed); the client's credentials
// and every header only the sidecar may set are replaced.
import replyFrom, { type FastifyReplyFromHooks } from '@fastify/reply-from';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import { InternalError, UpstreamTimeout, UpstreamUnavailable } from '../errors.ts';
import type { Config } from '../config.ts';
import '../request-state.ts';

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

// Headers that carry identity or origin to the API: only the sidecar sets them, so a
// client's copy is dropped (RFC 9440 Client-Cert, Envoy's XFCC, the x-client-cert* and
// x-ssl-client* families of other proxies, RFC 7239 Forwarded and the x-forwarded-* set),
// and with them every header the sidecar sets itself.
const SIDECAR_ONLY = new Set([
  'authorization',
  'x-fapi-interaction-id',
  'client-cert',
  'client-cert-chain',
  'forwarded',
  'x-real-ip',
]);
const SIDECAR_ONLY_PREFIXES = ['x-client-cert', 'x-ssl-client', 'x-forwarded-'];

function isSidecarOnly(name: string): boolean {
  return SIDECAR_ONLY.has(name) || SIDECAR_ONLY_PREFIXES.some((prefix) => name.startsWith(prefix));
}

export interface SidecarHeaders {
  jwt: string;
  interactionId: string;
  /** The partner's address as the sidecar's socket sees it. */
  clientIp: string;
  /** The Host the partner asked for (reply-from sends the upstream's own). */
  host: string | undefined;
}

/** The client's headers as the API may see them, with the sidecar's own set on top. */
export function upstreamRequestHeaders(clientHeaders: IncomingHttpHeaders, own: SidecarHeaders): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  for (const name of Object.keys(clientHeaders)) {
    if (!HOP_BY_HOP.has(name) && !isSidecarOnly(name)) headers[name] = clientHeaders[name];
  }
  headers.authorization = `Bearer ${own.jwt}`;
  headers['x-fapi-interaction-id'] = own.interactionId;
  headers['x-forwarded-for'] = own.clientIp;
  headers['x-forwarded-proto'] = 'https';
  if (own.host !== undefined) headers['x-forwarded-host'] = own.host;
  return headers;
}

/**
 * The API's response headers without hop-by-hop ones (reply-from copies them otherwise) and
 * without an interaction id of its own: the sidecar's is the one the client gets.
 */
export function clientResponseHeaders(upstreamHeaders: IncomingHttpHeaders): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  for (const name of Object.keys(upstreamHeaders)) {
    if (!HOP_BY_HOP.has(name) && name !== 'x-fapi-interaction-id') headers[name] = upstreamHeaders[name];
  }
  return headers;
}

interface ReplyFromError {
  statusCode?: number;
  cause?: { code?: string };
}

function upstreamFailure(error: ReplyFromError): UpstreamTimeout | UpstreamUnavailable {
  if (error.statusCode === 504) return new UpstreamTimeout();
  return new UpstreamUnavailable(error.cause?.code);
}

export async function registerProxy(app: FastifyInstance, upstream: Config['upstream']): Promise<void> {
  await app.register(replyFrom, {
    base: upstream.url.origin,
    disableRequestLogging: true,
    undici: {
      connections: 128,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: Math.min(upstream.timeoutMs, 10_000),
      headersTimeout: upstream.timeoutMs,
      bodyTimeout: upstream.timeoutMs,
    },
  });
}

/** The path of PHANTOM_UPSTREAM_URL, put in front of every forwarded path ("" for "/"). */
export const upstreamBasePath = (upstream: URL): string => upstream.pathname.replace(/\/$/, '');

// Built once: the hooks read everything per request from the request itself.
export const proxyHooks: FastifyReplyFromHooks = {
  rewriteRequestHeaders: (request, headers) =>
    upstreamRequestHeaders(headers, {
      jwt: request.phantom.upstreamJwt ?? '',
      interactionId: request.id,
      clientIp: request.ip,
      host: request.headers.host,
    }),
  rewriteHeaders: (headers) => clientResponseHeaders(headers),
  // No retries: a request that reached the API once must not be replayed by the sidecar.
  retryDelay: () => null,
  onError: (reply, { error }) => {
    reply.send(upstreamFailure(error as ReplyFromError));
  },
};

/** Forwards the authorised request under the upstream's base path; the query follows. */
export function forward(request: FastifyRequest, reply: FastifyReply, basePath: string): FastifyReply {
  // Only an authorised request has a JWT; without one nothing may leave.
  if (request.phantom.upstreamJwt === undefined) throw new InternalError('forward_without_jwt');
  const path = request.url.split('?', 1)[0] ?? '/';
  return reply.from(`${basePath}${path}`, proxyHooks);
}
