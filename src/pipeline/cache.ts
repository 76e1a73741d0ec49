// Stage 4: the introspection cache. It holds the authorization server's answer (and the JWT
// made from it), never the decision: binding, time and scope are checked on every request.
// Keys are SHA-256 of the token, so a heap dump holds no usable token.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Config } from '../config.ts';
import type { CacheOutcome } from '../request-state.ts';
import type { Introspection, Introspector } from './introspect.ts';

/** A JWT for the API, kept with the answer it was made from and reused while it is fresh. */
export interface UpstreamJwt {
  readonly jwt: Promise<string>;
  /** Seconds since the epoch. */
  readonly exp: number;
}

export interface CacheEntry {
  readonly introspection: Introspection;
  upstreamJwt?: UpstreamJwt;
}

export interface Lookup {
  entry: CacheEntry;
  outcome: Exclude<CacheOutcome, 'none'>;
  /** On a miss, what `beforeCall` returned: the caller refunds it once the token proves good. */
  charge?: () => void;
}

export function tokenKey(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

// A keep-alive client repeats one token on one connection: its key is remembered there, so
// the repeat costs a string comparison instead of a hash.
const lastKeyOnConnection = new WeakMap<object, { token: string; key: string }>();

function keyFor(token: string, connection: object | undefined): string {
  if (connection === undefined) return tokenKey(token);
  const last = lastKeyOnConnection.get(connection);
  if (last !== undefined && last.token === token) return last.key;
  const key = tokenKey(token);
  lastKeyOnConnection.set(connection, { token, key });
  return key;
}

/**
 * How long an answer may be reused, in ms: an active one until min(exp, max TTL), an
 * inactive one for the negative TTL. Zero means "do not store". RFC 7662 §4: never past exp.
 */
export function cacheLifetimeMs(introspection: Introspection, settings: Config['cache'], nowMs: number): number {
  if (settings.maxTtlSeconds === 0) return 0;
  const maxMs = settings.maxTtlSeconds * 1000;
  if (!introspection.active) return Math.min(settings.negativeTtlSeconds * 1000, maxMs);
  const { exp } = introspection.claims;
  const untilExpiry = exp === undefined ? maxMs : Math.floor(exp * 1000 - nowMs);
  return Math.max(0, Math.min(untilExpiry, maxMs));
}

function lruOf(maxEntries: number, now: () => number): LRUCache<string, CacheEntry> {
  return new LRUCache<string, CacheEntry>({
    max: maxEntries,
    ttlAutopurge: false,
    allowStale: false,
    updateAgeOnGet: false,
    // Expiry is judged on the wall clock the TTLs were computed from, read afresh on every
    // get (no 1 ms reuse of a stale "now").
    perf: { now },
    ttlResolution: 0,
  });
}

export class IntrospectionCache {
  readonly #introspector: Introspector;
  readonly #settings: Config['cache'];
  readonly #now: () => number;
  readonly #active: LRUCache<string, CacheEntry> | undefined;
  // Inactive answers live apart, in a small cache of their own: random tokens, however many,
  // can only evict each other, never a partner's active answer.
  readonly #inactive: LRUCache<string, CacheEntry> | undefined;
  // lru-cache's fetch() also coalesces, but it cannot share a call without storing its
  // result (ttl 0 means "forever" there), which PHANTOM_CACHE_MAX_TTL_S=0 needs.
  readonly #inFlight = new Map<string, Promise<CacheEntry>>();

  constructor(introspector: Introspector, settings: Config['cache'], now: () => number = Date.now) {
    this.#introspector = introspector;
    this.#settings = settings;
    this.#now = now;
    const clock = (): number => this.#now();
    const caching = settings.maxTtlSeconds > 0;
    this.#active = caching ? lruOf(settings.maxEntries, clock) : undefined;
    this.#inactive = caching && settings.negativeTtlSeconds > 0 ? lruOf(settings.negativeMaxEntries, clock) : undefined;
  }

  /**
   * The answer for this token: from the cache, from a call already under way, or a new call.
   * `connection` (the client's socket) lets a repeated token skip its hash. `beforeCall` runs
   * only when a new call to the authorization server is about to be made; it may refuse it
   * by throwing, and what it returns comes back as `charge`.
   */
  async lookup(token: string, connection?: object, beforeCall?: () => () => void): Promise<Lookup> {
    const key = keyFor(token, connection);
    const cached = this.#active?.get(key) ?? this.#inactive?.get(key);
    if (cached !== undefined) return { entry: cached, outcome: 'hit' };
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) return { entry: await pending, outcome: 'shared' };
    const charge = beforeCall?.();
    const call = this.#introspectAndStore(key, token);
    this.#inFlight.set(key, call);
    try {
      const entry = await call;
      return charge === undefined ? { entry, outcome: 'miss' } : { entry, outcome: 'miss', charge };
    } catch (error) {
      // The authorization server failing is nobody's failed token.
      charge?.();
      throw error;
    } finally {
      this.#inFlight.delete(key);
    }
  }

  async #introspectAndStore(key: string, token: string): Promise<CacheEntry> {
    // A failure rejects here and is never stored.
    const entry: CacheEntry = { introspection: await this.#introspector.introspect(token) };
    const ttl = cacheLifetimeMs(entry.introspection, this.#settings, this.#now());
    if (ttl > 0) (entry.introspection.active ? this.#active : this.#inactive)?.set(key, entry, { ttl });
    return entry;
  }

  /** Active answers held. */
  get size(): number {
    return this.#active?.size ?? 0;
  }

  /** Inactive answers held. */
  get inactiveSize(): number {
    return this.#inactive?.size ?? 0;
  }
}
