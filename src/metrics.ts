// Prometheus metrics for the admin listener's GET /metrics, on prom-client. Label values come
// from fixed sets (status codes, the closed set of reasons, cache outcomes), never from a
// request.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AccessLine } from './log.ts';
import { VERSION } from './version.ts';

/** What the gauges read at scrape time. */
export interface MetricSources {
  activeEntries(): number;
  inactiveEntries(): number;
  introspectionsInFlight(): number;
  upstreamSlotsInUse(): number;
  /** The server certificate's notAfter, ms since the epoch. */
  serverNotAfterMs(): number;
  /**
   * The earliest nextUpdate of the partner CRLs, ms since the epoch. Absent without CRLs: a
   * metric of a feature not configured is not exposed, so that no alert on it can fire.
   */
  crlNextUpdateMs?: (() => number | undefined) | undefined;
  /** 1 connected, 0 not. Absent without Redis. */
  fleetConnected?: (() => number) | undefined;
  now(): number;
}

/** A counter with one label, registered by the caller (some only when their feature is configured). */
function oneLabelCounter<V extends string>(name: string, label: string, help: string): ((value: V) => void) & { metric: Counter } {
  const metric = new Counter({ name, help, labelNames: [label], registers: [] });
  return Object.assign((value: V) => metric.inc({ [label]: value }), { metric });
}

function gauge(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      const value = read();
      if (value === undefined) this.reset();
      else this.set(value);
    },
  });
}

export class SidecarMetrics {
  readonly registry = new Registry();
  readonly #duration: Histogram;
  readonly #requestCounts = new Map<string, [{ status: number; reason: string; rule: string }, number]>();
  readonly #cacheCounts = new Map<string, number>();

  constructor(sources: MetricSources) {
    collectDefaultMetrics({ register: this.registry, prefix: 'phantom_' });
    // The usual build_info convention: a constant 1 whose labels say what is running.
    new Gauge({ name: 'phantom_build_info', help: 'The running release: version and Node.js version', labelNames: ['version', 'node'], registers: [this.registry] }).set({ version: VERSION, node: process.versions.node }, 1);
    // Counted per request in plain maps, turned into prom-client values only when scraped:
    // label hashing on every request cost more than the rest of the metrics together.
    const requestCounts = this.#requestCounts;
    const cacheCounts = this.#cacheCounts;
    new Counter({
      name: 'phantom_requests_total',
      help: 'Requests answered, by status, refusal reason ("" when served) and route rule ("" before one matched)',
      labelNames: ['status', 'reason', 'rule'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, count] of requestCounts.values()) this.inc(labels, count);
      },
    });
    this.#duration = new Histogram({
      name: 'phantom_request_duration_seconds',
      help: 'Time from the request to the end of the response, upstream included',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    new Counter({
      name: 'phantom_introspection_cache_total',
      help: 'Introspection cache lookups: hit, miss (one call to the AS), shared (joined a call under way), fleet (from another pod) or stale',
      labelNames: ['outcome'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [outcome, count] of cacheCounts) this.inc({ outcome }, count);
      },
    });
    const seconds = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : (ms - sources.now()) / 1000);
    gauge(this.registry, 'phantom_introspection_cache_entries', 'Active introspection answers held in the cache', sources.activeEntries);
    gauge(this.registry, 'phantom_introspection_cache_inactive_entries', 'Inactive introspection answers held in their own cache', sources.inactiveEntries);
    gauge(this.registry, 'phantom_introspections_in_flight', 'Calls to the authorization server under way', sources.introspectionsInFlight);
    gauge(this.registry, 'phantom_upstream_slots_in_use', 'Upstream connections held by requests', sources.upstreamSlotsInUse);
    this.registry.registerMetric(this.#ssf);
    this.registry.registerMetric(this.#introspection);
    this.registry.registerMetric(this.#propagation);
    const { fleetConnected, crlNextUpdateMs } = sources;
    if (fleetConnected !== undefined) {
      gauge(this.registry, 'phantom_redis_connected', 'Whether the fleet\'s Redis answers in time (1) or not (0); absent without Redis', fleetConnected);
      this.registry.registerMetric(this.redisValueRejected.metric);
    }
    gauge(this.registry, 'phantom_tls_server_certificate_expiry_seconds', 'Seconds until the server certificate\'s notAfter', () => seconds(sources.serverNotAfterMs()));
    if (crlNextUpdateMs !== undefined) {
      gauge(
        this.registry,
        'phantom_tls_crl_next_update_seconds',
        'Seconds until the earliest nextUpdate of the partner CRLs; negative: a CRL is stale and its partners fail the handshake; absent without CRLs',
        () => seconds(crlNextUpdateMs()),
      );
    }
    for (const counter of [this.handshakeFailed, this.asFailed, this.connectionRefused]) this.registry.registerMetric(counter.metric);
  }

  /** Counts by reason how many handshakes were refused or failed. */
  readonly handshakeFailed = oneLabelCounter('phantom_tls_handshake_failures_total', 'reason', 'TLS handshakes refused or failed, by reason: expired, unknown_ca, revoked, no_certificate, handshake_timeout, protocol, other');
  /** Counts by reason the calls to the AS that gave no usable answer. */
  readonly asFailed = oneLabelCounter('phantom_as_failures_total', 'reason', 'Calls to the authorization server that gave no usable answer, by reason (as_unreachable, as_timeout, as_error_status, ...)');
  /** Counts the connections a cap closed. */
  readonly connectionRefused = oneLabelCounter<'per_client' | 'total'>('phantom_connections_refused_total', 'cap', 'Connections closed at the handshake because a cap was reached: per_client (PHANTOM_MAX_CONNECTIONS_PER_CLIENT) or total (PHANTOM_MAX_CONNECTIONS)');
  /** Counts the values in Redis that did not open. */
  readonly redisValueRejected = oneLabelCounter<'answer' | 'revocation'>('phantom_redis_rejected_values_total', 'kind', 'Values read from Redis that did not open under PHANTOM_REDIS_KEY (forged, moved, or sealed under another key), by kind; each was a miss');

  readonly #introspection = new Histogram({
    name: 'phantom_introspection_duration_seconds',
    help: 'Calls to the authorization server, by outcome: answered, or failed (down, slow, refused)',
    labelNames: ['outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: [],
  });
  readonly #propagation = new Histogram({
    name: 'phantom_revocation_propagation_seconds',
    help: 'From a revocation event\'s arrival at the fleet to this pod dropping its answers',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [],
  });

  introspected(seconds: number, outcome: 'answered' | 'failed'): void {
    this.#introspection.observe({ outcome }, seconds);
  }

  revocationApplied(seconds: number): void {
    this.#propagation.observe(Math.max(0, seconds));
  }

  readonly #ssf = new Counter({ name: 'phantom_ssf_events_total', help: 'Shared Signals SETs received, by answer: 202 applied, 400 refused, 503 not taken', labelNames: ['status'], registers: [] });

  ssfEvent(status: number): void {
    this.#ssf.inc({ status });
  }

  record(line: AccessLine): void {
    const reason = line.reason ?? '';
    const rule = line.rule ?? '';
    const key = `${line.status} ${reason} ${rule}`;
    const counted = this.#requestCounts.get(key);
    if (counted === undefined) this.#requestCounts.set(key, [{ status: line.status, reason, rule }, 1]);
    else counted[1] += 1;
    this.#duration.observe(line.durationMs / 1000);
    if (line.cache !== 'none') this.#cacheCounts.set(line.cache, (this.#cacheCounts.get(line.cache) ?? 0) + 1);
  }
}
