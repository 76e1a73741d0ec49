// `npm run demo`: the whole pattern on loopback, no Docker. Generates development certificates
// if missing, starts the development authorization server, the example API and the sidecar as
// separate processes (as they run in a pod), runs the partner client and the attacks, shows
// what the sidecar logged, then keeps serving until Ctrl-C. `npm run demo -- --once` runs the
// scripts and exits, non-zero on any unexpected answer.
//
// Ports (change any that are taken): AS_PORT 9443, PHANTOM_LISTEN_PORT 8443,
// PHANTOM_ADMIN_PORT 9090, API_PORT 3000. CERTS_DIR: certs/out.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { nginxAvailable, startNginx } from './nginx/gateway.ts';

const root = new URL('..', import.meta.url).pathname;
const once = process.argv.includes('--once');
// --nginx: also show the decision service behind a real nginx (where nginx is installed).
const withNginx = process.argv.includes('--nginx');
const certs = process.env.CERTS_DIR ?? join(root, 'certs/out');
const work = process.env.DEMO_DIR ?? join(root, '.demo');
const CACHE_TTL_S = 2;

const ports: Record<string, number> = {
  AS_PORT: Number(process.env.AS_PORT ?? 9443),
  PHANTOM_LISTEN_PORT: Number(process.env.PHANTOM_LISTEN_PORT ?? 8443),
  PHANTOM_ADMIN_PORT: Number(process.env.PHANTOM_ADMIN_PORT ?? 9090),
  API_PORT: Number(process.env.API_PORT ?? 3000),
  ...(withNginx
    ? {
        NGINX_PORT: Number(process.env.NGINX_PORT ?? 8444),
        DECISION_PORT: Number(process.env.DECISION_PORT ?? 8445),
        DECISION_ADMIN_PORT: Number(process.env.DECISION_ADMIN_PORT ?? 9091),
        GATEWAY_API_PORT: Number(process.env.GATEWAY_API_PORT ?? 3001),
      }
    : {}),
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
const stops: Array<() => Promise<void>> = [];
async function stopAll(code: number): Promise<never> {
  stopping = true;
  await Promise.all(stops.map((stop) => stop()));
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

/** What both of the demo's sidecars share: the development PKI, FAPI 2.0 towards the AS, the JWT for the API. */
function sidecarEnv(listen: number, admin: number, asUrl: string, clientKeyFile: string, extra: Record<string, string>): Record<string, string> {
  return {
    PHANTOM_LISTEN_HOST: '127.0.0.1',
    PHANTOM_LISTEN_PORT: String(listen),
    PHANTOM_ADMIN_HOST: '127.0.0.1',
    PHANTOM_ADMIN_PORT: String(admin),
    PHANTOM_TLS_CERT: join(certs, 'server.pem'),
    PHANTOM_TLS_KEY: join(certs, 'server.key'),
    PHANTOM_TLS_CLIENT_CA: join(certs, 'ca.pem'),
    PHANTOM_AS_ISSUER: asUrl,
    PHANTOM_INTROSPECTION_AUTH: 'private_key_jwt',
    PHANTOM_INTROSPECTION_CLIENT_ID: 'phantom-sidecar',
    PHANTOM_INTROSPECTION_CLIENT_KEY_FILE: clientKeyFile,
    PHANTOM_INTROSPECTION_RESPONSE: 'jwt',
    PHANTOM_INTROSPECTION_CA: join(certs, 'ca.pem'),
    PHANTOM_EXPECTED_AUDIENCE: 'https://api.example.com',
    PHANTOM_REQUIRED_SCOPES: 'accounts',
    PHANTOM_JWT_ISSUER: 'https://phantom-sidecar.local',
    PHANTOM_JWT_AUDIENCE: 'https://api.internal',
    ...extra,
  };
}

/** A client certificate for the gateway, from the development CA: its own identity towards the sidecar. */
function gatewayIdentity(): { cert: string; key: string; x5t: string } {
  const key = join(work, 'gateway.key');
  const csr = join(work, 'gateway.csr');
  const cert = join(work, 'gateway.pem');
  const ext = join(work, 'gateway.ext');
  writeFileSync(ext, 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key], { stdio: 'ignore' });
  execFileSync('openssl', ['req', '-new', '-key', key, '-subj', '/O=phantom-sidecar development/CN=nginx gateway', '-out', csr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', join(certs, 'ca.pem'), '-CAkey', join(certs, 'ca.key'), '-CAcreateserial', '-CAserial', join(work, 'gateway.srl'), '-days', '2', '-extfile', ext, '-out', cert], { stdio: 'ignore' });
  return { cert, key, x5t: createHash('sha256').update(new X509Certificate(readFileSync(cert)).raw).digest('base64url') };
}

/** One HTTPS call as a partner: its certificate, a bearer token, the status that came back. */
function partnerCall(url: string, partner: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers, cert: readFileSync(join(certs, `${partner}.pem`)), key: readFileSync(join(certs, `${partner}.key`)), ca: readFileSync(join(certs, 'ca.pem')) }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end(options.body);
  });
}

/** The decision service behind nginx auth_request: the same checks, the gateway forwards. */
async function nginxLeg(asUrl: string, clientKeyFile: string): Promise<boolean> {
  if (!nginxAvailable()) {
    say(`\n${bold('== nginx front end: skipped, nginx is not installed (Debian package nginx) ==')}`);
    return true;
  }
  say(`\n${bold('== nginx front end: nginx terminates mTLS and asks the sidecar (PHANTOM_MODE=decision) ==')}`);
  const gateway = gatewayIdentity();
  start('gateway-api', 'deploy/example-api/server.ts', {
    API_HOST: '127.0.0.1',
    API_PORT: String(ports.GATEWAY_API_PORT),
    API_JWKS_URL: `http://127.0.0.1:${ports.DECISION_ADMIN_PORT}/.well-known/jwks.json`,
    API_JWT_ISSUER: 'https://phantom-sidecar.local',
    API_JWT_AUDIENCE: 'https://api.internal',
    API_JWT_ALG: 'ES256',
  });
  start('decision-sidecar', 'src/main.ts', sidecarEnv(ports.DECISION_PORT ?? 0, ports.DECISION_ADMIN_PORT ?? 0, asUrl, clientKeyFile, {
    PHANTOM_MODE: 'decision',
    PHANTOM_CLIENT_CERT_SOURCE: 'header',
    PHANTOM_CLIENT_CERT_HEADER_FORMAT: 'nginx',
    PHANTOM_TRUSTED_PROXY_CERT_X5T: gateway.x5t,
  }));
  await waitFor('the decision sidecar', () => httpReady(`http://127.0.0.1:${ports.DECISION_ADMIN_PORT}/readyz`));
  const nginx = await startNginx({
    serverCert: join(certs, 'server.pem'),
    serverKey: join(certs, 'server.key'),
    partnerCa: join(certs, 'ca.pem'),
    clientCert: gateway.cert,
    clientKey: gateway.key,
    sidecarPort: ports.DECISION_PORT ?? 0,
    upstreamUrl: `http://127.0.0.1:${ports.GATEWAY_API_PORT}`,
  }, [], ports.NGINX_PORT);
  stops.push(() => nginx.stop());
  const form = new URLSearchParams({ grant_type: 'client_credentials', client_id: 'partner-a', scope: 'accounts' }).toString();
  const issued = await partnerCall(`${asUrl}/token`, 'partner-a', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form });
  const token = (JSON.parse(issued.body || '{}') as { access_token?: string }).access_token ?? '';
  const gatewayUrl = `https://localhost:${ports.NGINX_PORT}/api/accounts`;
  const checks: [string, Promise<{ status: number }>, number][] = [
    ['partner A with its token', partnerCall(gatewayUrl, 'partner-a', { headers: { authorization: `Bearer ${token}` } }), 200],
    ['partner B replaying A\'s token', partnerCall(gatewayUrl, 'partner-b', { headers: { authorization: `Bearer ${token}` } }), 401],
    ['partner A without a token', partnerCall(gatewayUrl, 'partner-a'), 401],
  ];
  let ok = token !== '';
  for (const [name, call, expected] of checks) {
    const { status } = await call;
    say(`  ${status === expected ? 'ok  ' : 'FAIL'} ${name}: ${status} (expected ${expected})`);
    ok &&= status === expected;
  }
  say(`  gateway https://localhost:${ports.NGINX_PORT} -> decision sidecar https://127.0.0.1:${ports.DECISION_PORT} -> API http://127.0.0.1:${ports.GATEWAY_API_PORT}`);
  return ok;
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
  start('sidecar', 'src/main.ts', sidecarEnv(ports.PHANTOM_LISTEN_PORT ?? 0, ports.PHANTOM_ADMIN_PORT ?? 0, asUrl, clientKeyFile, {
    PHANTOM_UPSTREAM_URL: `http://127.0.0.1:${ports.API_PORT}`,
    // Both FAPI 2.0 sender constraints; a DPoP proof's htu names this Host.
    PHANTOM_SENDER_CONSTRAINTS: 'mtls dpop',
    PHANTOM_PUBLIC_HOSTS: `localhost:${ports.PHANTOM_LISTEN_PORT}`,
    PHANTOM_RESOURCE: `https://localhost:${ports.PHANTOM_LISTEN_PORT}`,
    // Revocation events from the AS (Shared Signals): a revoked token is refused at once.
    PHANTOM_SSF_ISSUER: asUrl,
    PHANTOM_SSF_AUDIENCE: 'https://api.example.com',
    PHANTOM_CACHE_MAX_TTL_S: String(CACHE_TTL_S),
  }));
  await waitFor('the sidecar', () => httpReady(`http://127.0.0.1:${ports.PHANTOM_ADMIN_PORT}/readyz`));
  await waitFor('the example API', async () => portFree(ports.API_PORT ?? 0).then((free) => !free));
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
  const gatewayOk = withNginx ? await nginxLeg(asUrl, clientKeyFile) : true;
  const failed = partner !== 0 || attacks !== 0 || dpop !== 0 || !gatewayOk;
  say(`\n${bold(failed ? 'demo: some answers were not the expected ones' : 'demo: the partner flow worked and every attack was refused')}`);

  if (once) await stopAll(failed ? 1 : 0);
  say(`\nStill serving. Try it yourself, then Ctrl-C to stop:`);
  say(`  CERTS_DIR=${certs} AS_URL=${asUrl} SIDECAR_URL=${sidecarUrl} deploy/scripts/partner-client.sh`);
  process.once('SIGINT', () => void stopAll(failed ? 1 : 0));
  process.once('SIGTERM', () => void stopAll(failed ? 1 : 0));
}

await main();
