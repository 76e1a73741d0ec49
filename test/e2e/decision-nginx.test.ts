// PHANTOM_MODE=decision behind a real nginx: nginx terminates the partner's mTLS, asks the
// sidecar with auth_request over mTLS with its own client certificate, and forwards the request
// to the API with the JWT the sidecar answered. The real oidc-provider issues the tokens.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import type { RunningAuthorizationServer } from '../../deploy/authorization-server/server.ts';
import { dpopBoundToken, dpopProof, partnerToken, startTestAuthorizationServer } from '../support/as.ts';
import { call } from '../support/client.ts';
import { NGINX_MISSING, nginxAvailable, startNginx, type RunningNginx } from '../../deploy/nginx/gateway.ts';
import { issueClientCertificate, makePki, type Identity, type Pki } from '../support/pki.ts';
import { accessLineFor, baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstream.ts';

const available = nginxAvailable();
if (!available && process.env.CI === 'true') throw new Error(NGINX_MISSING);
const HOST = 'api.example.com';

describe('decision mode behind nginx auth_request', { skip: available ? false : NGINX_MISSING }, () => {
  const pki: Pki = makePki();
  let as: RunningAuthorizationServer;
  let upstream: EchoUpstream;
  let sidecar: RunningSidecar;
  let nginx: RunningNginx;
  let gateway: Identity;
  let tokenA: string;

  before(async () => {
    as = await startTestAuthorizationServer(pki);
    upstream = await startEchoUpstream();
    const dir = mkdtempSync(join(tmpdir(), 'phantom-gateway-'));
    const pair = issueClientCertificate(pki, dir, 'nginx-gateway', '/O=phantom-sidecar development/CN=nginx gateway');
    const cert = readFileSync(pair.cert, 'utf8');
    gateway = { cert, key: readFileSync(pair.key, 'utf8'), thumbprint: createHash('sha256').update(new X509Certificate(cert).raw).digest('base64url') };
    const env: Record<string, string> = {
      ...baseEnv(pki, upstream.url, as.introspectionUrl),
      PHANTOM_MODE: 'decision',
      PHANTOM_CLIENT_CERT_SOURCE: 'header',
      PHANTOM_CLIENT_CERT_HEADER_FORMAT: 'nginx',
      PHANTOM_TRUSTED_PROXY_CERT_X5T: gateway.thumbprint,
      PHANTOM_SENDER_CONSTRAINTS: 'mtls dpop',
      PHANTOM_PUBLIC_HOSTS: HOST,
    };
    delete env.PHANTOM_UPSTREAM_URL;
    sidecar = await startSidecar(env);
    nginx = await startNginx({
      serverCert: pki.path('server.pem'),
      serverKey: pki.path('server.key'),
      partnerCa: pki.path('ca.pem'),
      clientCert: pair.cert,
      clientKey: pair.key,
      sidecarPort: sidecar.port,
      upstreamUrl: upstream.url,
    });
    tokenA = await partnerToken(as, 'partner-a', pki.partnerA, pki);
  });
  after(async () => {
    await nginx?.stop();
    await sidecar?.stop();
    await upstream?.stop();
    await as?.stop();
  });

  const viaNginx = (identity: Identity, headers: Record<string, string>) =>
    call({ port: nginx.port, cert: identity.cert, key: identity.key, ca: pki.ca, headers: { host: HOST, ...headers } });

  test('partner A with its bound token: 200, and the API gets a JWT that verifies against the sidecar\'s keys, never the opaque token', async () => {
    const before = upstream.received.length;
    const response = await viaNginx(pki.partnerA, { authorization: `Bearer ${tokenA}` });
    assert.equal(response.status, 200, `${response.text} ${nginx.errors()}`);
    assert.equal(upstream.received.length, before + 1);
    const seen = upstream.received.at(-1)!;
    const jwt = String(seen.headers.authorization).replace(/^Bearer /, '');
    assert.notEqual(jwt, tokenA);
    const jwks = (await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/.well-known/jwks.json`)).json()) as JSONWebKeySet;
    const { payload } = await jwtVerify(jwt, createLocalJWKSet(jwks), { issuer: 'https://sidecar.test', audience: 'https://api.internal.test' });
    assert.equal(payload.client_id, 'partner-a');
    assert.deepEqual(payload.cnf, { 'x5t#S256': pki.partnerA.thumbprint });
  });

  test('partner B replaying A\'s token: 401 passed through with the challenge, nothing forwarded', async () => {
    const before = upstream.received.length;
    const response = await viaNginx(pki.partnerB, { authorization: `Bearer ${tokenA}` });
    assert.equal(response.status, 401);
    assert.match(String(response.headers['www-authenticate']), /^Bearer realm="phantom-sidecar", error="invalid_token"/);
    assert.equal(upstream.received.length, before);
  });

  test('no token: 401 with a challenge per accepted scheme', async () => {
    const response = await viaNginx(pki.partnerA, {});
    assert.equal(response.status, 401);
    assert.match(String(response.headers['www-authenticate']), /Bearer realm="phantom-sidecar"/);
  });

  test('a forged certificate header from a partner is never believed: nginx sets it from the handshake', async () => {
    const forged = encodeURIComponent(pki.partnerA.cert);
    const response = await viaNginx(pki.partnerB, { authorization: `Bearer ${tokenA}`, 'x-ssl-client-cert': forged });
    assert.equal(response.status, 401);
  });

  test('a DPoP partner through nginx: the proof is checked against the original method and URL', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const token = await dpopBoundToken(as, pki.partnerA, pki, key);
    const good = await viaNginx(pki.partnerA, { authorization: `DPoP ${token}`, dpop: await dpopProof(key, 'GET', `https://${HOST}/api/accounts`, { token }) });
    assert.equal(good.status, 200, good.text);
    const wrongPath = await viaNginx(pki.partnerA, { authorization: `DPoP ${token}`, dpop: await dpopProof(key, 'GET', `https://${HOST}/decide`, { token }) });
    assert.equal(wrongPath.status, 401);
  });

  test('the decision call itself: the gateway gets the JWT header and no-store; a partner calling the decision listener directly is refused', async () => {
    const asGateway = await call({ port: sidecar.port, path: '/decide', cert: gateway.cert, key: gateway.key, ca: pki.ca, headers: { host: HOST, authorization: `Bearer ${tokenA}`, 'x-original-method': 'GET', 'x-original-uri': '/api/accounts?x=1', 'x-ssl-client-cert': encodeURIComponent(pki.partnerA.cert) } });
    assert.equal(asGateway.status, 200);
    assert.equal(asGateway.headers['cache-control'], 'no-store');
    assert.match(String(asGateway.headers.authorization), /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal((await accessLineFor(sidecar.logs, asGateway)).path, '/api/accounts');
    const direct = await call({ port: sidecar.port, path: '/decide', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { host: HOST, authorization: `Bearer ${tokenA}`, 'x-original-uri': '/api/accounts' } });
    assert.equal(direct.status, 401);
    assert.equal((await accessLineFor(sidecar.logs, direct)).detail, 'not_a_gateway');
    assert.equal(direct.headers.authorization, undefined);
  });
});
