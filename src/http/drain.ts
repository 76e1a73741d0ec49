// A drain that resets nothing. Node's server.close() (and Fastify's close) closes every idle
// keep-alive connection at once, and a connection idle for a microsecond between two requests
// of a busy client is "idle": its next request meets a reset, and a POST reset that way
// leaves a payment in doubt. While draining, every response carries `Connection: close`
// (connections.ts), and a connection is closed for being idle only once it has stayed idle
// for a grace (a second, or its keep-alive timeout if shorter), so that a client already on
// its way with the next request gets an answer.
import type { Socket } from 'node:net';

const SWEEP_MS = 100;
const GRACE_MS = 1000;

export interface DrainableServer {
  closeIdleConnections(): void;
}

export class IdleDrain {
  readonly #open = new Set<Socket>();
  readonly #idleSince = new WeakMap<Socket, number>();
  readonly #graceMs: number;
  readonly #isServing: (socket: Socket) => boolean;
  #timer: NodeJS.Timeout | undefined;

  constructor(keepAliveTimeoutMs: number, isServing: (socket: Socket) => boolean) {
    this.#graceMs = Math.min(GRACE_MS, keepAliveTimeoutMs);
    this.#isServing = isServing;
  }

  /** A connection whose handshake completed: known until it closes. */
  opened(socket: Socket): void {
    this.#open.add(socket);
    socket.once('close', () => this.#open.delete(socket));
  }

  get open(): number {
    return this.#open.size;
  }

  /** From now on idle connections go after their grace; Node's and Fastify's immediate close of them is turned off. */
  start(server: DrainableServer): void {
    if (this.#timer !== undefined) return;
    server.closeIdleConnections = () => undefined;
    this.#timer = setInterval(() => this.sweep(Date.now()), SWEEP_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One pass: closes connections idle for the grace; public for tests. */
  sweep(now: number): void {
    for (const socket of this.#open) {
      if (this.#isServing(socket)) {
        this.#idleSince.delete(socket);
        continue;
      }
      const since = this.#idleSince.get(socket);
      if (since === undefined) this.#idleSince.set(socket, now);
      else if (now - since >= this.#graceMs) socket.end();
    }
  }
}
