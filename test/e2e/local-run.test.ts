// A newcomer's local run: the development PKI (certs/generate.sh), the development AS started
// by `npm run dev:as`'s command, and .env.example as the sidecar's whole configuration, which
// `phantom-sidecar check` must pass against that AS.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { freePort } from '../support/ports.ts';

const root = new URL('../..', import.meta.url).pathname;
const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
let certs: string;
let as: ChildProcess;
let asPort: number;

/** An npm script's command line as spawn arguments: its leading NAME=value pairs as env. */
function scriptCommand(name: string): { env: Record<string, string>; args: string[] } {
  const words = (scripts[name] ?? '').split(' ');
  const env: Record<string, string> = {};
  while (/^[A-Z_]+=/.test(words[0] ?? '')) {
    const [key, ...value] = (words.shift() ?? '').split('=');
    env[key ?? ''] = value.join('=');
  }
  assert.equal(words.shift(), 'node', name);
  return { env, args: words };
}

const inCerts = (value: string) => value.replace(/^certs\/out\//, `${certs}/`);

before(async () => {
  certs = mkdtempSync(join(tmpdir(), 'phantom-local-'));
  execFileSync('bash', [join(root, 'certs/generate.sh'), certs], { stdio: 'ignore' });
  asPort = await freePort();
  const { env, args } = scriptCommand('dev:as');
  as = spawn(process.execPath, args, {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      ...Object.fromEntries(Object.entries(env).map(([key, value]) => [key, inCerts(value)])),
      AS_PORT: String(asPort),
      AS_TLS_CERT: join(certs, 'as.pem'),
      AS_TLS_KEY: join(certs, 'as.key'),
      AS_TLS_CLIENT_CA: join(certs, 'ca.pem'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    as.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('development authorization server')) resolve();
    });
    as.once('exit', () => reject(new Error(`the development AS stopped: ${output}`)));
  });
});
after(() => {
  as.kill('SIGTERM');
  rmSync(certs, { recursive: true, force: true });
});

test('.env.example is a complete configuration: check passes against the development AS', async () => {
  const example = parseEnv(readFileSync(join(root, '.env.example'), 'utf8')) as Record<string, string>;
  const env: Record<string, string> = Object.fromEntries(Object.entries(example).map(([key, value]) => [key, inCerts(value)]));
  env.PHANTOM_AS_ISSUER = `https://localhost:${asPort}`;
  const { args } = scriptCommand('dev:check');
  assert.deepEqual(args.slice(-2), ['src/main.ts', 'check']);
  const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, args.filter((arg) => !arg.startsWith('--env-file')), { cwd: root, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => resolve({ code, output }));
  });
  assert.equal(result.code, 0, result.output);
  assert.match(result.output, /PHANTOM_INTROSPECTION_AUTH=private_key_jwt/);
  assert.match(result.output, /check passed/);
});
