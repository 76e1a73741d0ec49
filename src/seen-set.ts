// Keys seen within their lifetime, in this process, bounded: the one store of DPoP proof jtis
// and Shared Signals SET jtis (the fleet puts Redis behind both). Past `max` the oldest go
// first, so a flood can shorten how long a key is remembered, never grow memory.
import type { LRUCache } from 'lru-cache';
import { growingLru } from './growing-lru.ts';

export class SeenSet {
  readonly #seen: LRUCache<string, true>;

  constructor(max: number) {
    this.#seen = growingLru<string, true>(max, { ttlAutopurge: false });
  }

  has(key: string): boolean {
    return this.#seen.has(key);
  }

  add(key: string, ttlMs: number): void {
    this.#seen.set(key, true, { ttl: ttlMs });
  }

  /** True the first time `key` is seen within `ttlMs`; false for a repeat. */
  firstSeen(key: string, ttlMs: number): boolean {
    if (this.#seen.has(key)) return false;
    this.add(key, ttlMs);
    return true;
  }
}
