import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalJWKSet, decodeJwt, jwtVerify, SignJWT } from 'jose';
import { generateKeyPairSync } from 'node:crypto';
import { InvalidToken } from '../../src/errors.ts';
import type { JwtAlg } from '../../src/config/config.ts';
import { cacheEntry, type CacheEntry } from '../../src/introspection/cache.ts';
import { AuthorizationServerJwt, JwtMinter, mintedClaims } from '../../src/introspection/upstream-token.ts';

const NOW = 1_800_000_000;
const settings = { mode: 'mint' as const, issuer: 'https://sidecar', audience: 'https://api', ttlSeconds: 60, alg: 'ES256' as JwtAlg, signingKey: undefined };

test('minted claims: RFC 9068 members, sub falls back to client_id, cnf as verified (x5t#S256 and jkt)', () => {
  const claims = mintedClaims({ client_id: 'partner-a', scope: 'accounts', exp: NOW + 600, cnf: { 'x5t#S256': 'abc', jkt: 'j' } }, settings, NOW);
  assert.equal(claims.iss, 'https://sidecar');
  assert.equal(claims.aud, 'https://api');
  assert.equal(claims.sub, 'partner-a');
  assert.equal(claims.client_id, 'partner-a');
  assert.equal(claims.scope, 'accounts');
  assert.equal(claims.iat, NOW);
  assert.equal(claims.exp, NOW + 60);
  assert.deepEqual(claims.cnf, { 'x5t#S256': 'abc', jkt: 'j' });
  assert.equal(mintedClaims({ client_id: 'c', cnf: {} }, settings, NOW).cnf, undefined);
  assert.match(String(claims.jti), /^[0-9a-f-]{36}$/);
  assert.notEqual(mintedClaims({}, settings, NOW).jti, claims.jti);
  assert.equal(mintedClaims({ sub: 'user-1', client_id: 'c' }, settings, NOW).sub, 'user-1');
});

test('the minted exp never passes the opaque token\'s exp', () => {
  assert.equal(mintedClaims({ exp: NOW + 10 }, settings, NOW).exp, NOW + 10);
  assert.throws(() => mintedClaims({ exp: NOW }, settings, NOW), InvalidToken);
});

const entry = (exp = NOW + 600): CacheEntry => cacheEntry({ active: true, claims: { client_id: 'c', exp, cnf: { 'x5t#S256': 'abc' } } });

for (const alg of ['ES256', 'PS256', 'EdDSA'] as const) {
  test(`${alg}: a typ at+jwt with kid that verifies against the published JWKS`, async () => {
    const minter = await JwtMinter.create({ ...settings, alg });
    const jwt = await minter.jwtFor(entry(), Math.floor(Date.now() / 1000));
    const { protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(minter.jwks), { algorithms: [alg], typ: 'at+jwt', issuer: settings.issuer, audience: settings.audience });
    assert.equal(protectedHeader.kid, minter.kid);
    assert.equal(minter.jwks.keys.length, 1);
    assert.equal(minter.jwks.keys[0]?.alg, alg);
    assert.equal('d' in (minter.jwks.keys[0] ?? {}), false, 'the JWKS holds no private part');
  });
}

test('a configured signing key is used as is', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const minter = await JwtMinter.create({ ...settings, signingKey: privateKey });
  const jwt = await minter.jwtFor(entry(), Math.floor(Date.now() / 1000));
  await jwtVerify(jwt, publicKey, { algorithms: ['ES256'] });
});

test('the minted JWT is kept with the entry and reused while fresh', async () => {
  const minter = await JwtMinter.create(settings);
  const cached = entry();
  const first = await minter.jwtFor(cached, NOW);
  assert.equal(await minter.jwtFor(cached, NOW + 50), first, 'a cache hit signs nothing');
  const later = await minter.jwtFor(cached, NOW + 56);
  assert.notEqual(later, first, 'a JWT about to expire is replaced');
  assert.equal(decodeJwt(later).exp, NOW + 56 + 60);
});

test('the entry keeps the JWT once, without the header every JWT of the minter shares; the synchronous path gives back the very JWT signed', async () => {
  const minter = await JwtMinter.create(settings);
  const cached = entry();
  const signed = await minter.jwtFor(cached, NOW);
  await new Promise((resolve) => setImmediate(resolve));
  const kept = cached.upstreamJwt?.signed ?? '';
  const header = signed.slice(0, signed.indexOf('.') + 1);
  assert.equal(kept, signed.slice(header.length), 'the payload and signature, not the header');
  assert.equal(cached.upstreamJwt?.jwt, undefined, 'the settled signature is not held');
  assert.equal(minter.readyJwtFor(cached, NOW + 10), signed);
  await jwtVerify(minter.readyJwtFor(cached, Math.floor(Date.now() / 1000)) ?? '', createLocalJWKSet(minter.jwks), { typ: 'at+jwt' });
  assert.equal(minter.readyJwtFor(cached, NOW + 56), undefined, 'none when it is about to expire');
});

test('the sidecar never mints for an inactive answer', async () => {
  const minter = await JwtMinter.create(settings);
  assert.throws(() => minter.jwtFor(cacheEntry({ active: false }), NOW));
});

test('as-jwt: the authorization server\'s JWT is forwarded unchanged', async () => {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwt = await new SignJWT({ sub: 's' }).setProtectedHeader({ alg: 'ES256' }).sign(privateKey);
  const source = new AuthorizationServerJwt();
  assert.equal(await source.jwtFor(cacheEntry({ active: true, claims: {}, jwt })), jwt);
  await assert.rejects(source.jwtFor(cacheEntry({ active: true, claims: {} })));
  assert.deepEqual(source.jwks, { keys: [] });
});
