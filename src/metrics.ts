// Prometheus metrics for the admin listener's GET /metrics, on prom-client. Label values come
// from fixed sets (status codes, the pipeline's reasons, cache outcomes), never from a request.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AccessLine } from './log.ts';

export class SidecarMetrics {
  readonly registry = new Registry();
  readonly #requests: Counter<'status' | 'reason'>;
  readonly #duration: Histogram;
  readonly #cache: Counter<'outcome'>;

  constructor(cacheSize: () => number) {
    collectDefaultMetrics({ register: this.registry, prefix: 'phantom_' });
    this.#requests = new Counter({
      name: 'phantom_requests_total',
      help: 'Requests answered, by status and refusal reason ("" when served)',
      labelNames: ['status', 'reason'],
      registers: [this.registry],
    });
    this.#duration = new Histogram({
      name: 'phantom_request_duration_seconds',
      help: 'Time from the request to the end of the response, upstream included',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    this.#cache = new Counter({
      name: 'phantom_introspection_cache_total',
      help: 'Introspection cache lookups: hit, miss (one call to the AS) or shared (joined a call under way)',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    new Gauge({
      name: 'phantom_introspection_cache_entries',
      help: 'Introspection answers held in the cache',
      registers: [this.registry],
      collect() {
        this.set(cacheSize());
      },
    });
  }

  record(line: AccessLine): void {
    this.#requests.inc({ status: line.status, reason: line.reason ?? '' });
    this.#duration.observe(line.durationMs / 1000);
    if (line.cache !== 'none') this.#cache.inc({ outcome: line.cache });
  }
}
