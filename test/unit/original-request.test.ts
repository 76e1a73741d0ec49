// The original request a gateway asks about, by each gateway's convention.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyRequest } from 'fastify';
import { originalHead } from '../../src/http/decision-app.ts';

const NAMES = new Set(['authorization', 'dpop']);

function decisionCall(method: string, url: string, headers: Record<string, string>): FastifyRequest {
  const rawHeaders = Object.entries(headers).flat();
  return { method, raw: { url, headers, rawHeaders, socket: {} } } as unknown as FastifyRequest;
}

test('nginx auth_request: X-Original-Method and X-Original-URI, the Host of the original request', () => {
  const head = originalHead(decisionCall('GET', '/_phantom', { host: 'api.example.com', 'x-original-method': 'POST', 'x-original-uri': '/payments?x=1', authorization: 'Bearer t' }), NAMES);
  assert.deepEqual([head.method, head.target, head.headers.host], ['POST', '/payments?x=1', 'api.example.com']);
  assert.deepEqual(head.distinct.authorization, ['Bearer t']);
});

test('Traefik forwardAuth: X-Forwarded-Method, -Uri and -Host', () => {
  const head = originalHead(decisionCall('GET', '/', { host: 'sidecar.internal', 'x-forwarded-method': 'delete', 'x-forwarded-uri': '/accounts/1', 'x-forwarded-host': 'api.example.com', 'x-forwarded-proto': 'https' }), NAMES);
  assert.deepEqual([head.method, head.target, head.headers.host], ['DELETE', '/accounts/1', 'api.example.com']);
});

test('Envoy HTTP ext_authz: the call is the original request (method, path with the prefix taken off, headers)', () => {
  const head = originalHead(decisionCall('PUT', '/ext-authz/accounts/1?y=2', { host: 'api.example.com' }), NAMES, '/ext-authz');
  assert.deepEqual([head.method, head.target], ['PUT', '/accounts/1?y=2']);
  assert.equal(originalHead(decisionCall('GET', '/ext-authz', { host: 'h' }), NAMES, '/ext-authz').target, '/');
});
