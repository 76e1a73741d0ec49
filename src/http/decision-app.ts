// The decision front end (PHANTOM_MODE=decision): a gateway that already terminates the
// partner's mTLS (nginx auth_request, Traefik forwardAuth, Envoy or Istio HTTP ext_authz) asks
// about each request, and the very same pipeline decides it. The request judged is the
// original one, as the gateway's convention passes it; the partner certificate comes from the
// gateway's header, believed only on a trusted gateway's own connection (the partner step
// refuses any other). Allowed: 200 with the JWT for the gateway to set upstream. Refused: the
// status, challenge, DPoP-Nonce, Retry-After and JSON body the proxy would give. Never cached.
import type { Server as HttpsServer } from 'node:https';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RequestHead } from '../request/pipeline.ts';
import { buildListenerApp, linesOf, type ListenerAppParts } from './listener-app.ts';
import { stateOf } from './request-state-of.ts';

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The original request: nginx's X-Original-Method and X-Original-URI (set by its
 * auth_request location), Traefik's X-Forwarded-Method, -Uri and -Host, or, for Envoy's HTTP
 * ext_authz, the decision call itself (its method, and its path once `path_prefix` is taken
 * off). The original headers come with the call, as each of these gateways sends them.
 */
export function originalHead(request: FastifyRequest, headerNames: ReadonlySet<string>, pathPrefix = ''): RequestHead {
  const { raw } = request;
  const headers = raw.headers;
  const method = single(headers['x-original-method']) ?? single(headers['x-forwarded-method']) ?? request.method;
  let target = single(headers['x-original-uri']) ?? single(headers['x-forwarded-uri']) ?? raw.url ?? '';
  if (pathPrefix !== '' && target.startsWith(pathPrefix)) target = target.slice(pathPrefix.length) || '/';
  const forwardedHost = single(headers['x-forwarded-host']);
  return {
    method: method.toUpperCase(),
    target,
    headers: forwardedHost === undefined ? headers : { ...headers, host: forwardedHost },
    distinct: linesOf(raw.rawHeaders, headerNames),
    connection: raw.socket as unknown as RequestHead['connection'],
  };
}

export interface DecisionAppParts extends ListenerAppParts {
  /** The header the gateway copies upstream: Authorization carries `Bearer <jwt>`, any other the JWT alone. */
  jwtHeader: string;
  /** Envoy's `path_prefix`, taken off the check request's path. */
  pathPrefix: string;
}

export function buildDecisionApp(parts: DecisionAppParts): { app: FastifyInstance; server: HttpsServer } {
  const built = buildListenerApp(parts, (request, headerNames) => originalHead(request, headerNames, parts.pathPrefix));
  built.app.all('/*', (request, reply) => {
    const jwt = stateOf(request).upstreamJwt;
    // A gateway that caches a 200 would skip the binding and time checks of the next request.
    reply.header('cache-control', 'no-store');
    if (jwt !== undefined) reply.header(parts.jwtHeader, parts.jwtHeader === 'authorization' ? `Bearer ${jwt}` : jwt);
    // No body: nginx's auth_request discards it, and a response with one costs nginx its
    // kept-alive connection to the sidecar (a TLS handshake per check).
    return reply.code(200).send();
  });
  return built;
}
