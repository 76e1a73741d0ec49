import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resourceMetadata, resourceMetadataPath, resourceMetadataUrl } from '../../src/http/resource-metadata.ts';

test('RFC 9728 §3.1: the well-known path goes between the host and the resource\'s path', () => {
  assert.equal(resourceMetadataPath('https://api.example.com'), '/.well-known/oauth-protected-resource');
  assert.equal(resourceMetadataPath('https://api.example.com/'), '/.well-known/oauth-protected-resource');
  assert.equal(resourceMetadataPath('https://api.example.com/open-banking/v3'), '/.well-known/oauth-protected-resource/open-banking/v3');
  assert.equal(resourceMetadataUrl('https://api.example.com:8443/v1/'), 'https://api.example.com:8443/.well-known/oauth-protected-resource/v1');
});

test('the document: the AS when known, scopes when any, no empty arrays, DPoP members only with DPoP', () => {
  const base = { resource: 'https://api.example.com', introspection: { issuer: undefined }, dpop: { algs: ['ES256'] }, requireBinding: true } as const;
  const mtlsOnly = resourceMetadata({ ...base, senderConstraints: { mtls: true, dpop: false } } as never, []);
  assert.deepEqual(mtlsOnly, { resource: 'https://api.example.com', bearer_methods_supported: ['header'], tls_client_certificate_bound_access_tokens: true, dpop_bound_access_tokens_required: false });
  const dpopOnly = resourceMetadata({ ...base, introspection: { issuer: 'https://as' }, senderConstraints: { mtls: false, dpop: true } } as never, ['accounts', 'accounts']);
  assert.deepEqual(dpopOnly.authorization_servers, ['https://as']);
  assert.deepEqual(dpopOnly.scopes_supported, ['accounts']);
  assert.equal(dpopOnly.dpop_bound_access_tokens_required, true);
  assert.deepEqual(dpopOnly.dpop_signing_alg_values_supported, ['ES256']);
  // DPoP only, binding optional: Bearer tokens are accepted too, so DPoP is not required.
  const optional = resourceMetadata({ ...base, requireBinding: false, senderConstraints: { mtls: false, dpop: true } } as never, []);
  assert.equal(optional.dpop_bound_access_tokens_required, false);
});
