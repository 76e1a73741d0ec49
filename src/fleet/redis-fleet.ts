// The fleet's shared memory on Redis: introspection answers (parsed, never the token or a
// minted JWT) under versioned keys built from the token's SHA-256, short locks for one
// introspection per token per cluster, revocations broadcast over pub/sub, DPoP jti and
// Shared Signals jti sets. Every command has a deadline (PHANTOM_REDIS_TIMEOUT_MS) and no
// offline queue: when Redis is slow or gone the caller goes on without it, never faster.
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { FleetConfig } from '../config.ts';
import { parseClaims, type Introspection } from '../pipeline/introspect.ts';

const PREFIX = 'phantom:v1:';
const REVOCATIONS = `${PREFIX}revocations`;
const POLL_MS = 10;

/** A cached answer as it is stored in Redis; anything else read back is ignored and overwritten. */
interface StoredAnswer {
  v: 1;
  introspection: Introspection;
  /** ms since the epoch. */
  expiresAt: number;
}

function parseStored(text: string | null): StoredAnswer | undefined {
  if (text === null) return undefined;
  try {
    const value = JSON.parse(text) as { v?: unknown; expiresAt?: unknown; introspection?: { active?: unknown; claims?: unknown; jwt?: unknown } };
    const stored = value.introspection;
    if (value.v !== 1 || typeof value.expiresAt !== 'number' || typeof stored !== 'object' || stored === null) return undefined;
    if (stored.active === false) return { v: 1, introspection: { active: false }, expiresAt: value.expiresAt };
    if (stored.active !== true || typeof stored.claims !== 'object' || stored.claims === null) return undefined;
    // The claims are read by the same rules as an AS's answer: a value that breaks them is not used.
    const claims = parseClaims(stored.claims as Record<string, unknown>);
    const introspection: Introspection = typeof stored.jwt === 'string' ? { active: true, claims, jwt: stored.jwt } : { active: true, claims };
    return { v: 1, introspection, expiresAt: value.expiresAt };
  } catch {
    return undefined;
  }
}

export type FleetState = 'connected' | 'disconnected';

export class RedisFleet {
  readonly #client: Redis;
  readonly #subscriber: Redis;
  readonly #logger: Logger;
  #state: FleetState = 'disconnected';
  #everConnected = false;
  readonly #stateListeners: Array<(state: FleetState, reconnected: boolean) => void> = [];
  readonly #revocationListeners: Array<(subjects: string[], publishedAt: number) => void> = [];

  constructor(settings: NonNullable<FleetConfig['redis']>, logger: Logger) {
    this.#logger = logger;
    const options = {
      password: settings.password,
      tls: settings.url.protocol === 'rediss:' ? { ca: settings.ca, rejectUnauthorized: true } : undefined,
      commandTimeout: settings.timeoutMs,
      connectTimeout: Math.max(settings.timeoutMs, 1000),
      // No queue that grows while Redis is away: a command then fails at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => Math.min(100 * times, 2000),
      lazyConnect: false,
    };
    this.#client = new Redis(settings.url.href, options);
    this.#subscriber = new Redis(settings.url.href, { ...options, commandTimeout: undefined, enableOfflineQueue: true });
    this.#client.on('ready', () => this.#setState('connected'));
    this.#client.on('close', () => this.#setState('disconnected'));
    // ioredis reports each failed attempt; the state change is what is logged.
    this.#client.on('error', () => undefined);
    this.#subscriber.on('error', () => undefined);
    this.#subscriber.on('ready', () => void this.#subscriber.subscribe(REVOCATIONS).catch(() => undefined));
    this.#subscriber.on('message', (_channel: string, message: string) => {
      try {
        const { subjects, at } = JSON.parse(message) as { subjects?: unknown; at?: unknown };
        if (Array.isArray(subjects) && subjects.every((subject) => typeof subject === 'string')) {
          for (const listener of this.#revocationListeners) listener(subjects as string[], typeof at === 'number' ? at : Date.now());
        }
      } catch {
        // not ours
      }
    });
  }

  #setState(state: FleetState): void {
    if (state === this.#state) return;
    const reconnected = state === 'connected' && this.#everConnected;
    if (state === 'connected') this.#everConnected = true;
    this.#state = state;
    this.#logger[state === 'connected' ? 'info' : 'warn']({ redis: state }, state === 'connected' ? 'redis connected: the shared cache is in use' : 'redis disconnected: in-process cache only, with the degraded lifetime');
    for (const listener of this.#stateListeners) listener(state, reconnected);
  }

  get connected(): boolean {
    return this.#state === 'connected';
  }

  onStateChange(listener: (state: FleetState, reconnected: boolean) => void): void {
    this.#stateListeners.push(listener);
  }

  onRevocation(listener: (subjects: string[], publishedAt: number) => void): void {
    this.#revocationListeners.push(listener);
  }

  async get(key: string): Promise<{ introspection: Introspection; expiresAt: number } | undefined> {
    if (!this.connected) return undefined;
    try {
      const stored = parseStored(await this.#client.get(`${PREFIX}answer:${key}`));
      return stored === undefined || stored.expiresAt <= Date.now() ? undefined : stored;
    } catch {
      return undefined;
    }
  }

  /** Stores an answer for `ttlMs`, indexed under its subjects so a revocation finds it. */
  async set(key: string, introspection: Introspection, ttlMs: number, subjects: readonly string[]): Promise<void> {
    if (!this.connected || ttlMs <= 0) return;
    const value: StoredAnswer = { v: 1, introspection, expiresAt: Date.now() + ttlMs };
    const pipeline = this.#client.multi().set(`${PREFIX}answer:${key}`, JSON.stringify(value), 'PX', ttlMs);
    for (const subject of subjects) {
      pipeline.sadd(`${PREFIX}subject:${subject}`, key).pexpire(`${PREFIX}subject:${subject}`, ttlMs, 'GT').pexpire(`${PREFIX}subject:${subject}`, ttlMs, 'NX');
    }
    await pipeline.exec().catch(() => undefined);
  }

  /** A short lock: the one pod that gets it introspects, the others wait for its answer. */
  async lock(key: string, ttlMs: number): Promise<boolean> {
    if (!this.connected) return true;
    try {
      return (await this.#client.set(`${PREFIX}lock:${key}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
    } catch {
      return true;
    }
  }

  async unlock(key: string): Promise<void> {
    await this.#client.del(`${PREFIX}lock:${key}`).catch(() => undefined);
  }

  /** The answer another pod is fetching, polled until it appears or `waitMs` passes. */
  async waitFor(key: string, waitMs: number): Promise<{ introspection: Introspection; expiresAt: number } | undefined> {
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline && this.connected) {
      const found = await this.get(key);
      if (found !== undefined) return found;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    return undefined;
  }

  /**
   * Broadcasts a revocation to every pod and deletes the subjects' answers from Redis. Throws
   * when Redis cannot take it, so the receiver answers 503 and the transmitter tries again.
   */
  async revoke(subjects: readonly string[]): Promise<void> {
    if (!this.connected) throw new Error('redis unavailable');
    const keys = new Set<string>();
    for (const subject of subjects) for (const key of await this.#client.smembers(`${PREFIX}subject:${subject}`)) keys.add(key);
    const pipeline = this.#client.multi();
    for (const key of keys) pipeline.del(`${PREFIX}answer:${key}`);
    for (const subject of subjects) pipeline.del(`${PREFIX}subject:${subject}`);
    pipeline.publish(REVOCATIONS, JSON.stringify({ subjects, at: Date.now() }));
    const results = await pipeline.exec();
    if (results === null || results.some(([error]) => error !== null)) throw new Error('redis refused the revocation');
  }

  /** Atomic set-if-absent: true the first time `key` is seen within `ttlMs`, across the fleet. */
  async firstSeen(key: string, ttlMs: number): Promise<boolean> {
    return (await this.#client.set(`${PREFIX}seen:${key}`, '1', 'PX', ttlMs, 'NX')) === 'OK';
  }

  /** The Shared Signals jti ledger on the fleet, so a SET replayed at another pod is refused too. */
  async hasSeen(key: string): Promise<boolean> {
    return (await this.#client.exists(`${PREFIX}seen:${key}`)) === 1;
  }

  async markSeen(key: string, ttlMs: number): Promise<void> {
    await this.#client.set(`${PREFIX}seen:${key}`, '1', 'PX', ttlMs);
  }

  async close(): Promise<void> {
    this.#client.disconnect();
    this.#subscriber.disconnect();
  }
}
