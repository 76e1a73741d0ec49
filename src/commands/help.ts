// `phantom-sidecar --help` and `--version`: the commands, then every setting grouped as the
// README's Configuration section groups them (src/config/settings.ts is generated from it).
import { SETTINGS_GROUPS } from '../config/settings.ts';
import { VERSION } from '../version.ts';

const COMMANDS: readonly [string, string][] = [
  ['phantom-sidecar', 'run the sidecar, configured by the PHANTOM_* environment variables below'],
  ['phantom-sidecar check', 'validate every setting as start-up does, reach the authorization server once with the sidecar\'s credentials, and print the effective settings with secrets redacted; exit 2 listing every problem'],
  ['phantom-sidecar webhook', 'run the injector: the mutating admission webhook that adds the sidecar to pods annotated phantom-sidecar.io/inject: "true"'],
  ['phantom-sidecar --version', 'print the version'],
  ['phantom-sidecar --help', 'print this text'],
];

export function versionText(): string {
  return `phantom-sidecar ${VERSION} (Node.js ${process.versions.node})\n`;
}

export function helpText(): string {
  const lines = [`phantom-sidecar ${VERSION}: a phantom-token introspection sidecar for FAPI resource servers`, '', 'Commands:'];
  for (const [command, meaning] of COMMANDS) lines.push(`  ${command.padEnd(27)} ${meaning}`);
  lines.push('', 'Settings (environment variables; a secret is also read from the file named by <NAME>_FILE):');
  for (const group of SETTINGS_GROUPS) {
    lines.push('', group.title);
    for (const setting of group.settings) {
      lines.push(`  ${setting.names.join(', ')}  [${setting.fallback}]`, `      ${setting.summary}`);
    }
  }
  lines.push('', 'Exit codes: 0 done, 2 a setting or the authorization server needs fixing.', 'More: README.md, section Configuration.');
  return `${lines.join('\n')}\n`;
}
