// The example API trusts nothing but a JWT from the sidecar's JWKS, with the pinned algorithm,
// its iss, aud, typ and exp.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT, UnsecuredJWT, type JWK } from 'jose';
import type { FastifyInstance } from 'fastify';
import { buildExampleApi } from '../../deploy/example-api/server.ts';

const trusted = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
let jwksServer: Server;
let api: FastifyInstance;

before(async () => {
  const jwk = { ...(trusted.publicKey.export({ format: 'jwk' }) as JWK), kid: 'k1', alg: 'ES256' };
  jwksServer = createServer((_req, res) => res.end(JSON.stringify({ keys: [jwk] })));
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  api = buildExampleApi({
    host: '127.0.0.1',
    port: 0,
    jwksUrl: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks`,
    issuer: 'https://sidecar',
    audience: 'https://api',
    algorithms: ['ES256'],
  });
});
after(async () => {
  await api.close();
  jwksServer.close();
});

const claims = { sub: 'partner-a', client_id: 'partner-a', scope: 'accounts transactions' };
const sign = (key: KeyObject, options: { typ?: string; iss?: string; aud?: string; exp?: string } = {}) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', typ: options.typ ?? 'at+jwt', kid: 'k1' })
    .setIssuer(options.iss ?? 'https://sidecar')
    .setAudience(options.aud ?? 'https://api')
    .setIssuedAt()
    .setExpirationTime(options.exp ?? '1m')
    .sign(key);

const accounts = (jwt: string) => api.inject({ url: '/api/accounts', headers: { authorization: `Bearer ${jwt}` } });

test('a JWT from the sidecar\'s key: 200 with the verified claims', async () => {
  const response = await accounts(await sign(trusted.privateKey));
  assert.equal(response.statusCode, 200);
  assert.equal(response.json().verified_caller.client_id, 'partner-a');
});

test('anything else is 401', async () => {
  const cases: [string, string][] = [
    ['another key', await sign(stranger)],
    ['another issuer', await sign(trusted.privateKey, { iss: 'https://evil' })],
    ['another audience', await sign(trusted.privateKey, { aud: 'https://other' })],
    ['not an access-token JWT', await sign(trusted.privateKey, { typ: 'JWT' })],
    ['expired', await sign(trusted.privateKey, { exp: '-1m' })],
    ['alg none', new UnsecuredJWT(claims).setIssuer('https://sidecar').setAudience('https://api').setExpirationTime('1m').encode()],
    ['no token', ''],
  ];
  for (const [name, jwt] of cases) assert.equal((await accounts(jwt)).statusCode, 401, name);
});

test('POST /api/transactions needs the transactions scope', async () => {
  const ok = await api.inject({ method: 'POST', url: '/api/transactions', headers: { authorization: `Bearer ${await sign(trusted.privateKey)}` }, payload: { amount: '1' } });
  assert.equal(ok.statusCode, 201);
});
