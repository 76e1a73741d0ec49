import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, jwtVerify, type JWK } from 'jose';
import { clientSecretPost, privateKeyJwt } from '../../src/authorization-server/client-auth.ts';
import { metadataUrls, readMetadata } from '../../src/authorization-server/metadata.ts';
import { ConfigError } from '../../src/config/config.ts';

test('private_key_jwt: a fresh RFC 7523 assertion per call, aud the issuer, exp within 60 s, kid the RFC 7638 thumbprint', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const auth = privateKeyJwt('sidecar', { key: privateKey, alg: 'ES256', keyId: undefined }, 'https://as.example.com');
  const first = await auth.credentials();
  const second = await auth.credentials();
  assert.equal(first.form.client_assertion_type, 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
  assert.equal(first.form.client_id, 'sidecar');
  assert.deepEqual(first.headers, {});
  const assertion = first.form.client_assertion ?? '';
  const { payload, protectedHeader } = await jwtVerify(assertion, publicKey, { algorithms: ['ES256'], issuer: 'sidecar', subject: 'sidecar', audience: 'https://as.example.com' });
  assert.equal(protectedHeader.kid, await calculateJwkThumbprint(createPublicKey(privateKey).export({ format: 'jwk' }) as JWK));
  assert.ok(typeof payload.jti === 'string' && payload.jti.length >= 32);
  assert.ok((payload.exp ?? 0) - (payload.iat ?? 0) <= 60 && (payload.exp ?? 0) > (payload.iat ?? 0));
  assert.notEqual(second.form.client_assertion, assertion, 'never reused');
  assert.notEqual(decodeJwt(second.form.client_assertion ?? '').jti, payload.jti);
  assert.ok(!JSON.stringify(first).includes('"d"'), 'no private key material in what is sent');
});

test('private_key_jwt: a configured key id and the algorithm of the key', async () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const auth = privateKeyJwt('sidecar', { key: privateKey, alg: 'EdDSA', keyId: 'key-2026' }, 'https://as');
  const header = decodeProtectedHeader((await auth.credentials()).form.client_assertion ?? '');
  assert.deepEqual([header.alg, header.kid], ['EdDSA', 'key-2026']);
});

test('client_secret_post: id and secret in the form, nothing in the headers', async () => {
  assert.deepEqual(await clientSecretPost('id', 's3cret').credentials(), { headers: {}, form: { client_id: 'id', client_secret: 's3cret' } });
});

test('RFC 8414 well-known URLs: inserted before the issuer\'s path, OpenID\'s appended', () => {
  assert.deepEqual(metadataUrls('https://as.example.com').map(String), ['https://as.example.com/.well-known/oauth-authorization-server', 'https://as.example.com/.well-known/openid-configuration']);
  assert.deepEqual(metadataUrls('https://as.example.com/realms/bank/').map(String), ['https://as.example.com/.well-known/oauth-authorization-server/realms/bank', 'https://as.example.com/realms/bank/.well-known/openid-configuration']);
});

test('metadata: the issuer must be identical, the mTLS alias is taken for TLS methods, the method must be listed', () => {
  const document = {
    issuer: 'https://as.example.com',
    introspection_endpoint: 'https://as.example.com/introspect',
    jwks_uri: 'https://as.example.com/jwks',
    mtls_endpoint_aliases: { introspection_endpoint: 'https://mtls.as.example.com/introspect' },
    introspection_endpoint_auth_methods_supported: ['private_key_jwt', 'tls_client_auth'],
  };
  assert.equal(readMetadata(document, 'https://as.example.com', 'private_key_jwt').introspectionEndpoint.href, 'https://as.example.com/introspect');
  assert.equal(readMetadata(document, 'https://as.example.com', 'tls_client_auth').introspectionEndpoint.href, 'https://mtls.as.example.com/introspect');
  const fails = (doc: unknown, issuer = 'https://as.example.com', method: Parameters<typeof readMetadata>[2] = 'private_key_jwt') => {
    try {
      readMetadata(doc, issuer, method);
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return error.message;
    }
    return 'accepted';
  };
  assert.match(fails(document, 'https://as.example.com/'), /names another issuer/);
  assert.match(fails(document, 'https://as.example.com', 'client_secret_basic'), /client_secret_basic is not in the AS's introspection_endpoint_auth_methods_supported/);
  assert.match(fails({ ...document, introspection_endpoint: 'http://as.example.com/introspect' }), /introspection_endpoint is not an https URL/);
  assert.match(fails({ ...document, introspection_endpoint: undefined, mtls_endpoint_aliases: undefined }), /names no introspection_endpoint/);
  assert.match(fails([document]), /not a JSON object/);
  assert.equal(fails({ ...document, introspection_endpoint_auth_methods_supported: undefined, token_endpoint_auth_methods_supported: ['private_key_jwt'] }), 'accepted');
});
