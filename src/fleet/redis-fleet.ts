// The fleet's shared memory on Redis: introspection answers (parsed, never the token or a
// minted JWT) under versioned keys built from the token's SHA-256, short locks for one
// introspection per token per cluster, revocations broadcast over pub/sub, DPoP jti and
// Shared Signals jti sets. Every answer and every revocation message is sealed (sealing.ts):
// Redis cannot grant access, nor flush every pod's cache, nor tell who holds a token.
// Every command has a deadline (PHANTOM_REDIS_TIMEOUT_MS) and no offline queue; a Redis
// that stops answering (paused, overloaded) counts as away exactly like a closed connection,
// so the degraded lifetime applies and everything held is flushed when it answers again.
import type { Redis } from 'ioredis';
import { ioredis } from '../lazy.ts';
import type { Logger } from 'pino';
import type { FleetConfig } from '../config/config.ts';
import { LogThrottle } from '../log.ts';
import { parseClaims, type Introspection } from '../introspection/answer.ts';
import { Sealer } from './sealing.ts';
import { inSpan, type Spans } from '../tracing/seam.ts';
import { tokenKeyOf } from '../introspection/subjects.ts';

const PREFIX = 'phantom:v2:';
const REVOCATIONS = `${PREFIX}revocations`;
const POLL_MS = 10;
// Commands that time out this many times in a row, or one failed health ping, and Redis is away.
const TIMEOUTS_AWAY = 3;
const HEALTH_PING_MS = 500;
// A revocation message older (or further ahead) than this is a replay, not news.
const MESSAGE_MAX_AGE_MS = 60_000;
const REJECTED_LOG_INTERVAL_MS = 60_000;
const MAX_PENDING_REVOCATIONS = 10_000;

export type RejectedKind = 'answer' | 'revocation';

interface StoredAnswer {
  introspection: Introspection;
  /** ms since the epoch. */
  expiresAt: number;
}

/** An answer as it was sealed; anything else is ignored (and overwritten by the next writer). */
export function parseStored(text: string): StoredAnswer | undefined {
  try {
    const value = JSON.parse(text) as { expiresAt?: unknown; introspection?: { active?: unknown; claims?: unknown; jwt?: unknown } };
    const stored = value.introspection;
    if (typeof value.expiresAt !== 'number' || typeof stored !== 'object' || stored === null) return undefined;
    if (stored.active === false) return { introspection: { active: false }, expiresAt: value.expiresAt };
    if (stored.active !== true || typeof stored.claims !== 'object' || stored.claims === null) return undefined;
    // The claims are read by the same rules as an AS's answer: a value that breaks them is not used.
    const claims = parseClaims(stored.claims as Record<string, unknown>);
    const introspection: Introspection = typeof stored.jwt === 'string' ? { active: true, claims, jwt: stored.jwt } : { active: true, claims };
    return { introspection, expiresAt: value.expiresAt };
  } catch {
    return undefined;
  }
}

export type FleetState = 'connected' | 'disconnected';

function isTimeout(error: unknown): boolean {
  return error instanceof Error && /timed out/i.test(error.message);
}

export class RedisFleet {
  readonly #client: Redis;
  readonly #spans: Spans | undefined;
  readonly #subscriber: Redis;
  readonly #logger: Logger;
  readonly #sealer: Sealer;
  readonly #rejectedLog = new LogThrottle(REJECTED_LOG_INTERVAL_MS);
  #state: FleetState = 'disconnected';
  #catchingUp = false;
  // Revocations applied here that the fleet could not take yet (bounded: beyond it, the
  // transmitter's retry and the flush on reconnect are what is left).
  readonly #pending: string[][] = [];
  #everConnected = false;
  #timeoutsInARow = 0;
  readonly #health: NodeJS.Timeout;
  readonly #stateListeners: Array<(state: FleetState, reconnected: boolean) => void> = [];
  readonly #revocationListeners: Array<(subjects: string[], publishedAt: number) => void> = [];
  readonly #rejectedListeners: Array<(kind: RejectedKind) => void> = [];

  constructor(settings: NonNullable<FleetConfig['redis']>, logger: Logger, spans?: Spans) {
    this.#spans = spans;
    this.#logger = logger;
    this.#sealer = new Sealer(settings.key, settings.previousKey);
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
    this.#client = new (ioredis().Redis)(settings.url.href, options);
    this.#subscriber = new (ioredis().Redis)(settings.url.href, { ...options, commandTimeout: undefined, enableOfflineQueue: true });
    this.#client.on('ready', () => void this.#answersAgain());
    this.#client.on('close', () => this.#setState('disconnected'));
    // ioredis reports each failed attempt; the state change is what is logged.
    this.#client.on('error', () => undefined);
    this.#subscriber.on('error', () => undefined);
    this.#subscriber.on('ready', () => void this.#subscriber.subscribe(REVOCATIONS).catch(() => undefined));
    this.#subscriber.on('message', (_channel: string, message: string) => this.#onMessage(message));
    // A paused or stalled Redis keeps its connection open: only an unanswered ping shows it.
    this.#health = setInterval(() => void this.#ping(), HEALTH_PING_MS);
    this.#health.unref();
  }

  async #ping(): Promise<void> {
    if (this.#client.status !== 'ready') return;
    try {
      await this.#client.ping();
      this.#timeoutsInARow = 0;
    } catch {
      this.#setState('disconnected');
      return;
    }
    await this.#answersAgain();
  }

  /**
   * Redis answers (again): revocations this pod could not broadcast while it was away are
   * broadcast first, so that no pod reads an answer Redis still holds for a revoked token;
   * then the fleet is back in use (and every pod flushes what it held meanwhile).
   */
  async #answersAgain(): Promise<void> {
    if (this.#state === 'connected' || this.#catchingUp) return;
    this.#catchingUp = true;
    try {
      while (this.#pending.length > 0) {
        const subjects = this.#pending[0] ?? [];
        await this.#broadcast(subjects);
        this.#pending.shift();
      }
      this.#setState('connected');
    } catch {
      // Still not answering: the next ping tries again.
    } finally {
      this.#catchingUp = false;
    }
  }

  /** Runs one command, counting timeouts in a row: past a few, Redis is away. */
  async #command<T>(run: () => Promise<T>, operation: string): Promise<T> {
    try {
      const result = await inSpan(this.#spans, 'redis', 'client', { 'db.system.name': 'redis', 'db.operation.name': operation }, run);
      this.#timeoutsInARow = 0;
      return result;
    } catch (error) {
      if (isTimeout(error)) {
        this.#timeoutsInARow += 1;
        if (this.#timeoutsInARow >= TIMEOUTS_AWAY) this.#setState('disconnected');
      }
      throw error;
    }
  }

  #onMessage(message: string): void {
    const opened = this.#sealer.open('revocation', REVOCATIONS, message);
    let parsed: { subjects?: unknown; at?: unknown } | undefined;
    try {
      parsed = opened === undefined ? undefined : (JSON.parse(opened) as { subjects?: unknown; at?: unknown });
    } catch {
      parsed = undefined;
    }
    const { subjects, at } = parsed ?? {};
    const fresh = typeof at === 'number' && Math.abs(Date.now() - at) <= MESSAGE_MAX_AGE_MS;
    if (!fresh || !Array.isArray(subjects) || !subjects.every((subject) => typeof subject === 'string')) {
      this.#rejected('revocation');
      return;
    }
    for (const listener of this.#revocationListeners) listener(subjects as string[], at);
  }

  #rejected(kind: RejectedKind): void {
    for (const listener of this.#rejectedListeners) listener(kind);
    const suppressed = this.#rejectedLog.admit(kind);
    if (suppressed !== undefined) this.#logger.warn({ kind, suppressed }, 'a value in Redis does not open under PHANTOM_REDIS_KEY (forged, moved, or sealed under another key); it is ignored');
  }

  #setState(state: FleetState): void {
    if (state === this.#state) return;
    const reconnected = state === 'connected' && this.#everConnected;
    if (state === 'connected') {
      this.#everConnected = true;
      this.#timeoutsInARow = 0;
    }
    this.#state = state;
    this.#logger[state === 'connected' ? 'info' : 'warn']({ redis: state }, state === 'connected' ? 'redis connected: the shared cache is in use' : 'redis unreachable or not answering in time: in-process cache only, with the degraded lifetime');
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

  /** Told of every value that did not open: counted as a metric by the caller. */
  onRejectedValue(listener: (kind: RejectedKind) => void): void {
    this.#rejectedListeners.push(listener);
  }

  async get(key: string): Promise<{ introspection: Introspection; expiresAt: number } | undefined> {
    if (!this.connected) return undefined;
    const name = `${PREFIX}answer:${key}`;
    let text: string | null;
    try {
      text = await this.#command(() => this.#client.get(name), 'GET');
    } catch {
      return undefined;
    }
    if (text === null) return undefined;
    const opened = this.#sealer.open('answer', name, text);
    const stored = opened === undefined ? undefined : parseStored(opened);
    if (stored === undefined) {
      this.#rejected('answer');
      return undefined;
    }
    return stored.expiresAt <= Date.now() ? undefined : stored;
  }

  /** Stores an answer for `ttlMs`, indexed under its subjects so a revocation finds it. */
  async set(key: string, introspection: Introspection, ttlMs: number, subjects: readonly string[]): Promise<void> {
    if (!this.connected || ttlMs <= 0) return;
    const name = `${PREFIX}answer:${key}`;
    const value: StoredAnswer = { introspection, expiresAt: Date.now() + ttlMs };
    const pipeline = this.#client.multi().set(name, this.#sealer.seal('answer', name, JSON.stringify(value)), 'PX', ttlMs);
    for (const subject of subjects) {
      // A token's own subject is its key: revoking it deletes the answer by name.
      if (tokenKeyOf(subject) !== undefined) continue;
      const index = `${PREFIX}subject:${this.#sealer.subjectNames(subject)[0] ?? ''}`;
      pipeline.sadd(index, key).pexpire(index, ttlMs, 'GT').pexpire(index, ttlMs, 'NX');
    }
    await this.#command(() => pipeline.exec(), 'MULTI set').catch(() => undefined);
  }

  /** A short lock: the one pod that gets it introspects, the others wait for its answer. */
  async lock(key: string, ttlMs: number): Promise<boolean> {
    if (!this.connected) return true;
    try {
      return (await this.#command(() => this.#client.set(`${PREFIX}lock:${key}`, '1', 'PX', ttlMs, 'NX'), 'SET NX lock')) === 'OK';
    } catch {
      return true;
    }
  }

  async unlock(key: string): Promise<void> {
    if (!this.connected) return;
    await this.#command(() => this.#client.del(`${PREFIX}lock:${key}`), 'DEL lock').catch(() => undefined);
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
    try {
      if (!this.connected) throw new Error('redis unavailable');
      await this.#broadcast(subjects);
    } catch (error) {
      if (this.#pending.length < MAX_PENDING_REVOCATIONS) this.#pending.push([...subjects]);
      throw error;
    }
  }

  async #broadcast(subjects: readonly string[]): Promise<void> {
    const keys = new Set<string>();
    const indexes: string[] = [];
    for (const subject of subjects) {
      const own = tokenKeyOf(subject);
      if (own !== undefined) {
        keys.add(own);
        continue;
      }
      for (const name of this.#sealer.subjectNames(subject)) {
        const index = `${PREFIX}subject:${name}`;
        indexes.push(index);
        for (const key of await this.#command(() => this.#client.smembers(index), 'SMEMBERS')) keys.add(key);
      }
    }
    const pipeline = this.#client.multi();
    for (const key of keys) pipeline.del(`${PREFIX}answer:${key}`);
    for (const index of indexes) pipeline.del(index);
    pipeline.publish(REVOCATIONS, this.#sealer.seal('revocation', REVOCATIONS, JSON.stringify({ subjects, at: Date.now() })));
    const results = await this.#command(() => pipeline.exec(), 'MULTI revoke');
    if (results === null || results.some(([error]) => error !== null)) throw new Error('redis refused the revocation');
  }

  /** Atomic set-if-absent: true the first time `key` is seen within `ttlMs`, across the fleet. Throws when Redis cannot say. */
  async firstSeen(key: string, ttlMs: number): Promise<boolean> {
    if (!this.connected) throw new Error('redis unavailable');
    return (await this.#command(() => this.#client.set(`${PREFIX}seen:${key}`, '1', 'PX', ttlMs, 'NX'), 'SET NX seen')) === 'OK';
  }

  /** The Shared Signals jti ledger on the fleet, so a SET replayed at another pod is refused too. */
  async hasSeen(key: string): Promise<boolean> {
    return (await this.#command(() => this.#client.exists(`${PREFIX}seen:${key}`), 'EXISTS seen')) === 1;
  }

  async markSeen(key: string, ttlMs: number): Promise<void> {
    await this.#command(() => this.#client.set(`${PREFIX}seen:${key}`, '1', 'PX', ttlMs), 'SET seen');
  }

  async close(): Promise<void> {
    clearInterval(this.#health);
    this.#client.disconnect();
    this.#subscriber.disconnect();
  }
}
