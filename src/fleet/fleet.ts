// The sidecar as one of a fleet: with PHANTOM_REDIS_URL, a cache shared by every replica, a
// DPoP jti store that catches a replay at another pod, and revocations broadcast to all; with
// PHANTOM_SSF_ISSUER, a Shared Signals receiver that feeds them. Without Redis, everything is
// per process, exactly as before, and a revocation event reaches this pod alone.
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { FleetLevel, IntrospectionCache } from '../pipeline/cache.ts';
import { MemoryReplayStore, type ReplayStore } from '../pipeline/dpop.ts';
import { RedisFleet } from './redis-fleet.ts';
import { MemoryJtiLedger, SsfReceiver, type JtiLedger } from './ssf-receiver.ts';

export interface Fleet {
  level: FleetLevel | undefined;
  replay: ReplayStore;
  ssf: SsfReceiver | undefined;
  /** 1 or 0 for the metric; undefined without Redis (and then no metric). */
  connected: (() => number) | undefined;
  /** Lets revocations and reconnections reach the in-process cache; `applied` times each one. */
  attach(cache: IntrospectionCache, applied?: (seconds: number) => void): void;
  close(): Promise<void>;
}

/** The jti store on Redis, falling back to this process's while Redis cannot answer. */
class FleetReplayStore implements ReplayStore {
  readonly #fleet: RedisFleet;
  readonly #local = new MemoryReplayStore();
  constructor(fleet: RedisFleet) {
    this.#fleet = fleet;
  }
  async firstSeen(key: string, ttlMs: number): Promise<boolean> {
    // Recorded here too, so a replay within this pod is caught even while Redis is away.
    const local = this.#local.firstSeen(key, ttlMs);
    if (!local) return false;
    try {
      return this.#fleet.connected ? await this.#fleet.firstSeen(key, ttlMs) : true;
    } catch {
      return true;
    }
  }
}

export function buildFleet(config: Config, logger: Logger): Fleet {
  const redis = config.fleet.redis === undefined ? undefined : new RedisFleet(config.fleet.redis, logger);
  let cache: IntrospectionCache | undefined;
  const ledger: JtiLedger = redis === undefined
    ? new MemoryJtiLedger()
    : { has: (jti) => redis.hasSeen(`ssf:${jti}`), add: (jti, ttl) => redis.markSeen(`ssf:${jti}`, ttl) };
  const ssf = config.fleet.ssf === undefined
    ? undefined
    : new SsfReceiver(config.fleet.ssf, {
        revoke: async (subjects) => {
          // Broadcast first: if the fleet cannot take it, the transmitter is told to retry.
          if (redis !== undefined) await redis.revoke(subjects);
          cache?.invalidate(subjects);
        },
      }, ledger, logger);
  return {
    level: redis === undefined ? undefined : { shared: redis, lockTtlMs: config.introspection.timeoutMs, degradedTtlMs: config.fleet.degradedTtlSeconds * 1000 },
    replay: redis === undefined ? new MemoryReplayStore() : new FleetReplayStore(redis),
    ssf,
    connected: redis === undefined ? undefined : () => (redis.connected ? 1 : 0),
    attach(target, applied) {
      cache = target;
      redis?.onRevocation((subjects, publishedAt) => {
        target.invalidate(subjects);
        applied?.((Date.now() - publishedAt) / 1000);
      });
      redis?.onStateChange((_state, reconnected) => {
        if (reconnected) target.flush();
      });
    },
    async close() {
      await ssf?.close();
      await redis?.close();
    },
  };
}
