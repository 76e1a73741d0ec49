// `npm run demo`: the whole pattern on loopback, no Docker. Generates development certificates
// if missing, starts the development authorization server, the example API and the sidecar as
// separate processes (as they run in a pod), runs the partner client and the attacks, shows
// what the sidecar logged, then keeps serving until Ctrl-C. `npm run demo -- --once` runs the
// scripts and exits, non-zero on any unexpected answer.
//
// Ports (change any that are taken): AS_PORT 9443, PHANTOM_LISTEN_PORT 8443,
// PHANTOM_ADMIN_PORT 9090, API_PORT 3000. CERTS_DIR: certs/out.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const once = process.argv.includes('--once');
const certs = process.env.CERTS_DIR ?? join(root, 'certs/out');
const work = process.env.DEMO_DIR ?? join(root, '.demo');
const CACHE_TTL_S = 2;

const ports = {
  AS_PORT: Number(process.env.AS_PORT ?? 9443),
  PHANTOM_LISTEN_PORT: Number(process.env.PHANTOM_LISTEN_PORT ?? 8443),
  PHANTOM_ADMIN_PORT: Number(process.env.PHANTOM_ADMIN_PORT ?? 9090),
  API_PORT: Number(process.env.API_PORT ?? 3000),
};

const bold = (text: string): string => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);
const say = (text: string): void => void process.stdout.write(`${text}\n`);

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

async function checkPorts(): Promise<void> {
  for (const [variable, port] of Object.entries(ports)) {
    if (!(await portFree(port))) {
      say(`demo: port ${port} is already in use. Set ${variable} to a free port, e.g. ${variable}=${port + 10000} npm run demo`);
      process.exit(1);
    }
  }
}

function ensureCertificates(): void {
  execFileSync('bash', [join(root, 'certs/generate.sh'), certs], { stdio: ['ignore', 'inherit', 'inherit'] });
}

const children: ChildProcess[] = [];

function start(name: string, script: string, env: Record<string, string>): ChildProcess {
  const log = createWriteStream(join(work, `${name}.log`));
  const child = spawn(process.execPath, [join(root, script)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  child.once('exit', (code) => {
    if (!stopping) {
      say(`demo: ${name} exited (${code ?? 'signal'}); see ${join(work, `${name}.log`)}`);
      void stopAll(1);
    }
  });
  children.push(child);
  return child;
}

let stopping = false;
async function stopAll(code: number): Promise<never> {
  stopping = true;
  await Promise.all(children.map((child) => new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  })));
  process.exit(code);
}

function httpsReady(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(url, { ca: readFileSync(join(certs, 'ca.pem')), timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function httpReady(url: string): Promise<boolean> {
  try {
    return (await fetch(url)).ok;
  } catch {
    return false;
  }
}

async function waitFor(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  say(`demo: ${what} did not become ready; see the logs in ${work}`);
  await stopAll(1);
}

function runScript(script: string, env: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn('bash', [join(root, 'deploy/scripts', script)], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

function runNode(script: string, env: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(root, script)], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('exit', (code) => resolve(code ?? 1));
  });
}

interface AccessLine {
  msg?: string;
  method?: string;
  path?: string;
  status?: number;
  client_id?: string;
  x5t?: string;
  cache?: string;
  reason?: string;
}

function showSidecarLog(): void {
  say(`\n${bold('== What the sidecar logged (one line per request; never a token) ==')}`);
  const lines = readFileSync(join(work, 'sidecar.log'), 'utf8').split('\n').filter(Boolean);
  for (const raw of lines) {
    let line: AccessLine;
    try {
      line = JSON.parse(raw) as AccessLine;
    } catch {
      continue;
    }
    if (line.msg !== 'request') continue;
    say(`  ${line.status} ${line.method} ${line.path}  client=${line.client_id ?? '-'} cert=${line.x5t?.slice(0, 12) ?? '-'}… cache=${line.cache}${line.reason === undefined ? '' : `  reason=${line.reason}`}`);
  }
  say(`  (full JSON lines: ${join(work, 'sidecar.log')})`);
}

async function main(): Promise<void> {
  await checkPorts();
  ensureCertificates();
  mkdirSync(work, { recursive: true });
  // FAPI 2.0 towards the AS: private_key_jwt with a key file (as a Kubernetes Secret is
  // mounted), the endpoint and keys discovered, introspection answers signed (RFC 9701).
  const clientKeyFile = join(certs, 'introspection-client.key');

  const asUrl = `https://localhost:${ports.AS_PORT}`;
  const sidecarUrl = `https://localhost:${ports.PHANTOM_LISTEN_PORT}`;
  const jwksUrl = `http://127.0.0.1:${ports.PHANTOM_ADMIN_PORT}/.well-known/jwks.json`;

  say(bold('phantom-sidecar demo: development authorization server, example API and sidecar on loopback'));
  start('authorization-server', 'deploy/authorization-server/main.ts', {
    AS_HOST: '127.0.0.1',
    AS_PORT: String(ports.AS_PORT),
    AS_ISSUER: asUrl,
    AS_TLS_CERT: join(certs, 'as.pem'),
    AS_TLS_KEY: join(certs, 'as.key'),
    AS_TLS_CLIENT_CA: join(certs, 'ca.pem'),
    AS_INTROSPECTION_CLIENT_ID: 'phantom-sidecar',
    AS_INTROSPECTION_CLIENT_KEY: clientKeyFile,
    AS_AUDIENCE: 'https://api.example.com',
    // The AS pushes a Shared Signals event for every revoked token to the sidecar.
    AS_SSF_RECEIVERS: `http://127.0.0.1:${ports.PHANTOM_ADMIN_PORT}/ssf/events`,
  });
  start('example-api', 'deploy/example-api/server.ts', {
    API_HOST: '127.0.0.1',
    API_PORT: String(ports.API_PORT),
    API_JWKS_URL: jwksUrl,
    API_JWT_ISSUER: 'https://phantom-sidecar.local',
    API_JWT_AUDIENCE: 'https://api.internal',
    API_JWT_ALG: 'ES256',
  });
  await waitFor('the authorization server', () => httpsReady(`${asUrl}/.well-known/openid-configuration`));
  start('sidecar', 'src/main.ts', {
    PHANTOM_LISTEN_HOST: '127.0.0.1',
    PHANTOM_LISTEN_PORT: String(ports.PHANTOM_LISTEN_PORT),
    PHANTOM_ADMIN_HOST: '127.0.0.1',
    PHANTOM_ADMIN_PORT: String(ports.PHANTOM_ADMIN_PORT),
    PHANTOM_TLS_CERT: join(certs, 'server.pem'),
    PHANTOM_TLS_KEY: join(certs, 'server.key'),
    PHANTOM_TLS_CLIENT_CA: join(certs, 'ca.pem'),
    PHANTOM_UPSTREAM_URL: `http://127.0.0.1:${ports.API_PORT}`,
    PHANTOM_AS_ISSUER: asUrl,
    PHANTOM_INTROSPECTION_AUTH: 'private_key_jwt',
    PHANTOM_INTROSPECTION_CLIENT_ID: 'phantom-sidecar',
    PHANTOM_INTROSPECTION_CLIENT_KEY_FILE: clientKeyFile,
    PHANTOM_INTROSPECTION_RESPONSE: 'jwt',
    PHANTOM_INTROSPECTION_CA: join(certs, 'ca.pem'),
    // Both FAPI 2.0 sender constraints; a DPoP proof's htu names this Host.
    PHANTOM_SENDER_CONSTRAINTS: 'mtls dpop',
    PHANTOM_PUBLIC_HOSTS: `localhost:${ports.PHANTOM_LISTEN_PORT}`,
    PHANTOM_RESOURCE: `https://localhost:${ports.PHANTOM_LISTEN_PORT}`,
    // Revocation events from the AS (Shared Signals): a revoked token is refused at once.
    PHANTOM_SSF_ISSUER: asUrl,
    PHANTOM_SSF_AUDIENCE: 'https://api.example.com',
    PHANTOM_EXPECTED_AUDIENCE: 'https://api.example.com',
    PHANTOM_REQUIRED_SCOPES: 'accounts',
    PHANTOM_CACHE_MAX_TTL_S: String(CACHE_TTL_S),
    PHANTOM_JWT_ISSUER: 'https://phantom-sidecar.local',
    PHANTOM_JWT_AUDIENCE: 'https://api.internal',
  });
  await waitFor('the sidecar', () => httpReady(`http://127.0.0.1:${ports.PHANTOM_ADMIN_PORT}/readyz`));
  await waitFor('the example API', async () => portFree(ports.API_PORT).then((free) => !free));
  say(`  authorization server ${asUrl} (development only)`);
  say(`  sidecar (mTLS)       ${sidecarUrl}   admin http://127.0.0.1:${ports.PHANTOM_ADMIN_PORT}`);
  say(`  example API          http://127.0.0.1:${ports.API_PORT} (loopback; reachable only through the sidecar)`);
  say(`  sidecar → AS         FAPI 2.0: private_key_jwt, endpoint and keys discovered, signed introspection answers (RFC 9701)`);
  say(`  revocation           Shared Signals events from the AS: a revoked token is refused at once (cache lifetime ${CACHE_TTL_S}s otherwise)`);

  const scriptEnv = { CERTS_DIR: certs, AS_URL: asUrl, SIDECAR_URL: sidecarUrl, SIDECAR_CACHE_TTL_S: String(CACHE_TTL_S), SIDECAR_REVOCATION_EVENTS: '1' };
  const partner = await runScript('partner-client.sh', scriptEnv);
  const attacks = await runScript('attacks.sh', scriptEnv);
  const dpop = await runNode('deploy/scripts/dpop-partner.ts', scriptEnv);
  // The sidecar writes its log in batches, at least once a second.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  showSidecarLog();
  const failed = partner !== 0 || attacks !== 0 || dpop !== 0;
  say(`\n${bold(failed ? 'demo: some answers were not the expected ones' : 'demo: the partner flow worked and every attack was refused')}`);

  if (once) await stopAll(failed ? 1 : 0);
  say(`\nStill serving. Try it yourself, then Ctrl-C to stop:`);
  say(`  CERTS_DIR=${certs} AS_URL=${asUrl} SIDECAR_URL=${sidecarUrl} deploy/scripts/partner-client.sh`);
  process.once('SIGINT', () => void stopAll(failed ? 1 : 0));
  process.once('SIGTERM', () => void stopAll(failed ? 1 : 0));
}

await main();
