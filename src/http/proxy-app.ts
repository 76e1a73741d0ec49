// The proxy front end: the mTLS listener's app forwards each authorized request to the API.
import type { Server as HttpsServer } from 'node:https';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config/config.ts';
import { releaseAtEnd } from '../request/state.ts';
import { buildListenerApp, ownHead, type ListenerAppParts } from './listener-app.ts';
import { UpstreamSlots, forward, proxyHooks, registerProxy } from './proxy.ts';
import { stateOf } from './request-state-of.ts';

export interface ProxyAppParts extends ListenerAppParts {
  upstream: NonNullable<Config['upstream']>;
  slots: UpstreamSlots;
}

export async function buildProxyApp(parts: ProxyAppParts): Promise<{ app: FastifyInstance; server: HttpsServer }> {
  const { config, upstream } = parts;
  const built = buildListenerApp(parts, ownHead);
  const { app } = built;
  await registerProxy(app, upstream);
  const hooks = proxyHooks({ forwardCookies: config.http.forwardCookies, forwardClientCert: config.forwardClientCert, isLastResponse: (socket) => parts.connections.mustClose(socket) });
  const forwardWithSlot = (request: FastifyRequest, reply: FastifyReply, release: () => void): FastifyReply => {
    releaseAtEnd(stateOf(request), release);
    return forward(request, reply, hooks);
  };
  // logLevel 'error' keeps reply-from's own warnings out: the access line carries the reason.
  app.all('/*', { logLevel: 'error' }, (request, reply) => {
    const slot = parts.slots.acquire(upstream.queueTimeoutMs);
    if (typeof slot === 'function') return forwardWithSlot(request, reply, slot);
    return slot.then((release) => forwardWithSlot(request, reply, release));
  });
  return built;
}
