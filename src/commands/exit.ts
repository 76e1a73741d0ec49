// How every command stops on a problem the operator must fix: one line on stderr, exit 2.
import { ConfigError } from '../config/env.ts';
export const EXIT_PROBLEM = 2;

export function fail(line: string): never {
  process.stderr.write(`phantom-sidecar: ${line}\n`);
  process.exit(EXIT_PROBLEM);
}

/** The configuration `load` reads, or the process stopped with the one line naming the variable. */
export function configOrFail<T>(load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
}
