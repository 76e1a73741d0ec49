// Files that are renewed in place while the sidecar runs (cert-manager renews Secrets, a
// ConfigMap edit changes the policy): checked every PHANTOM_TLS_RELOAD_INTERVAL_S, read again
// only when their bytes changed, and used only when they check out. A renewal caught half
// written, or a bad edit, is warned about once and the last good copy stays in force.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { ConfigError } from './env.ts';

export interface WatchedFilesSettings<T> {
  /** The files, read together (a certificate and its key). */
  paths: readonly string[];
  intervalSeconds: number;
  /** Reads and checks them; throws (a ConfigError names the problem) when they do not check out. */
  read: () => T;
  /** A new good copy. */
  changed: (value: T) => void;
  /** What the log lines call them. */
  what: string;
}

/** A digest of the files as they are on disk now; undefined while one is unreadable. */
function filesDigest(paths: readonly string[]): string | undefined {
  try {
    const hash = createHash('sha256');
    for (const path of paths) hash.update(readFileSync(path)).update('\0');
    return hash.digest('base64url');
  } catch {
    return undefined;
  }
}

export class WatchedFiles<T> {
  readonly #settings: WatchedFilesSettings<T>;
  readonly #logger: Logger;
  #digest: string | undefined;
  #lastProblem: string | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** The files as they are now are taken to be the copy in force (read by the caller at start). */
  constructor(settings: WatchedFilesSettings<T>, logger: Logger) {
    this.#settings = settings;
    this.#logger = logger;
    this.#digest = filesDigest(settings.paths);
  }

  start(onEveryCheck?: () => void): void {
    if (this.#settings.intervalSeconds === 0 || this.#settings.paths.length === 0) return;
    this.#timer = setInterval(() => {
      this.check();
      onEveryCheck?.();
    }, this.#settings.intervalSeconds * 1000);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One check; public so that a test need not wait for the timer. Unchanged files cost a read and a hash. */
  check(): void {
    const digest = filesDigest(this.#settings.paths);
    if (digest === undefined || digest === this.#digest) return;
    let value: T;
    try {
      value = this.#settings.read();
    } catch (error) {
      const problem = error instanceof ConfigError || error instanceof Error ? error.message : 'unreadable';
      if (problem !== this.#lastProblem) this.#logger.warn({ problem }, `${this.#settings.what} do not check out; the ones in force stay`);
      this.#lastProblem = problem;
      return;
    }
    this.#lastProblem = undefined;
    this.#digest = digest;
    this.#settings.changed(value);
  }
}
