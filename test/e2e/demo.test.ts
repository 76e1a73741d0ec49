// `npm run demo -- --once` as a user runs it: the curl scripts against the AS, example API
// and sidecar processes, on free ports, with certificates made for this run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { freePort } from '../support/ports.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const demo = new URL('../../deploy/demo.ts', import.meta.url).pathname;

async function demoEnv(): Promise<Record<string, string>> {
  const dir = mkdtempSync(join(tmpdir(), 'phantom-demo-'));
  return {
    CERTS_DIR: join(dir, 'certs'),
    DEMO_DIR: join(dir, 'run'),
    AS_PORT: String(await freePort()),
    PHANTOM_LISTEN_PORT: String(await freePort()),
    PHANTOM_ADMIN_PORT: String(await freePort()),
    API_PORT: String(await freePort()),
  };
}

function runDemo(env: Record<string, string>, flags: readonly string[] = []): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [demo, '--once', ...flags], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => resolve({ code, output }));
  });
}

test('the demo runs the partner flow and refuses every attack, exiting 0; with --nginx, the same checks behind a real nginx', { timeout: 90_000 }, async () => {
  const nginx = spawnSync('nginx', ['-v'], { stdio: 'ignore' }).status === 0;
  const extra: Record<string, string> = nginx ? { NGINX_PORT: String(await freePort()), DECISION_PORT: String(await freePort()), DECISION_ADMIN_PORT: String(await freePort()), GATEWAY_API_PORT: String(await freePort()) } : {};
  const { code, output } = await runDemo({ ...(await demoEnv()), ...extra }, nginx ? ['--nginx'] : []);
  if (nginx) {
    assert.match(output, /ok {3}partner A with its token: 200/);
    assert.match(output, /ok {3}partner B replaying A's token: 401/);
    assert.match(output, /ok {3}partner A without a token: 401/);
  } else if (process.env.CI === 'true') {
    assert.fail('nginx is not installed: .ci/run installs it');
  }
  assert.equal(code, 0, output);
  assert.match(output, /partner-client: every answer was the expected one/);
  assert.match(output, /attacks: every answer was the expected one/);
  assert.match(output, /dpop-partner: every answer was the expected one/);
  assert.match(output, /the proof checked out and the API got the token's DPoP binding/);
  assert.match(output, /reason=dpop_proof_replayed/);
  assert.match(output, /the token is bound to this certificate/);
  assert.equal(output.match(/✔ refused/g)?.length, 10, output);
  assert.doesNotMatch(output, /✘/);
  assert.match(output, /reason=binding_mismatch/);
  assert.match(output, /reason=token_in_query/);
});

test('a port already taken stops the demo with the port and the variable to change', async () => {
  const env = await demoEnv();
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(Number(env.PHANTOM_LISTEN_PORT), '127.0.0.1', resolve));
  try {
    const { code, output } = await runDemo(env);
    assert.equal(code, 1);
    assert.match(output, new RegExp(`port ${env.PHANTOM_LISTEN_PORT} is already in use\\. Set PHANTOM_LISTEN_PORT to a free port`));
  } finally {
    blocker.close();
  }
});

test('the curl scripts fail loudly when an answer is not the expected one', async () => {
  const { makePki } = await import('../support/pki.ts');
  const pki = makePki();
  const closed = `https://localhost:${await freePort()}`;
  for (const script of ['partner-client.sh', 'attacks.sh']) {
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn('bash', [new URL(`../../deploy/scripts/${script}`, import.meta.url).pathname], {
        env: { ...process.env, CERTS_DIR: pki.dir, AS_URL: closed, SIDECAR_URL: closed },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.once('exit', (code) => resolve({ code, output }));
    });
    assert.notEqual(result.code, 0, `${script}: ${result.output}`);
  }
});
