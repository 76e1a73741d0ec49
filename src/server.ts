// The mTLS listener: builds the Fastify app and wires the stages in the order a request
// meets them. Hooks map one-to-one onto stages:
//   listener   -> TLS handshake (1), timeouts, CONNECT and unparsable requests refused
//   onRequest  -> interaction id, connection age, partner thumbprint (1), method, target and
//                 Host (2), declared body size, partner concurrency, token extraction (3)
//   preHandler -> no token in a form body (3), introspection .. upstream token (4-8)
//   handler    -> upstream slot and proxy (9)
//   errors     -> errors.ts; on the response's end -> the one access line and the metrics
import type { IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Config, ConfigError } from './config/config.ts';
import { InternalError, RequestRejected, type AuthScheme, type ChallengeContext } from './errors.ts';
import { ConnectionAdmission } from './http/admission.ts';
import { IdleDrain } from './http/drain.ts';
import { AccessRecorder } from './http/access.ts';
import { RequestTracker } from './http/request-tracker.ts';
import { ConnectionRules } from './http/connections.ts';
import { interactionIdOf } from './http/interaction-id.ts';
import { checkingIntervalMs, createListener, handshakeOnlyCa } from './http/listener.ts';
import { writeRawRefusal } from './http/raw-refusal.ts';
import { REALM, errorReplier } from './http/reply-error.ts';
import { SidecarMetrics } from './metrics.ts';
import { releaseAtEnd, type RequestState } from './request/state.ts';
import { IntrospectionCache } from './introspection/cache.ts';
import { IntrospectionClient } from './authorization-server/introspection-client.ts';
import { type Introspector } from './introspection/answer.ts';
import { connectAuthorizationServer } from './authorization-server/connection.ts';
import { probeAuthorizationServer, type ProbeOutcome } from './authorization-server/probe.ts';
import { AsTroubleReporter } from './authorization-server/trouble.ts';
import { IntrospectionCapacity } from './introspection/capacity.ts';
import { PartnerLimits } from './request/partner-limits.ts';
import { UpstreamSlots, checkDeclaredLength, forward, limitedBody, proxyHooks, registerProxy } from './http/proxy.ts';
import { createRequestAuthoriser } from './request/authorization.ts';
import { PolicySource, resourceMetadataRule } from './request/route-policy.ts';
import { checkMethod, checkedHost, targetRules, upstreamPathOf } from './request/target.ts';
import { TlsReloader } from './http/tls.ts';
import { partnerCertificates } from './request/partner-certificate.ts';
import { extractCredential, rejectTokenInForm, rejectTokenInQuery } from './request/credential.ts';
import { dpopVerifier } from './request/dpop.ts';
import { buildFleet } from './fleet/fleet.ts';
import type { SsfReceiver } from './fleet/ssf-receiver.ts';
import { resourceMetadata, resourceMetadataPath, resourceMetadataUrl } from './http/resource-metadata.ts';
import { createUpstreamTokenSource, type UpstreamTokenSource } from './introspection/upstream-token.ts';

// Only form bodies are read (to refuse a token in one); everything else streams.
const FORM_LIMIT_BYTES = 1024 * 1024;

export interface SidecarParts {
  introspector?: Introspector;
  tokens?: UpstreamTokenSource;
  logger: Logger;
  now?: () => number;
}

export interface Sidecar {
  app: FastifyInstance;
  /** The Shared Signals receiver, for the admin listener; undefined without PHANTOM_SSF_ISSUER. */
  ssf: SsfReceiver | undefined;
  /** RFC 9728 metadata, for the admin listener to serve too. */
  resourceMetadata: { path: string; document: Record<string, unknown> } | undefined;
  /** Ready to authorise: the AS's metadata is known (always, without PHANTOM_AS_ISSUER). */
  ready(): boolean;
  /** Settles only if the AS's metadata contradicts the configuration: the start must stop. */
  configurationError: Promise<ConfigError>;
  cache: IntrospectionCache;
  tokens: UpstreamTokenSource;
  metrics: SidecarMetrics;
  tls: TlsReloader;
  limits: PartnerLimits;
  policy: PolicySource;
  /** Starts a graceful drain: every response from now on closes its connection. */
  drain(): void;
  /** One introspection of a random token, its outcome logged (a start-up check). */
  probe(): Promise<ProbeOutcome>;
}

export async function buildSidecar(config: Config, parts: SidecarParts): Promise<Sidecar> {
  const { logger } = parts;
  const now = parts.now ?? Date.now;
  const as = connectAuthorizationServer(config, logger);
  const client = parts.introspector ?? new IntrospectionClient(config.introspection, as);
  const introspector = new IntrospectionCapacity(client, config.limits.maxConcurrentIntrospections);
  const tokens = parts.tokens ?? (await createUpstreamTokenSource(config.upstreamToken));
  const fleet = buildFleet(config, logger);
  const cache = new IntrospectionCache(introspector, config.cache, now, fleet.level, fleet.level !== undefined || fleet.ssf !== undefined);
  const limits = new PartnerLimits(config.limits, now, config.introspection.timeoutMs);
  const dpop = config.senderConstraints.dpop ? dpopVerifier(config.dpop, fleet.replay, now) : undefined;
  const authorise = createRequestAuthoriser({
    dpop,
    cache,
    tokens,
    limits,
    now,
    rules: {
      requireBinding: config.requireBinding,
      requiredScopes: config.requiredScopes,
      expectedIssuer: config.expectedIssuer,
      expectedAudience: config.expectedAudience,
      senderConstraints: config.senderConstraints,
      // An AS-issued JWT stands for an access token by construction.
      requireTokenType: config.requireTokenType && config.upstreamToken.mode !== 'as-jwt',
    },
  });
  const policy = new PolicySource(
    { path: config.policyFile, reloadIntervalSeconds: config.tls.reloadIntervalSeconds, defaults: { senderConstraints: config.senderConstraints, requiredScopes: config.requiredScopes, caseInsensitive: config.policyCaseInsensitive } },
    logger,
  );
  const metadataRule = config.resource === undefined ? undefined : resourceMetadataRule(resourceMetadataPath(config.resource));
  // The TLS material in force, for certificates that arrive in a trusted ingress's header.
  const partners = partnerCertificates(config.clientCert, () => tls?.material ?? config.tls, now);
  const target = targetRules(config.http.allowedMethods, config.http.publicHosts, config.upstream.url);
  const connections = new ConnectionRules(config.tls.maxConnectionAgeSeconds, now);
  const admission = new ConnectionAdmission(
    // A head already begun meets Node's own 408 first (its checks run every checkingIntervalMs).
    { maxConnectionsPerClient: config.limits.maxConnectionsPerClient, firstRequestTimeoutMs: config.http.headersTimeoutMs + checkingIntervalMs(config.http) },
    { handshakeFailed: (reason) => metrics.handshakeFailed(reason), refused: (cap) => metrics.connectionRefused(cap) },
    logger,
    now,
  );
  const slots = new UpstreamSlots(config.upstream.connections);
  // Reads the TLS state the reloader keeps; the reloader needs the server, made below.
  let tls: TlsReloader | undefined;
  const metrics = new SidecarMetrics({
    activeEntries: () => cache.size,
    inactiveEntries: () => cache.inactiveSize,
    introspectionsInFlight: () => introspector.inFlight,
    upstreamSlotsInUse: () => slots.used,
    fleetConnected: fleet.connected,
    serverNotAfterMs: () => (tls?.material ?? config.tls).serverNotAfterMs,
    crlNextUpdateMs: config.tls.paths.crl.length === 0 ? undefined : () => (tls?.material ?? config.tls).crlNextUpdateMs,
    now,
  });
  const access = new AccessRecorder(logger, metrics);
  introspector.observe = (seconds, outcome) => metrics.introspected(seconds, outcome);
  const trouble = new AsTroubleReporter(logger, (reason) => metrics.asFailed(reason), now);
  introspector.failed = (error) => trouble.failed(error);
  fleet.attach(cache, (seconds) => metrics.revocationApplied(seconds), (kind) => metrics.redisValueRejected(kind));
  const isLastResponse = (socket: Socket): boolean => connections.mustClose(socket);
  const tracker = new RequestTracker(access);
  const idle = new IdleDrain(config.http.keepAliveTimeoutMs, (socket) => tracker.isServing(socket));
  const track = (request: FastifyRequest, reply: FastifyReply): void => tracker.track(request, reply);
  // Bearer carries certificate-bound tokens (and unbound ones where binding is optional).
  const acceptedSchemes = { bearer: config.senderConstraints.mtls || !config.requireBinding, dpop: config.senderConstraints.dpop };
  const schemes: AuthScheme[] = acceptedSchemes.bearer ? ['Bearer'] : [];
  if (acceptedSchemes.dpop) schemes.push('DPoP');
  const challenges: ChallengeContext = {
    realm: REALM,
    schemes,
    dpopAlgs: config.dpop.algs,
    resourceMetadata: config.resource === undefined ? undefined : resourceMetadataUrl(config.resource),
  };
  const replyWithError = errorReplier({ logger, challenges, isLastResponse, track });

  const app = Fastify({
    serverFactory: (handler) => createListener(config, handler),
    // No logger for Fastify: it would make a child logger per request. The access recorder
    // writes the one line per request, and the error reply logs what is unexpected.
    logger: false,
    genReqId: interactionIdOf,
    bodyLimit: FORM_LIMIT_BYTES,
    // A drain closes connections after their current response instead (see drain()).
    return503OnClosing: false,
    // Errors raised before routing (a malformed URL) would otherwise get Fastify's own body,
    // which quotes the URL, query and all.
    frameworkErrors: replyWithError,
    clientErrorHandler: (error, socket) => tracker.onClientError(error, socket),
  });
  app.decorateRequest('phantom', null as unknown as RequestState);

  // Bodies stream to the API within PHANTOM_MAX_BODY_BYTES; only forms are read, to refuse a
  // token inside one.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.addContentTypeParser('*', (_request, payload, done) => done(null, limitedBody(payload, config.http.maxBodyBytes)));

  // Callback-style hooks where no await is needed: no promise per request.
  app.addHook('onRequest', (request, reply, done) => {
    // Set first, so every answer carries it; the API's copy is dropped in proxy.ts.
    reply.header('x-fapi-interaction-id', request.id);
    track(request, reply);
    const state = request.phantom;
    const { raw } = request;
    const socket = raw.socket as TLSSocket;
    // The admission destroyed every unverified connection; this never lets one through if not.
    if (!socket.authorized) throw new InternalError('unverified_connection');
    admission.requestArrived(socket);
    const partner = partners.of(socket, { distinct: raw.headersDistinct });
    state.x5t = partner.x5t;
    if (config.forwardClientCert) state.partnerCertificate = partner.der;
    checkMethod(request.method, target);
    state.method = request.method;
    const url = raw.url ?? '';
    state.checkedHost = checkedHost(raw.headers.host, target);
    if (metadataRule !== undefined && url === metadataRule.path && metadataRule.methods?.has(request.method) === true) {
      // RFC 9728 metadata, served by the sidecar itself: its path is not the API's.
      state.upstreamPath = metadataRule.path;
      state.route = metadataRule;
    } else {
      state.upstreamPath = upstreamPathOf(url, target);
      state.route = policy.current.match(request.method, state.upstreamPath);
    }
    // A DPoP proof names the URL the client addressed; nothing else needs it.
    if (acceptedSchemes.dpop && state.checkedHost !== undefined) state.htu = `https://${state.checkedHost}${url.split('?', 1)[0] ?? ''}`;
    checkDeclaredLength(raw.headers['content-length'], config.http.maxBodyBytes);
    releaseAtEnd(state, limits.enter(state.x5t ?? ''));
    rejectTokenInQuery(url);
    // A public route: forwarded with no token looked at and no JWT (the access line says so).
    if (state.route.anonymous) {
      done();
      return;
    }
    const credential = extractCredential(raw.headersDistinct.authorization, raw.headersDistinct.dpop, acceptedSchemes);
    state.scheme = credential.scheme;
    state.token = credential.token;
    state.dpopProof = credential.proof;
    done();
  });

  app.addHook('preHandler', (request, _reply, done) => {
    const state = request.phantom;
    if (state.route?.anonymous === true) {
      done();
      return;
    }
    if (Buffer.isBuffer(request.body)) rejectTokenInForm(request.body);
    // A cache hit with its JWT at hand is decided without a promise (the hot path).
    if (authorise.atOnce(state, request.raw.socket)) {
      done();
      return;
    }
    authorise(state, request.raw.socket).then(() => done(), done);
  });

  app.setErrorHandler(replyWithError);

  await registerProxy(app, config.upstream);
  const hooks = proxyHooks({ forwardCookies: config.http.forwardCookies, isLastResponse });
  const forwardWithSlot = (request: FastifyRequest, reply: FastifyReply, release: () => void): FastifyReply => {
    releaseAtEnd(request.phantom, release);
    return forward(request, reply, hooks);
  };
  const resourceDocument = metadataRule === undefined ? undefined : { path: metadataRule.path, document: resourceMetadata(config, policy.current.scopes()) };
  if (resourceDocument !== undefined) {
    const { path, document } = resourceDocument;
    app.get(path, (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(document));
  }
  // logLevel 'error' keeps reply-from's own warnings out: the access line carries the reason.
  app.all('/*', { logLevel: 'error' }, (request, reply) => {
    const slot = slots.acquire(config.upstream.queueTimeoutMs);
    if (typeof slot === 'function') return forwardWithSlot(request, reply, slot);
    return slot.then((release) => forwardWithSlot(request, reply, release));
  });
  // Reached only by methods outside Fastify's list, which stage 2 has already refused.
  app.setNotFoundHandler(() => {
    throw new RequestRejected('method_not_allowed', { allow: target.allow });
  });

  // The https server createListener made (Fastify's types assume plain http with a factory).
  const server = app.server as unknown as HttpsServer;
  // Node answers CONNECT outside the request handler; without a listener it drops the socket.
  server.on('connect', (request: IncomingMessage, socket: Duplex) => {
    const refusal = new RequestRejected('method_not_allowed', { allow: target.allow, detail: 'CONNECT' });
    const interactionId = interactionIdOf(request);
    tracker.record(interactionId, 'CONNECT', refusal);
    writeRawRefusal(socket, refusal, interactionId);
  });
  // First, before HTTP's own listener: an unverified or over-cap connection never reaches it.
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    if (!admission.admit(socket)) return;
    connections.born(socket);
    idle.opened(socket);
  });
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => admission.handshakeError(error, socket));
  // Past PHANTOM_MAX_CONNECTIONS, Node closes new TCP connections before any TLS work.
  server.maxConnections = config.limits.maxConnections;
  server.on('drop', () => metrics.connectionRefused('total'));
  const reloader = new TlsReloader(server, config.tls, logger, {
    onTrustChanged: (generation) => {
      connections.trustChanged(generation);
      // Idle connections made under the old trust go now; busy ones after their response.
      server.closeIdleConnections();
    },
  }, now, handshakeOnlyCa(config));
  tls = reloader;
  reloader.start();
  policy.start();
  app.addHook('onClose', async () => {
    reloader.stop();
    policy.stop();
    idle.stop();
    await introspector.close();
    await as.close();
    await fleet.close();
  });
  return {
    app,
    resourceMetadata: resourceDocument,
    ssf: fleet.ssf,
    ready: as.ready,
    configurationError: as.configurationError,
    cache,
    tokens,
    metrics,
    tls: reloader,
    limits,
    policy,
    probe: () => probeAuthorizationServer(client, as.ready, logger),
    drain: () => {
      connections.drain();
      idle.start(server);
    },
  };
}
