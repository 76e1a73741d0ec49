// The sidecar put together: every long-lived service built once from the configuration (the
// authorization server's client, the cache and fleet, limits, policy, TLS), the request
// pipeline over them, and the Fastify adapter that drives it. Wiring only: the rules live in
// request/, introspection/, authorization-server/, fleet/ and http/.
import type { Logger } from 'pino';
import type { Config, ConfigError } from './config/config.ts';
import type { ChallengeContext } from './errors.ts';
import { ConnectionAdmission } from './http/admission.ts';
import { IdleDrain } from './http/drain.ts';
import { AccessRecorder } from './http/access.ts';
import { RequestTracker } from './http/request-tracker.ts';
import { ConnectionRules } from './http/connections.ts';
import { checkingIntervalMs, handshakeOnlyCa } from './http/listener.ts';
import { buildDecisionApp } from './http/decision-app.ts';
import { buildProxyApp } from './http/proxy-app.ts';
import { UpstreamSlots } from './http/proxy.ts';
import { REALM, errorReplier } from './http/reply-error.ts';
import { resourceMetadata, resourceMetadataPath, resourceMetadataUrl } from './http/resource-metadata.ts';
import { TlsReloader } from './http/tls.ts';
import { SidecarMetrics } from './metrics.ts';
import { IntrospectionCache } from './introspection/cache.ts';
import { IntrospectionCapacity } from './introspection/capacity.ts';
import type { Introspector } from './introspection/answer.ts';
import { createUpstreamTokenSource, type UpstreamTokenSource } from './introspection/upstream-token.ts';
import { IntrospectionClient } from './authorization-server/introspection-client.ts';
import { connectAuthorizationServer } from './authorization-server/connection.ts';
import { probeAuthorizationServer, type ProbeOutcome } from './authorization-server/probe.ts';
import { AsTroubleReporter } from './authorization-server/trouble.ts';
import { createRequestAuthorizer } from './request/authorization.ts';
import { acceptedSchemes } from './request/credential.ts';
import { dpopVerifier } from './request/dpop.ts';
import { partnerCertificates } from './request/partner-certificate.ts';
import { PartnerLimits } from './request/partner-limits.ts';
import { requestPipeline } from './request/pipeline.ts';
import { PolicySource, resourceMetadataRule } from './request/route-policy.ts';
import { targetRules } from './request/target.ts';
import { buildFleet } from './fleet/fleet.ts';
import type { SsfReceiver } from './fleet/ssf-receiver.ts';
import type { FastifyInstance } from 'fastify';

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
  resourceMetadata: { path: string; document: () => Record<string, unknown> } | undefined;
  /** Ready to authorize: the AS's metadata is known (always, without PHANTOM_AS_ISSUER). */
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
  /** The gRPC ext_authz listener, when PHANTOM_EXT_AUTHZ_GRPC_PORT is set. */
  extAuthz: { port: number } | undefined;
  /** One introspection of a random token, its outcome logged (a start-up check). */
  probe(): Promise<ProbeOutcome>;
}

export async function buildSidecar(config: Config, parts: SidecarParts): Promise<Sidecar> {
  const { logger } = parts;
  const now = parts.now ?? Date.now;
  // The OpenTelemetry SDK is loaded only when an OTLP endpoint is configured.
  const tracing = config.tracing === undefined ? undefined : await (await import('./tracing/otel.ts')).startTracing(config.tracing);
  const as = connectAuthorizationServer(config, logger);
  const client = parts.introspector ?? new IntrospectionClient(config.introspection, as, tracing);
  const introspector = new IntrospectionCapacity(client, config.limits.maxConcurrentIntrospections);
  const tokens = parts.tokens ?? (await createUpstreamTokenSource(config.upstreamToken));
  const fleet = buildFleet(config, logger, tracing);
  const cache = new IntrospectionCache(introspector, config.cache, now, fleet.level, fleet.level !== undefined || fleet.ssf !== undefined);
  const limits = new PartnerLimits(config.limits, now, config.introspection.timeoutMs);
  const dpop = config.senderConstraints.dpop ? dpopVerifier(config.dpop, fleet.replay, now) : undefined;
  const authorizer = createRequestAuthorizer({
    dpop,
    cache,
    tokens,
    limits,
    now,
    spans: tracing,
    rules: {
      requireBinding: config.requireBinding,
      expectedIssuer: config.expectedIssuer,
      expectedAudience: config.expectedAudience,
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
  const partners = partnerCertificates(config.clientCert, () => tls?.material ?? config.tls, now, config.mode === 'decision');
  const target = targetRules(config.http.allowedMethods, config.http.publicHosts, config.upstream?.url);
  const connections = new ConnectionRules(config.tls.maxConnectionAgeSeconds, now);
  const admission = new ConnectionAdmission(
    // A head already begun meets Node's own 408 first (its checks run every checkingIntervalMs).
    { maxConnectionsPerClient: config.limits.maxConnectionsPerClient, firstRequestTimeoutMs: config.http.headersTimeoutMs + checkingIntervalMs(config.http) },
    { handshakeFailed: (reason) => metrics.handshakeFailed(reason), refused: (cap) => metrics.connectionRefused(cap) },
    logger,
    now,
  );
  const slots = config.upstream === undefined ? undefined : new UpstreamSlots(config.upstream.connections);
  // Reads the TLS state the reloader keeps; the reloader needs the server, made below.
  let tls: TlsReloader | undefined;
  const metrics = new SidecarMetrics({
    activeEntries: () => cache.size,
    inactiveEntries: () => cache.inactiveSize,
    introspectionsInFlight: () => introspector.inFlight,
    upstreamSlotsInUse: () => slots?.used ?? 0,
    fleetConnected: fleet.connected,
    serverNotAfterMs: () => (tls?.material ?? config.tls).serverNotAfterMs,
    crlNextUpdateMs: config.tls.paths.crl.length === 0 ? undefined : () => (tls?.material ?? config.tls).crlNextUpdateMs,
    now,
  });
  const access = new AccessRecorder(logger, metrics, config.logTime);
  introspector.observe = (seconds, outcome) => metrics.introspected(seconds, outcome);
  const trouble = new AsTroubleReporter(logger, (reason) => metrics.asFailed(reason), now);
  introspector.failed = (error) => trouble.failed(error);
  fleet.attach(cache, (seconds) => metrics.revocationApplied(seconds), (kind) => metrics.redisValueRejected(kind));
  const tracker = new RequestTracker(access, tracing);
  const idle = new IdleDrain(config.http.keepAliveTimeoutMs, (socket) => tracker.isServing(socket));
  const schemes = acceptedSchemes(config);
  const challenges: ChallengeContext = {
    realm: REALM,
    schemes: (['Bearer', 'DPoP'] as const).filter((scheme) => (scheme === 'Bearer' ? schemes.bearer : schemes.dpop)),
    dpopAlgs: config.dpop.algs,
    resourceMetadata: config.resource === undefined ? undefined : resourceMetadataUrl(config.resource),
  };
  const replyWithError = errorReplier({ logger, challenges, isLastResponse: (socket) => connections.mustClose(socket), track: (request, reply) => tracker.track(request, reply) });
  const pipelineParts = {
    partners,
    target,
    policy: () => policy.current,
    metadataRule,
    schemes,
    maxBodyBytes: config.http.maxBodyBytes,
    limits,
    authorizer,
  };
  const pipeline = requestPipeline(pipelineParts);
  // Built per request, so that a policy reload shows in scopes_supported.
  const resourceDocument = metadataRule === undefined ? undefined : { path: metadataRule.path, document: () => resourceMetadata(config, policy.current.scopes()) };
  const front = {
    config,
    pipeline,
    tracker,
    replyWithError,
    admission,
    connections,
    idle,
    allow: target.allow,
    resourceMetadata: resourceDocument,
    connectionRefused: () => metrics.connectionRefused('total'),
  };
  const { app, server } = config.upstream === undefined || slots === undefined
    ? buildDecisionApp({ ...front, jwtHeader: config.decision?.jwtHeader ?? 'authorization', pathPrefix: config.decision?.pathPrefix ?? '' })
    : await buildProxyApp({ ...front, upstream: config.upstream, slots });
  // Envoy's gRPC ext_authz: loaded only where it is asked for.
  let extAuthz: { port: number; close(): Promise<void> } | undefined;
  const grpcPort = config.decision?.grpcPort;
  if (grpcPort !== undefined && config.clientCert.source === 'header') {
    const { SOURCE_CERTIFICATE, startExtAuthz } = await import('./http/ext-authz-grpc.ts');
    const fromCheck = partnerCertificates({ ...config.clientCert, format: 'nginx', header: SOURCE_CERTIFICATE }, () => tls?.material ?? config.tls, now, true);
    const proxyCa = handshakeOnlyCa(config);
    extAuthz = await startExtAuthz(config.listen.host, grpcPort, {
      pipeline: requestPipeline({ ...pipelineParts, partners: fromCheck }),
      challenges,
      access,
      tls: { cert: config.tls.cert, key: config.tls.key, clientCa: proxyCa === undefined ? config.tls.clientCa : `${config.tls.clientCa}\n${proxyCa}` },
      jwtHeader: config.decision?.jwtHeader ?? 'authorization',
      logger,
    });
  }
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
    await extAuthz?.close();
    await introspector.close();
    await as.close();
    await fleet.close();
    // Spans still batched go out before the process ends.
    await tracing?.close();
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
    extAuthz,
    probe: () => probeAuthorizationServer(client, as.ready, logger),
    drain: () => {
      connections.drain();
      idle.start(server);
    },
  };
}
