// Envoy's gRPC ext_authz v3 on PHANTOM_EXT_AUTHZ_GRPC_PORT: a client made from the same Envoy
// protos sends CheckRequests as Envoy does (include_peer_certificate: the partner's URL-encoded
// PEM in attributes.source.certificate). The real oidc-provider issues the tokens.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import type { RunningAuthorizationServer } from '../../deploy/authorization-server/server.ts';
import { dpopBoundToken, dpopProof, partnerToken, startTestAuthorizationServer } from '../support/as.ts';
import { issueClientCertificate, makePki, type Identity, type Pki } from '../support/pki.ts';
import { accessLines, baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { freePort } from '../support/ports.ts';

const HOST = 'api.example.com';
const root = join(dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const definition = loadSync('envoy/service/auth/v3/external_auth.proto', { includeDirs: ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((dir) => join(root, dir)), keepCase: true, enums: String, defaults: false, oneofs: true });
type CheckClient = grpc.Client & { Check(request: unknown, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: CheckResponse) => void): void };
const { Authorization } = (grpc.loadPackageDefinition(definition) as unknown as { envoy: { service: { auth: { v3: { Authorization: new (address: string, credentials: grpc.ChannelCredentials) => CheckClient } } } } }).envoy.service.auth.v3;

interface HeaderOption { header: { key: string; value: string } }
interface CheckResponse {
  status?: { code?: number };
  ok_response?: { headers?: HeaderOption[]; headers_to_remove?: string[] };
  denied_response?: { status?: { code?: string | number }; headers?: HeaderOption[]; body?: string };
}

describe('gRPC ext_authz (envoy.service.auth.v3.Authorization/Check)', () => {
  const pki: Pki = makePki();
  let as: RunningAuthorizationServer;
  let sidecar: RunningSidecar;
  let gateway: Identity;
  let tokenA: string;
  let port: number;

  before(async () => {
    as = await startTestAuthorizationServer(pki);
    const dir = mkdtempSync(join(tmpdir(), 'phantom-envoy-'));
    const pair = issueClientCertificate(pki, dir, 'envoy-gateway', '/O=phantom-sidecar development/CN=envoy');
    const cert = readFileSync(pair.cert, 'utf8');
    gateway = { cert, key: readFileSync(pair.key, 'utf8'), thumbprint: createHash('sha256').update(new X509Certificate(cert).raw).digest('base64url') };
    const env: Record<string, string> = {
      ...baseEnv(pki, 'http://unused', as.introspectionUrl),
      PHANTOM_MODE: 'decision',
      PHANTOM_CLIENT_CERT_SOURCE: 'header',
      PHANTOM_CLIENT_CERT_HEADER_FORMAT: 'xfcc',
      PHANTOM_TRUSTED_PROXY_CERT_X5T: gateway.thumbprint,
      PHANTOM_SENDER_CONSTRAINTS: 'mtls dpop',
      PHANTOM_PUBLIC_HOSTS: HOST,
      PHANTOM_EXT_AUTHZ_GRPC_PORT: String(await freePort()),
    };
    delete env.PHANTOM_UPSTREAM_URL;
    sidecar = await startSidecar(env);
    port = sidecar.extAuthz?.port ?? 0;
    tokenA = await partnerToken(as, 'partner-a', pki.partnerA, pki);
  });
  after(async () => {
    await sidecar?.stop();
    await as?.stop();
  });

  function check(identity: Identity, request: unknown): Promise<CheckResponse> {
    const client = new Authorization(`localhost:${port}`, grpc.credentials.createSsl(Buffer.from(pki.ca), Buffer.from(identity.key), Buffer.from(identity.cert)));
    return new Promise((resolve, reject) => {
      client.Check(request, { deadline: Date.now() + 5000 }, (error: grpc.ServiceError | null, response: CheckResponse) => {
        client.close();
        if (error !== null) reject(error);
        else resolve(response);
      });
    });
  }
  const httpRequest = (headers: Record<string, string>, certificate: string | null = pki.partnerA.cert, path = '/api/accounts') => ({
    attributes: {
      ...(certificate === null ? {} : { source: { certificate: encodeURIComponent(certificate) } }),
      request: { http: { method: 'GET', path, host: HOST, headers } },
    },
  });
  const header = (options: HeaderOption[] | undefined, key: string) => options?.find((option) => option.header.key === key)?.header.value;

  test('allowed: OK with the JWT to set upstream (overwriting) and the DPoP header to remove', async () => {
    const response = await check(gateway, httpRequest({ authorization: `Bearer ${tokenA}` }));
    assert.equal(response.status?.code ?? 0, 0);
    assert.match(String(header(response.ok_response?.headers, 'authorization')), /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    assert.deepEqual(response.ok_response?.headers_to_remove, ['dpop']);
    const line = accessLines(sidecar.logs).at(-1);
    assert.deepEqual([line?.path, line?.x5t, line?.status], ['/api/accounts', pki.partnerA.thumbprint, 200]);
  });

  test('binding mismatch: denied with 401, the challenge and the JSON body', async () => {
    const response = await check(gateway, httpRequest({ authorization: `Bearer ${tokenA}` }, pki.partnerB.cert));
    assert.equal(response.status?.code, 16);
    assert.ok(response.denied_response?.status?.code === 401 || response.denied_response?.status?.code === 'Unauthorized');
    assert.match(String(header(response.denied_response?.headers, 'www-authenticate')), /error="invalid_token"/);
    assert.equal(JSON.parse(response.denied_response?.body ?? '{}').error, 'invalid_token');
    assert.equal(response.ok_response, undefined);
  });

  test('DPoP: the proof checked against the original method and URL', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const token = await dpopBoundToken(as, pki.partnerA, pki, key);
    const allowed = await check(gateway, httpRequest({ authorization: `DPoP ${token}`, dpop: await dpopProof(key, 'GET', `https://${HOST}/api/accounts`, { token }) }));
    assert.equal(allowed.status?.code ?? 0, 0);
    const replayedElsewhere = await check(gateway, httpRequest({ authorization: `DPoP ${token}`, dpop: await dpopProof(key, 'GET', `https://${HOST}/other`, { token }) }));
    assert.equal(replayedElsewhere.status?.code, 16);
  });

  test('a request header cannot stand in for Envoy\'s certificate attribute', async () => {
    const response = await check(gateway, httpRequest({ authorization: `Bearer ${tokenA}`, ':source-certificate': encodeURIComponent(pki.partnerA.cert) }, null));
    assert.equal(response.status?.code, 16);
    assert.equal(accessLines(sidecar.logs).at(-1)?.detail, 'missing');
  });

  test('malformed attributes (no HTTP request): denied 400, never allowed', async () => {
    const response = await check(gateway, { attributes: {} });
    assert.equal(response.status?.code, 3);
    assert.ok(response.denied_response?.status?.code === 400 || response.denied_response?.status?.code === 'BadRequest');
  });

  test('a connection without the trusted gateway\'s certificate is refused, whatever it says', async () => {
    const response = await check(pki.partnerA, httpRequest({ authorization: `Bearer ${tokenA}` }));
    assert.equal(response.status?.code, 16);
    assert.equal(accessLines(sidecar.logs).at(-1)?.detail, 'not_a_gateway');
  });

  test('the AS down: denied 503 with Retry-After, never allowed', async () => {
    const env: Record<string, string> = {
      ...baseEnv(pki, 'http://unused', 'https://127.0.0.1:1/introspect'),
      PHANTOM_MODE: 'decision',
      PHANTOM_CLIENT_CERT_SOURCE: 'header',
      PHANTOM_TRUSTED_PROXY_CERT_X5T: gateway.thumbprint,
      PHANTOM_EXT_AUTHZ_GRPC_PORT: String(await freePort()),
    };
    delete env.PHANTOM_UPSTREAM_URL;
    const down = await startSidecar(env);
    try {
      const client = new Authorization(`localhost:${down.extAuthz?.port ?? 0}`, grpc.credentials.createSsl(Buffer.from(pki.ca), Buffer.from(gateway.key), Buffer.from(gateway.cert)));
      const response = await new Promise<CheckResponse>((resolve, reject) => client.Check(httpRequest({ authorization: 'Bearer some-token' }), { deadline: Date.now() + 5000 }, (error: grpc.ServiceError | null, answer: CheckResponse) => {
        client.close();
        if (error !== null) reject(error);
        else resolve(answer);
      }));
      assert.equal(response.status?.code, 14);
      assert.ok(response.denied_response?.status?.code === 503 || response.denied_response?.status?.code === 'ServiceUnavailable');
      assert.equal(header(response.denied_response?.headers, 'retry-after'), '5');
    } finally {
      await down.stop();
    }
  });
});
