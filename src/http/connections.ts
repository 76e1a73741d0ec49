// How long a partner's connection may live: no longer than PHANTOM_TLS_MAX_CONNECTION_AGE_S,
// not past a change of the partner CAs or CRLs it was verified under (a removed CA or a
// revoked certificate must stop working within a reload interval, not at the partner's next
// reconnect), and not past the start of a drain. Such a connection gets `Connection: close`
// on its current response; idle ones are closed at once by the caller.
import type { Socket } from 'node:net';

interface Birth {
  at: number;
  trustGeneration: number;
}

export class ConnectionRules {
  readonly #births = new WeakMap<Socket, Birth>();
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  #trustGeneration = 0;
  #draining = false;

  constructor(maxAgeSeconds: number, now: () => number = Date.now) {
    this.#maxAgeMs = maxAgeSeconds * 1000;
    this.#now = now;
  }

  /** A connection whose handshake has just completed. */
  born(socket: Socket): void {
    this.#births.set(socket, { at: this.#now(), trustGeneration: this.#trustGeneration });
  }

  trustChanged(generation: number): void {
    this.#trustGeneration = generation;
  }

  drain(): void {
    this.#draining = true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** Whether the response being made on this connection must be its last. */
  mustClose(socket: Socket): boolean {
    if (this.#draining) return true;
    const birth = this.#births.get(socket);
    if (birth === undefined) return true;
    return birth.trustGeneration < this.#trustGeneration || this.#now() - birth.at >= this.#maxAgeMs;
  }
}
