// How every command stops on a problem the operator must fix: one line on stderr, exit 2.
export const EXIT_PROBLEM = 2;

export function fail(line: string): never {
  process.stderr.write(`phantom-sidecar: ${line}\n`);
  process.exit(EXIT_PROBLEM);
}
