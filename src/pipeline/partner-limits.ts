// What one partner (one client certificate) may take from everyone else: concurrent requests,
// and introspections of tokens that turn out not to be valid (token fishing, cache churn).
// Counted by the certificate's x5t#S256, which the handshake has already verified.
import { LRUCache } from 'lru-cache';
import { RequestRejected } from '../errors.ts';
import type { Config } from '../config.ts';

const WINDOW_MS = 60_000;
// Partners are the holders of certificates from the partner CAs: a few hundred at most. The
// bound is there so that even a CA issuing without end cannot grow this map without end.
const MAX_TRACKED_PARTNERS = 100_000;

interface FailureWindow {
  startedAt: number;
  /** Introspections charged in this window (a charge is refunded when the token is good). */
  charged: number;
}

export type Release = () => void;

export class PartnerLimits {
  readonly #limits: Config['limits'];
  readonly #now: () => number;
  readonly #inFlight = new Map<string, number>();
  readonly #failures: LRUCache<string, FailureWindow>;

  constructor(limits: Config['limits'], now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
    this.#failures = new LRUCache<string, FailureWindow>({ max: MAX_TRACKED_PARTNERS });
  }

  /**
   * Counts one request of this partner in flight until the returned release is called, or
   * refuses it with 429 when PHANTOM_MAX_CONCURRENT_PER_CLIENT are already in flight.
   */
  enter(partner: string): Release {
    const current = this.#inFlight.get(partner) ?? 0;
    if (current >= this.#limits.maxConcurrentPerClient) {
      throw new RequestRejected(429, 'client_concurrency_limit', { retryAfterSeconds: 1 });
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

  /**
   * Before a token unknown to the cache is sent to the authorization server: charges the
   * partner one failed token in advance, so that even concurrent fishing cannot exceed
   * PHANTOM_MAX_FAILED_TOKENS_PER_MIN calls in a minute. Past it, 429 and no call. The
   * returned function refunds the charge (the token was good, or the AS failed).
   */
  chargeIntrospection(partner: string): Release {
    const now = this.#now();
    let window = this.#failures.get(partner);
    if (window === undefined || now - window.startedAt >= WINDOW_MS) {
      window = { startedAt: now, charged: 0 };
      this.#failures.set(partner, window);
    }
    if (window.charged >= this.#limits.maxFailedTokensPerMinute) {
      const retryAfterSeconds = Math.max(1, Math.ceil((window.startedAt + WINDOW_MS - now) / 1000));
      throw new RequestRejected(429, 'failed_token_limit', { retryAfterSeconds });
    }
    window.charged += 1;
    const charged = window;
    let refunded = false;
    return () => {
      if (refunded) return;
      refunded = true;
      // A window that has rolled over since is not touched.
      if (this.#failures.get(partner) === charged && charged.charged > 0) charged.charged -= 1;
    };
  }

  /** Requests in flight for this partner (for tests and metrics). */
  inFlight(partner: string): number {
    return this.#inFlight.get(partner) ?? 0;
  }
}
