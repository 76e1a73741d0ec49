// `phantom-sidecar check`: what an operator runs in a pod (kubectl exec … check) or in CI
// before a rollout. Every problem of the environment at once, the authorization server
// reached once with the sidecar's own credentials, and the settings in effect, secrets
// redacted: a secret is any setting that may also be given as <NAME>_FILE.
import { checkConfig, type Config } from '../config/config.ts';
import { KNOWN_VARIABLES, type Env } from '../config/env.ts';
import { SETTINGS_GROUPS } from '../config/settings.ts';
import { connectAuthorizationServer } from '../authorization-server/connection.ts';
import { IntrospectionClient } from '../authorization-server/introspection-client.ts';
import { PROBE_SAYS, probeOnce } from '../authorization-server/probe.ts';
import { createLogger } from '../log.ts';
import { EXIT_PROBLEM } from './exit.ts';

const REDACTED = '[redacted]';

function isSecret(name: string): boolean {
  // The collector's headers carry its API key.
  return KNOWN_VARIABLES.has(`${name}_FILE`) || name === 'OTEL_EXPORTER_OTLP_HEADERS';
}

/** A URL's user and password, should one be there, never printed. */
function withoutCredentials(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1[redacted]@');
}

function shown(env: Env, name: string): string | undefined {
  const value = env[name];
  if (value === undefined || value.trim() === '') return undefined;
  return isSecret(name) ? REDACTED : withoutCredentials(value.trim());
}

/** Every setting: its value, where it came from, or its default. */
export function effectiveSettings(env: Env): string[] {
  const lines: string[] = [];
  for (const group of SETTINGS_GROUPS) {
    lines.push(`  ${group.title}`);
    for (const setting of group.settings) {
      for (const name of setting.names) {
        const value = shown(env, name);
        const file = isSecret(name) ? shown(env, `${name}_FILE`) : undefined;
        if (value !== undefined) lines.push(`    ${name}=${value}`);
        else if (file !== undefined) lines.push(`    ${name}_FILE=${file}`);
        else lines.push(`    ${name} (default: ${setting.fallback})`);
      }
    }
  }
  return lines;
}

async function reachAuthorizationServer(config: Config): Promise<{ ok: boolean; line: string }> {
  const logger = createLogger('silent');
  const as = connectAuthorizationServer(config, logger);
  const client = new IntrospectionClient(config.introspection, as);
  const misconfigured = as.configurationError.then((error) => ({ ok: false, line: `the authorization server's metadata contradicts the settings: ${error.message}` }));
  try {
    const probe = probeOnce(client, as.ready, config.introspection.timeoutMs + 5000).then(({ outcome, fault }) => ({
      ok: outcome === 'answered',
      line: fault === undefined ? PROBE_SAYS[outcome] : `${PROBE_SAYS[outcome]} (${fault.reason}${fault.detail === undefined ? "" : `: ${fault.detail}`}); ${fault.remedy}`,
    }));
    return await Promise.race([probe, misconfigured]);
  } finally {
    await client.close();
    await as.close();
  }
}

/** Writes the report; the exit code: 0 when all is well, 2 otherwise. */
export async function check(env: Env, write: (text: string) => void): Promise<number> {
  const { config, problems } = checkConfig(env);
  write(`Settings in effect (secrets redacted):\n${effectiveSettings(env).join('\n')}\n\n`);
  if (config === undefined) {
    write(`${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((problem) => `  ${problem.message}`).join('\n')}\n`);
    return EXIT_PROBLEM;
  }
  for (const setting of config.weakened) write(`loosened: ${setting}\n`);
  const reached = await reachAuthorizationServer(config);
  write(`authorization server: ${reached.line}\n`);
  write(reached.ok ? 'check passed\n' : '1 problem: the authorization server (above)\n');
  return reached.ok ? 0 : EXIT_PROBLEM;
}
