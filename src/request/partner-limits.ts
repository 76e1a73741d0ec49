// What one partner (one client certificate) may take from everyone else: concurrent requests,
// introspections of tokens the cache does not know (at most so many at once, queued briefly),
// and failures (tokens and DPoP proofs that prove invalid: token fishing, cache churn).
// Counted by the certificate's x5t#S256, which the handshake has already verified.
import type { LRUCache } from 'lru-cache';
import { growingLru } from '../growing-lru.ts';
import { RequestRejected } from '../errors.ts';
import type { IntrospectionTicket } from '../introspection/cache.ts';
import type { Config } from '../config/config.ts';

const WINDOW_MS = 60_000;
// Partners are the holders of certificates from the partner CAs: a few hundred at most. The
// bound is there so that even a CA issuing without end cannot grow this map without end.
const MAX_TRACKED_PARTNERS = 100_000;

interface FailureWindow {
  startedAt: number;
  failures: number;
}

/** One partner's introspections of unknown tokens: those under way, and those waiting for a slot. */
interface IntrospectionSlots {
  inFlight: number;
  waiting: Array<() => void>;
}

export type Release = () => void;


export type LimitSettings = Pick<Config['limits'], 'maxConcurrentPerClient' | 'maxFailedTokensPerMinute' | 'maxConcurrentIntrospectionsPerClient'>;

export class PartnerLimits {
  readonly #limits: LimitSettings;
  readonly #now: () => number;
  readonly #queueTimeoutMs: number;
  readonly #inFlight = new Map<string, number>();
  readonly #failures: LRUCache<string, FailureWindow>;
  readonly #introspections = new Map<string, IntrospectionSlots>();

  /** @param queueTimeoutMs how long an introspection may wait for one of its partner's slots */
  constructor(limits: LimitSettings, now: () => number = Date.now, queueTimeoutMs = 2000) {
    this.#limits = limits;
    this.#now = now;
    this.#queueTimeoutMs = queueTimeoutMs;
    this.#failures = growingLru<string, FailureWindow>(MAX_TRACKED_PARTNERS);
  }

  /**
   * Counts one request of this partner in flight until the returned release is called, or
   * refuses it with 429 when PHANTOM_MAX_CONCURRENT_PER_CLIENT are already in flight.
   */
  enter(partner: string): Release {
    const current = this.#inFlight.get(partner) ?? 0;
    if (current >= this.#limits.maxConcurrentPerClient) {
      throw new RequestRejected('client_concurrency_limit', { retryAfterSeconds: 1 });
    }
    this.#inFlight.set(partner, current + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#inFlight.get(partner) ?? 1) - 1;
      if (left === 0) this.#inFlight.delete(partner);
      else this.#inFlight.set(partner, left);
    };
  }

  #window(partner: string): FailureWindow {
    const now = this.#now();
    let window = this.#failures.get(partner);
    if (window === undefined || now - window.startedAt >= WINDOW_MS) {
      window = { startedAt: now, failures: 0 };
      this.#failures.set(partner, window);
    }
    return window;
  }

  /** 429 when the partner's PHANTOM_MAX_FAILED_TOKENS_PER_MIN failures of this minute are spent. */
  checkFailureBudget(partner: string): void {
    const window = this.#window(partner);
    if (window.failures >= this.#limits.maxFailedTokensPerMinute) {
      const retryAfterSeconds = Math.max(1, Math.ceil((window.startedAt + WINDOW_MS - this.#now()) / 1000));
      throw new RequestRejected('failed_token_limit', { retryAfterSeconds });
    }
  }

  /** A token or a DPoP proof of this partner proved invalid. */
  recordFailure(partner: string): void {
    this.#window(partner).failures += 1;
  }

  /**
   * Before a token unknown to the cache is sent to the authorization server: refused with 429
   * when the partner's failures are spent; else one of its
   * PHANTOM_MAX_CONCURRENT_INTROSPECTIONS_PER_CLIENT slots, waited for up to the queue
   * timeout (then 429). Only failures count against the budget, so a partner bringing many
   * new good tokens at once is slowed, never refused; a fisher makes at most the budget plus
   * that concurrency of calls in a minute.
   */
  async admitIntrospection(partner: string): Promise<IntrospectionTicket> {
    this.checkFailureBudget(partner);
    let slots = this.#introspections.get(partner);
    if (slots === undefined) {
      slots = { inFlight: 0, waiting: [] };
      this.#introspections.set(partner, slots);
    }
    if (slots.inFlight >= this.#limits.maxConcurrentIntrospectionsPerClient) await this.#waitForSlot(slots);
    else slots.inFlight += 1;
    // Failures may have been spent while this one waited.
    try {
      this.checkFailureBudget(partner);
    } catch (error) {
      this.#releaseSlot(partner, slots);
      throw error;
    }
    let done = false;
    const release = (): void => {
      if (done) return;
      done = true;
      this.#releaseSlot(partner, slots);
    };
    return {
      release,
      failed: () => {
        if (!done) this.recordFailure(partner);
        release();
      },
    };
  }

  #waitForSlot(slots: IntrospectionSlots): Promise<void> {
    return new Promise((resolve, reject) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const at = slots.waiting.indexOf(wake);
        if (at !== -1) slots.waiting.splice(at, 1);
        reject(new RequestRejected('introspection_concurrency_limit', { retryAfterSeconds: 1 }));
      }, this.#queueTimeoutMs);
      slots.waiting.push(wake);
    });
  }

  #releaseSlot(partner: string, slots: IntrospectionSlots): void {
    const next = slots.waiting.shift();
    // The slot passes straight to the next waiter; otherwise it is free again.
    if (next !== undefined) {
      next();
      return;
    }
    slots.inFlight -= 1;
    if (slots.inFlight === 0 && this.#introspections.get(partner) === slots) this.#introspections.delete(partner);
  }

  /** Requests in flight for this partner (for tests and metrics). */
  inFlight(partner: string): number {
    return this.#inFlight.get(partner) ?? 0;
  }
}
