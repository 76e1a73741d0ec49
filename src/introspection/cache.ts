// The introspection cache. It holds the authorization server's answer (and the JWT
// made from it), never the decision: binding, time and scope are checked on every request.
// Keys are SHA-256 of the token, so a heap dump holds no usable token.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { growingLru } from '../growing-lru.ts';
import type { Config } from '../config/config.ts';
import type { CacheOutcome } from '../log.ts';
import type { Introspection, Introspector } from './answer.ts';
import { AuthorizationServerUnavailable } from '../errors.ts';
import { subjectsOf, tokenKeyOf } from './subjects.ts';

/** A JWT for the API, kept with the answer it was made from and reused while it is fresh. */
export interface UpstreamJwt {
  /** The signature under way; dropped once it is done, so a cached entry holds the JWT alone. */
  readonly jwt?: Promise<string>;
  /**
   * The JWT once signed, without its protected header (the minter's, the same for all): what
   * the synchronous cache-hit path forwards, behind that header.
   */
  signed?: string | undefined;
  /** Seconds since the epoch. */
  readonly exp: number;
}

export interface CacheEntry {
  readonly introspection: Introspection;
  upstreamJwt: UpstreamJwt | undefined;
}

export interface Lookup {
  entry: CacheEntry;
  outcome: Exclude<CacheOutcome, 'none'>;
  /** On a miss, what `beforeCall` gave: the caller settles it once the answer is judged. */
  ticket?: IntrospectionTicket;
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

function lruOf(maxEntries: number, now: () => number, dispose: (entry: CacheEntry, key: string) => void): LRUCache<string, CacheEntry> {
  return new LRUCache<string, CacheEntry>({
    max: maxEntries,
    dispose,
    ttlAutopurge: false,
    allowStale: false,
    updateAgeOnGet: false,
    // Expiry is judged on the wall clock the TTLs were computed from, read afresh on every
    // get (no 1 ms reuse of a stale "now").
    perf: { now },
    ttlResolution: 0,
  });
}

/** The fleet's shared level behind the in-process one (Redis): answers, locks, connection state. */
export interface SharedAnswers {
  readonly connected: boolean;
  get(key: string): Promise<{ introspection: Introspection; expiresAt: number } | undefined>;
  set(key: string, introspection: Introspection, ttlMs: number, subjects: readonly string[]): Promise<void>;
  lock(key: string, ttlMs: number): Promise<boolean>;
  unlock(key: string): Promise<void>;
  waitFor(key: string, waitMs: number): Promise<{ introspection: Introspection; expiresAt: number } | undefined>;
}

export interface FleetLevel {
  shared: SharedAnswers;
  /** How long a pod waits for another pod's introspection (the introspection timeout). */
  lockTtlMs: number;
  /** The longest an in-process answer lives while the shared level is unreachable. */
  degradedTtlMs: number;
}

// The AS could not be reached or could not answer: the case PHANTOM_CACHE_STALE_IF_ERROR_S is
// for. An answer that came back and was wrong (malformed, unverified, our credentials refused)
// is not: the stale answer is never a way around it.
const UNREACHABLE = new Set(['as_unreachable', 'as_timeout', 'as_error_status', 'as_capacity']);

function isUnreachable(error: unknown): boolean {
  return error instanceof AuthorizationServerUnavailable && UNREACHABLE.has(error.reason);
}

// Longer than any introspection may take (PHANTOM_INTROSPECTION_TIMEOUT_MS is at most 60 s).
const REVOCATION_MEMORY_MS = 120_000;

/**
 * A cache entry with every member it will ever have from the start: V8 then gives it one
 * fixed-size object, where a member added later (the JWT, once signed) costs a second one.
 */
export function cacheEntry(introspection: Introspection): CacheEntry {
  return { introspection, upstreamJwt: undefined };
}

const REVOKED_MEANWHILE: CacheEntry = cacheEntry({ active: false });

interface Resolved {
  entry: CacheEntry;
  outcome: 'miss' | 'fleet' | 'stale';
  ticket?: IntrospectionTicket;
}

/** The right to one introspection: give it back when the AS has answered; say if the token failed. */
export interface IntrospectionTicket {
  release(): void;
  /** The token proved invalid: one failure on the partner's budget (and the slot released). */
  failed(): void;
}

/** Runs before a new call to the authorization server; may wait, or refuse by throwing. */
export type BeforeCall = () => Promise<IntrospectionTicket>;

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
  readonly #fleet: FleetLevel | undefined;
  // Subject -> cache keys, so that a revocation finds its entries without a scan.
  readonly #bySubject = new Map<string, Set<string>>();
  // PHANTOM_CACHE_STALE_IF_ERROR_S: active answers kept a while past their cache lifetime
  // (never past exp), for when the AS cannot be reached. Revocations evict them too.
  readonly #stale: LRUCache<string, CacheEntry> | undefined;

  // Whether revocation events can reach this cache (a fleet or a Shared Signals receiver):
  // without them the subject index would only cost memory.
  readonly #revocable: boolean;
  // Subjects revoked within the last REVOCATION_MEMORY_MS, and when: an answer that was already
  // on its way when its subject was revoked must not be kept, nor used. Made at the first
  // revocation, and growing as it fills.
  #recentlyRevoked: LRUCache<string, number> | undefined;

  constructor(introspector: Introspector, settings: Config['cache'], now: () => number = Date.now, fleet?: FleetLevel, revocable = fleet !== undefined) {
    this.#introspector = introspector;
    this.#revocable = revocable;
    this.#settings = settings;
    this.#now = now;
    this.#fleet = fleet;
    const clock = (): number => this.#now();
    const caching = settings.maxTtlSeconds > 0;
    // A key leaves the subject index only when no level holds it any more.
    const forget = (entry: CacheEntry, key: string): void => {
      if (this.#active?.has(key) !== true && this.#inactive?.has(key) !== true && this.#stale?.has(key) !== true) this.#unindex(entry, key);
    };
    this.#active = caching ? lruOf(settings.maxEntries, clock, forget) : undefined;
    this.#inactive = caching && settings.negativeTtlSeconds > 0 ? lruOf(settings.negativeMaxEntries, clock, forget) : undefined;
    this.#stale = caching && settings.staleIfErrorSeconds > 0 ? lruOf(settings.maxEntries, clock, forget) : undefined;
  }

  /**
   * The answer for this token: from the cache, from a call already under way, from another
   * pod (the fleet level), or a new call. `connection` (the client's socket) lets a repeated
   * token skip its hash. `beforeCall` runs only when a new call to the authorization server is
   * about to be made; it may wait or refuse by throwing, and its ticket comes back with a miss.
   */
  /** The cached answer for this token, if there is one now: no call, no promise. */
  peek(token: string, connection?: object): CacheEntry | undefined {
    const key = keyFor(token, connection);
    return this.#active?.get(key) ?? this.#inactive?.get(key);
  }

  async lookup(token: string, connection?: object, beforeCall?: BeforeCall): Promise<Lookup> {
    const key = keyFor(token, connection);
    const cached = this.#active?.get(key) ?? this.#inactive?.get(key);
    if (cached !== undefined) return { entry: cached, outcome: 'hit' };
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) return { entry: await pending, outcome: 'shared' };
    const call = this.#resolve(key, token, beforeCall);
    const joined = call.then((resolved) => resolved.entry);
    // Joiners see a failure through their own await; with none, it must not go unhandled.
    joined.catch(() => undefined);
    this.#inFlight.set(key, joined);
    try {
      return await call;
    } finally {
      this.#inFlight.delete(key);
    }
  }

  async #resolve(key: string, token: string, beforeCall: BeforeCall | undefined): Promise<Resolved> {
    const fleet = this.#fleet;
    const startedAt = this.#now();
    let locked = false;
    if (fleet !== undefined && fleet.shared.connected) {
      // One introspection per token per cluster: whoever takes the lock asks, the others wait.
      let known = await fleet.shared.get(key);
      if (known === undefined) {
        locked = await fleet.shared.lock(key, fleet.lockTtlMs);
        if (!locked) known = await fleet.shared.waitFor(key, fleet.lockTtlMs);
      }
      if (known !== undefined) {
        if (this.#revokedSince(known.introspection, key, startedAt)) return { entry: REVOKED_MEANWHILE, outcome: 'fleet' };
        const entry = cacheEntry(known.introspection);
        // The same lifetime rule as an answer from the AS: never past exp nor the max TTL.
        const now = this.#now();
        this.#store(key, entry, Math.min(known.expiresAt - now, cacheLifetimeMs(known.introspection, this.#settings, now)));
        return { entry, outcome: 'fleet' };
      }
    }
    let ticket: IntrospectionTicket | undefined;
    try {
      // No await without a beforeCall: the call starts in this very turn.
      if (beforeCall !== undefined) ticket = await beforeCall();
      // A failure rejects here and is never stored.
      const entry = cacheEntry(await this.#introspector.introspect(token));
      // Revoked while the AS was answering: the answer predates the revocation. Not kept, not used.
      if (this.#revokedSince(entry.introspection, key, startedAt)) {
        return ticket === undefined ? { entry: REVOKED_MEANWHILE, outcome: 'miss' } : { entry: REVOKED_MEANWHILE, outcome: 'miss', ticket };
      }
      const ttl = cacheLifetimeMs(entry.introspection, this.#settings, this.#now());
      this.#store(key, entry, ttl);
      if (fleet !== undefined && ttl > 0) await fleet.shared.set(key, entry.introspection, ttl, subjectsOf(entry.introspection, key));
      return ticket === undefined ? { entry, outcome: 'miss' } : { entry, outcome: 'miss', ticket };
    } catch (error) {
      // The authorization server failing is nobody's failed token.
      ticket?.release();
      const stale = isUnreachable(error) ? this.#stale?.get(key) : undefined;
      if (stale !== undefined && stale.introspection.active && (stale.introspection.claims.exp ?? Number.POSITIVE_INFINITY) * 1000 > this.#now()) {
        return { entry: stale, outcome: 'stale' };
      }
      throw error;
    } finally {
      if (locked) await fleet?.shared.unlock(key);
    }
  }

  #store(key: string, entry: CacheEntry, ttlMs: number): void {
    let ttl = ttlMs;
    // Cut off from the fleet, revocation events may be missed: answers live only briefly.
    if (this.#fleet !== undefined && !this.#fleet.shared.connected) ttl = Math.min(ttl, this.#fleet.degradedTtlMs);
    if (ttl <= 0) return;
    (entry.introspection.active ? this.#active : this.#inactive)?.set(key, entry, { ttl });
    if (entry.introspection.active && this.#stale !== undefined) {
      const exp = entry.introspection.claims.exp;
      const untilExp = exp === undefined ? Number.POSITIVE_INFINITY : exp * 1000 - this.#now();
      const staleTtl = Math.min(ttl + this.#settings.staleIfErrorSeconds * 1000, untilExp);
      if (staleTtl > 0) this.#stale.set(key, entry, { ttl: staleTtl });
    }
    if (!this.#revocable) return;
    for (const subject of subjectsOf(entry.introspection, key)) {
      // A token's own subject is its cache key: no index needed to find it.
      if (tokenKeyOf(subject) !== undefined) continue;
      let keys = this.#bySubject.get(subject);
      if (keys === undefined) {
        keys = new Set();
        this.#bySubject.set(subject, keys);
      }
      keys.add(key);
    }
  }

  #unindex(entry: CacheEntry, key: string): void {
    if (!this.#revocable) return;
    for (const subject of subjectsOf(entry.introspection, key)) {
      const keys = this.#bySubject.get(subject);
      keys?.delete(key);
      if (keys?.size === 0) this.#bySubject.delete(subject);
    }
  }

  #revokedSince(introspection: Introspection, key: string, since: number): boolean {
    const revoked = this.#recentlyRevoked;
    if (revoked === undefined || revoked.size === 0) return false;
    return subjectsOf(introspection, key).some((subject) => (revoked.get(subject) ?? Number.NEGATIVE_INFINITY) >= since);
  }

  /** Drops every answer a revocation names; returns how many. */
  invalidate(subjects: readonly string[]): number {
    let dropped = 0;
    const now = this.#now();
    if (this.#revocable) this.#recentlyRevoked ??= growingLru<string, number>(100_000, { ttl: REVOCATION_MEMORY_MS, ttlAutopurge: false });
    for (const subject of subjects) {
      this.#recentlyRevoked?.set(subject, now);
      const own = tokenKeyOf(subject);
      const keys = own !== undefined ? [own] : [...(this.#bySubject.get(subject) ?? [])];
      for (const key of keys) {
        if (this.#active?.delete(key) === true) dropped += 1;
        if (this.#inactive?.delete(key) === true) dropped += 1;
        this.#stale?.delete(key);
      }
    }
    return dropped;
  }

  /**
   * Cut off from the fleet: revocations may now go unheard, so nothing already held outlives
   * the degraded lifetime either (new answers get it in #store).
   */
  degrade(ttlMs: number): void {
    for (const level of [this.#active, this.#inactive, this.#stale]) {
      if (level === undefined) continue;
      for (const key of [...level.keys()]) {
        const entry = level.peek(key);
        if (entry === undefined || level.getRemainingTTL(key) <= ttlMs) continue;
        if (ttlMs <= 0) level.delete(key);
        else level.set(key, entry, { ttl: ttlMs });
      }
    }
  }

  /** After the fleet was unreachable: events may have been missed, so nothing held is trusted. */
  flush(): void {
    this.#active?.clear();
    this.#inactive?.clear();
    this.#stale?.clear();
    this.#bySubject.clear();
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
