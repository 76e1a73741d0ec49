// The operator's command line, run as a process as an operator runs it (`phantom-sidecar
// --help`, `--version`, `check`), the check against the real oidc-provider over real TLS.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import type { RunningAuthorizationServer } from '../../deploy/authorization-server/server.ts';
import { KNOWN_VARIABLES } from '../../src/config/env.ts';
import { SIDECAR_CLIENT, startTestAuthorizationServer } from '../support/as.ts';
import { makePki, type Pki } from '../support/pki.ts';
import { startSidecarProcess } from '../support/process.ts';
import { baseEnv } from '../support/sidecar.ts';

const main = new URL('../../src/main.ts', import.meta.url).pathname;
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
const pki: Pki = makePki();
let as: RunningAuthorizationServer;

before(async () => {
  as = await startTestAuthorizationServer(pki);
});
after(async () => {
  await as.stop();
});

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [main, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const env = () => baseEnv(pki, 'http://127.0.0.1:9', as.introspectionUrl);

describe('phantom-sidecar --help and --version', () => {
  test('--help names every setting, under the README\'s group titles, and exits 0', async () => {
    const { code, stdout } = await cli(['--help']);
    assert.equal(code, 0);
    for (const title of ['The listener and the partner certificate', 'The fleet', 'The authorization server and the token', 'The injector']) assert.ok(stdout.includes(`\n${title}\n`), title);
    for (const name of KNOWN_VARIABLES) {
      if (name.endsWith('_FILE')) continue;
      assert.ok(new RegExp(`\\b${name}\\b`).test(stdout), `${name} is not in --help`);
    }
    assert.match(stdout, /phantom-sidecar check/);
  });

  test('--version prints the package version and Node\'s', async () => {
    const { code, stdout } = await cli(['--version']);
    assert.equal(code, 0);
    assert.equal(stdout, `phantom-sidecar ${version} (Node.js ${process.versions.node})\n`);
  });

  test('an unknown command stops with exit 2 and says where help is', async () => {
    const { code, stderr } = await cli(['chekc']);
    assert.equal(code, 2);
    assert.match(stderr, /unknown command "chekc" \(see phantom-sidecar --help\)/);
  });
});

describe('phantom-sidecar check', () => {
  test('a good environment: the AS is reached with the sidecar\'s credentials, the settings printed, the secret redacted; exit 0', async () => {
    const { code, stdout } = await cli(['check'], env());
    assert.equal(code, 0, stdout);
    assert.match(stdout, /authorization server: the authorization server answers introspection with the sidecar's credentials/);
    assert.match(stdout, /check passed/);
    assert.match(stdout, /PHANTOM_INTROSPECTION_CLIENT_SECRET=\[redacted\]/);
    assert.ok(!stdout.includes(SIDECAR_CLIENT.clientSecret), 'the secret is printed');
    assert.match(stdout, new RegExp(`PHANTOM_INTROSPECTION_URL=${as.introspectionUrl.replace(/[.?]/g, '\\$&')}`));
    assert.match(stdout, /PHANTOM_CACHE_MAX_TTL_S \(default: 300\)/);
  });

  test('a secret from a file: the path is shown, never the value', async () => {
    const file = pki.path('client-secret');
    writeFileSync(file, `${SIDECAR_CLIENT.clientSecret}\n`);
    const { PHANTOM_INTROSPECTION_CLIENT_SECRET: _inline, ...rest } = env();
    const { code, stdout } = await cli(['check'], { ...rest, PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE: file });
    assert.equal(code, 0, stdout);
    assert.match(stdout, new RegExp(`PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE=${file}`));
    assert.ok(!stdout.includes(SIDECAR_CLIENT.clientSecret));
  });

  test('four problems in four places are listed together, exit 2, and the AS is not called', async () => {
    const introspections = () => as.requests.get(new URL(as.introspectionUrl).pathname) ?? 0;
    const calls = introspections();
    const { PHANTOM_JWT_ISSUER: _issuer, ...rest } = env();
    const { code, stdout } = await cli(['check'], {
      ...rest,
      PHANTOM_CACHE_MAX_TTL_S: 'soon',
      PHANTOM_REQUIRE_BINDING: 'perhaps',
      PHANTOM_EXPECTED_AUDIANCE: 'x',
    });
    assert.equal(code, 2);
    assert.match(stdout, /4 problems:/);
    assert.match(stdout, /PHANTOM_EXPECTED_AUDIANCE: is not a known setting \(did you mean PHANTOM_EXPECTED_AUDIENCE\?\)/);
    assert.match(stdout, /PHANTOM_CACHE_MAX_TTL_S: must be a whole number, got "soon"/);
    assert.match(stdout, /PHANTOM_REQUIRE_BINDING: must be true or false, got "perhaps"/);
    assert.match(stdout, /PHANTOM_JWT_ISSUER: is required/);
    assert.doesNotMatch(stdout, /authorization server:/);
    assert.equal(introspections(), calls);
  });

  test('a wrong client secret: exit 2 with the reason and what to change, the wrong secret not echoed', async () => {
    const wrong = 'not-the-secret-9876543210';
    const { code, stdout } = await cli(['check'], { ...env(), PHANTOM_INTROSPECTION_CLIENT_SECRET: wrong });
    assert.equal(code, 2);
    assert.match(stdout, /as_rejected_sidecar_credentials/);
    assert.match(stdout, /PHANTOM_INTROSPECTION_CLIENT_ID/);
    assert.ok(!stdout.includes(wrong));
  });

  test('the running sidecar says what it is on /metrics: phantom_build_info', async () => {
    const sidecar = await startSidecarProcess({ ...env(), PHANTOM_LOG_LEVEL: 'warn' });
    try {
      const metrics = await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/metrics`)).text();
      assert.match(metrics, new RegExp(`^phantom_build_info\\{version="${version.replace(/\./g, '\\.')}",node="${process.versions.node.replace(/\./g, '\\.')}"\\} 1$`, 'm'));
    } finally {
      sidecar.child.kill('SIGTERM');
      await sidecar.exit;
    }
  });
});
