import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientResponseHeaders, upstreamBasePath, upstreamRequestHeaders } from '../../src/pipeline/proxy.ts';

test('the API sees the sidecar\'s JWT and interaction id, never client identity headers or hop-by-hop ones', () => {
  const headers = upstreamRequestHeaders(
    {
      host: 'api.example.com',
      authorization: 'Bearer opaque',
      'x-fapi-interaction-id': 'client-value',
      'client-cert': ':forged:',
      'client-cert-chain': ':forged:',
      'x-forwarded-client-cert': 'Hash=forged',
      'x-client-cert-dn': 'CN=admin',
      'x-ssl-client-verify': 'SUCCESS',
      connection: 'keep-alive, x-secret',
      'keep-alive': 'timeout=5',
      'proxy-authorization': 'Basic x',
      te: 'trailers',
      upgrade: 'websocket',
      'transfer-encoding': 'chunked',
      'content-type': 'application/json',
      accept: 'application/json',
      'x-request-note': 'kept',
      expect: '100-continue',
      forwarded: 'for=10.0.0.1',
      'x-forwarded-for': '10.0.0.1',
      'x-forwarded-host': 'evil.example',
      'x-real-ip': '10.0.0.1',
    },
    { jwt: 'the.jwt.value', interactionId: 'iid', clientIp: '192.0.2.7', host: 'api.example.com' },
  );
  assert.deepEqual(headers, {
    host: 'api.example.com',
    'content-type': 'application/json',
    accept: 'application/json',
    'x-request-note': 'kept',
    authorization: 'Bearer the.jwt.value',
    'x-fapi-interaction-id': 'iid',
    'x-forwarded-for': '192.0.2.7',
    'x-forwarded-proto': 'https',
    'x-forwarded-host': 'api.example.com',
  });
});

test('hop-by-hop headers and an interaction id of the API do not reach the client', () => {
  assert.deepEqual(
    clientResponseHeaders({ connection: 'keep-alive', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', 'x-fapi-interaction-id': 'other', 'content-type': 'text/plain', 'x-api': '1' }),
    { 'content-type': 'text/plain', 'x-api': '1' },
  );
});

test('the upstream URL\'s path becomes the prefix of every forwarded path', () => {
  assert.equal(upstreamBasePath(new URL('http://127.0.0.1:3000')), '');
  assert.equal(upstreamBasePath(new URL('http://127.0.0.1:3000/')), '');
  assert.equal(upstreamBasePath(new URL('http://127.0.0.1:3000/v1')), '/v1');
  assert.equal(upstreamBasePath(new URL('http://127.0.0.1:3000/v1/')), '/v1');
});
