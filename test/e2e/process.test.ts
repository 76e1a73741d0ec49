// The sidecar as Kubernetes runs it: `node src/main.ts` from the environment, probed on the
// admin port, drained on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { makePki } from '../support/pki.ts';
import { freePort } from '../support/ports.ts';
import { baseEnv } from '../support/sidecar.ts';

const main = new URL('../../src/main.ts', import.meta.url).pathname;
const pki = makePki();

async function processEnv(): Promise<Record<string, string>> {
  return {
    ...baseEnv(pki, 'http://127.0.0.1:1', 'https://127.0.0.1:1/introspect'),
    PHANTOM_LISTEN_PORT: String(await freePort()),
    PHANTOM_ADMIN_PORT: String(await freePort()),
    PATH: process.env.PATH ?? '',
  };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function get(url: string): Promise<{ status: number; body: unknown; headers: Headers } | undefined> {
  try {
    const response = await fetch(url);
    return { status: response.status, body: await response.json(), headers: response.headers };
  } catch {
    return undefined;
  }
}

test('probes: alive, ready once listening, the JWKS published; SIGTERM drains and exits 0', async () => {
  const env = await processEnv();
  const admin = `http://127.0.0.1:${env.PHANTOM_ADMIN_PORT}`;
  const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = exited(child);
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  try {
    let ready: Awaited<ReturnType<typeof get>>;
    for (let attempt = 0; attempt < 100 && ready?.status !== 200; attempt += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      ready = await get(`${admin}/readyz`);
    }
    assert.equal(ready?.status, 200);
    assert.deepEqual((await get(`${admin}/healthz`))?.body, { status: 'ok' });
    const jwks = await get(`${admin}/.well-known/jwks.json`);
    const keys = (jwks?.body as { keys: { kty: string; crv: string; alg: string; kid: string; d?: string }[] }).keys;
    assert.equal(keys.length, 1);
    assert.equal(keys[0]?.alg, 'ES256');
    assert.equal(keys[0]?.d, undefined);
    assert.match(jwks?.headers.get('cache-control') ?? '', /max-age=60/);
    // The AS of this environment cannot be reached: the start-up check says so, and the pod is still ready.
    for (let attempt = 0; attempt < 100 && !output.includes('start-up check'); attempt += 1) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.match(output, /"level":"warn".*"reason":"as_unreachable".*"remedy":"[^"]*PHANTOM_INTROSPECTION_URL.*start-up check: the authorization server gave no usable answer/);
    child.kill('SIGTERM');
    assert.equal(await exit, 0);
    assert.match(output, /"msg":"draining"/);
  } finally {
    child.kill('SIGKILL');
  }
});

test('a port already taken stops the process with exit 2, naming the variable', async () => {
  const env = await processEnv();
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(Number(env.PHANTOM_LISTEN_PORT), '127.0.0.1', resolve));
  try {
    const child = spawn(process.execPath, [main], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    assert.equal(await exited(child), 2);
    assert.equal(stderr.trim(), `phantom-sidecar: PHANTOM_LISTEN_PORT: port ${env.PHANTOM_LISTEN_PORT} on 127.0.0.1 is already in use`);
  } finally {
    blocker.close();
  }
});
