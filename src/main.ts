#!/usr/bin/env node
// Process entry: which command to run. Without one, the sidecar itself.
import { fail } from './commands/exit.ts';
import { helpText, versionText } from './commands/help.ts';

const [command, ...rest] = process.argv.slice(2);

if (rest.length > 0) fail(`unexpected argument ${JSON.stringify(rest[0])} (see phantom-sidecar --help)`);
if (command === undefined || command === 'run') {
  const { run } = await import('./commands/run.ts');
  await run();
} else if (command === '--help' || command === '-h' || command === 'help') {
  process.stdout.write(helpText());
} else if (command === '--version' || command === '-v' || command === 'version') {
  process.stdout.write(versionText());
} else if (command === 'check') {
  const { check } = await import('./commands/check.ts');
  const code = await check(process.env, (text) => process.stdout.write(text));
  process.exitCode = code;
} else if (command === 'webhook') {
  const { webhook } = await import('./commands/webhook.ts');
  await webhook();
} else {
  fail(`unknown command ${JSON.stringify(command)} (see phantom-sidecar --help)`);
}
