// The sidecar as one of a fleet: with PHANTOM_REDIS_URL, a cache shared by every replica, a
// DPoP jti store that catches a replay at another pod, and revocations broadcast to all; with
// PHANTOM_SSF_ISSUER, a Shared Signals receiver that feeds them. Without Redis, everything is
// per process, exactly as before, and a revocation event reaches this pod alone.
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import type { FleetLevel, IntrospectionCache } from '../introspection/cache.ts';
import { memoryReplayStore, type ReplayStore } from '../request/dpop.ts';
import { FleetUnavailable } from '../errors.ts';
import { RedisFleet, type RejectedKind } from './redis-fleet.ts';
import { SsfReceiver, memoryJtiLedger, type JtiLedger } from './ssf-receiver.ts';
import type { Spans } from '../tracing/seam.ts';

export interface Fleet {
  level: FleetLevel | undefined;
  replay: ReplayStore;
  ssf: SsfReceiver | undefined;
  /** 1 or 0 for the metric; undefined without Redis (and then no metric). */
  connected: (() => number) | undefined;
  /**
   * Lets revocations and reconnections reach the in-process cache; `applied` times each one,
   * `rejected` counts values in Redis that did not open.
   */
  attach(cache: IntrospectionCache, applied?: (seconds: number) => void, rejected?: (kind: RejectedKind) => void): void;
  close(): Promise<void>;
}

/**
 * The jti store on Redis, and this process's in front of it (a replay within this pod is
 * caught without a round trip). A proof that cannot be recorded fleet-wide, because Redis is
 * away or does not answer in time, is refused with 503: it could be replayed at another pod.
 */
class FleetReplayStore implements ReplayStore {
  readonly #fleet: RedisFleet;
  readonly #local = memoryReplayStore();
  constructor(fleet: RedisFleet) {
    this.#fleet = fleet;
  }
  has(key: string): boolean {
    return this.#local.has(key);
  }
  async firstSeen(key: string, ttlMs: number): Promise<boolean> {
    if (!this.#local.firstSeen(key, ttlMs)) return false;
    try {
      return await this.#fleet.firstSeen(key, ttlMs);
    } catch {
      throw new FleetUnavailable('replay_store_unavailable');
    }
  }
}

export function buildFleet(config: Config, logger: Logger, spans?: Spans): Fleet {
  const redis = config.fleet.redis === undefined ? undefined : new RedisFleet(config.fleet.redis, logger, spans);
  let cache: IntrospectionCache | undefined;
  const ledger: JtiLedger = redis === undefined
    ? memoryJtiLedger()
    : { has: (jti) => redis.hasSeen(`ssf:${jti}`), add: (jti, ttl) => redis.markSeen(`ssf:${jti}`, ttl) };
  const ssf = config.fleet.ssf === undefined
    ? undefined
    : new SsfReceiver(config.fleet.ssf, {
        revoke: async (subjects) => {
          // Here first, whatever the fleet can take; if it cannot, the transmitter is told to retry.
          cache?.invalidate(subjects);
          if (redis !== undefined) await redis.revoke(subjects);
        },
      }, ledger, logger);
  return {
    level: redis === undefined ? undefined : { shared: redis, lockTtlMs: config.introspection.timeoutMs, degradedTtlMs: config.fleet.degradedTtlSeconds * 1000 },
    replay: redis === undefined ? memoryReplayStore() : new FleetReplayStore(redis),
    ssf,
    connected: redis === undefined ? undefined : () => (redis.connected ? 1 : 0),
    attach(target, applied, rejected) {
      cache = target;
      if (rejected !== undefined) redis?.onRejectedValue(rejected);
      redis?.onRevocation((subjects, publishedAt) => {
        target.invalidate(subjects);
        applied?.((Date.now() - publishedAt) / 1000);
      });
      redis?.onStateChange((state, reconnected) => {
        if (reconnected) target.flush();
        else if (state === 'disconnected') target.degrade(config.fleet.degradedTtlSeconds * 1000);
      });
    },
    async close() {
      await ssf?.close();
      await redis?.close();
    },
  };
}
