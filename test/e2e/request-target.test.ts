// Requests the API must never see: odd targets, methods, forged identity headers, a Host
// nobody vouched for; and what of the API's answer the partner must never see.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { partnerToken } from '../support/as.ts';
import { call } from '../support/client.ts';
import type { Pki } from '../support/pki.ts';
import { rawRequest } from '../support/raw.ts';
import { accessLineFor, accessLines, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

describe('request targets, methods and headers (upstream with a base path)', () => {
  let stack: Stack;
  let pki: Pki;
  let sidecar: RunningSidecar;
  let token: string;

  before(async () => {
    stack = await startStack((_as, upstream) => ({ PHANTOM_UPSTREAM_URL: `${upstream.url}/v1/` }));
    ({ pki, sidecar } = stack);
    token = await partnerToken(stack.as, 'partner-a', pki.partnerA, pki);
  });
  after(() => stack?.stop());

  const raw = (requestLine: string, headers = '') => rawRequest(sidecar.port, pki.partnerA, pki, `${requestLine}\r\nHost: localhost\r\nAuthorization: Bearer ${token}${headers}`);

  test('the path the API receives is the one the access line logs: base path + the checked path, the query following', async () => {
    const response = await call({ port: sidecar.port, path: '/accounts/42?page=2', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    assert.equal(stack.upstream.received.at(-1)?.url, '/v1/accounts/42?page=2');
    assert.equal((await accessLineFor(sidecar.logs, response)).path, '/v1/accounts/42');
  });

  const refusedTargets = [
    ['a backslash traversal (reached GET /admin before)', 'GET /x\\..\\..\\admin HTTP/1.1'],
    ['an encoded backslash', 'GET /x/%5c..%5c..%5cadmin HTTP/1.1'],
    ['an encoded backslash, upper case', 'GET /x/%5C..%5Cadmin HTTP/1.1'],
    ['an encoded slash', 'GET /x/..%2f..%2fadmin HTTP/1.1'],
    ['an encoded NUL', 'GET /accounts%00.json HTTP/1.1'],
    ['an encoded NUL in the query', 'GET /accounts?x=%00 HTTP/1.1'],
    ['a raw dot-dot segment', 'GET /x/../admin HTTP/1.1'],
    ['a raw dot segment', 'GET /x/./admin HTTP/1.1'],
    ['a trailing dot-dot', 'GET /x/.. HTTP/1.1'],
    ['an encoded dot segment', 'GET /x/%2e%2e/admin HTTP/1.1'],
    ['a half-encoded dot segment', 'GET /x/.%2e/admin HTTP/1.1'],
    ['a double-encoded dot segment', 'GET /x/%252e%252e/admin HTTP/1.1'],
    ['a servlet path parameter dot-dot', 'GET /x/..;/admin HTTP/1.1'],
    ['an empty segment', 'GET /x//admin HTTP/1.1'],
    ['a scheme-relative path', 'GET //evil.example/x HTTP/1.1'],
    ['an absolute-form target', 'GET http://localhost/accounts HTTP/1.1'],
    ['an absolute-form target to another host', 'GET https://evil.example/admin HTTP/1.1'],
    ['the asterisk form', 'OPTIONS * HTTP/1.1'],
    ['a quote in the path', 'GET /acc"ounts HTTP/1.1'],
    ['an escape that decodes to no UTF-8', 'GET /accounts/%F2 HTTP/1.1'],
  ] as const;
  for (const [name, requestLine] of refusedTargets) {
    test(`${name}: 400 invalid_request, nothing forwarded, no unexpected error`, async () => {
      const before = stack.upstream.received.length;
      const response = await raw(requestLine);
      assert.equal(response.status, 400, response.body);
      assert.equal(response.json.error, 'invalid_request');
      assert.equal(stack.upstream.received.length, before);
      const line = await accessLineFor(sidecar.logs, response);
      assert.ok(line.reason === 'bad_request_target' || line.reason === 'malformed_url', JSON.stringify(line));
      assert.ok(!sidecar.logs.some((entry) => entry.includes('unexpected error')));
    });
  }

  test('ordinary targets still pass: dots inside names, sub-delims, encoded spaces, a query with brackets', async () => {
    for (const target of ['/files/report.v2.json', '/a/b;v=1', '/names/J%C3%BCrgen%20M', '/search?filter[status]=open&q=a%2Fb', '/trailing/']) {
      const response = await raw(`GET ${target} HTTP/1.1`);
      assert.equal(response.status, 200, target);
      assert.equal(stack.upstream.received.at(-1)?.url, `/v1${target}`);
    }
  });

  for (const method of ['TRACE', 'CONNECT', 'PROPFIND', 'PURGE']) {
    test(`${method}: 405 with Allow, nothing forwarded, an access line`, async () => {
      const before = stack.upstream.received.length;
      const target = method === 'CONNECT' ? 'localhost:443' : '/accounts';
      const response = await raw(`${method} ${target} HTTP/1.1`);
      assert.equal(response.status, 405);
      assert.equal(response.headers.allow, 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS');
      assert.equal(stack.upstream.received.length, before);
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.ok(accessLines(sidecar.logs).some((line) => line.reason === 'method_not_allowed' && line.status === 405 && line.interaction_id === response.headers['x-fapi-interaction-id']));
    });
  }

  test('a malformed percent-encoding and an unparsable request line get an access line with their reason', async () => {
    const bad = await raw('GET /%E0%A4%A HTTP/1.1');
    assert.equal(bad.status, 400);
    const garbage = await rawRequest(sidecar.port, pki.partnerA, pki, 'GE T / HTTP/1.1\r\nHost: localhost');
    assert.equal(garbage.status, 400);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const reasons = accessLines(sidecar.logs).map((line) => line.reason);
    assert.ok(reasons.includes('bad_request'), reasons.join(','));
  });

  test('identity and routing headers other gateways set, names with "_" and Cookie never reach the API', async () => {
    const forged = {
      'x-original-url': '/admin',
      'x-rewrite-url': '/admin',
      'x-original-uri': '/admin',
      'true-client-ip': '10.0.0.1',
      'cf-connecting-ip': '10.0.0.1',
      'remote-user': 'admin',
      'x-remote-user': 'admin',
      'x-authenticated-userid': 'admin',
      'x-consumer-username': 'admin',
      'x-userinfo': 'e30',
      'x-amzn-oidc-identity': 'admin',
      'x-ms-client-principal-name': 'admin',
      'x_forwarded_for': '10.0.0.1',
      cookie: 'session=stolen',
    };
    const response = await call({ port: sidecar.port, path: '/accounts', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}`, ...forged } });
    assert.equal(response.status, 200);
    const seen = stack.upstream.received.at(-1)!.headers;
    for (const name of Object.keys(forged)) assert.equal(seen[name], undefined, name);
  });

  test('what the API says about itself and names hop-by-hop in Connection never reaches the partner', async () => {
    stack.upstream.responseHeaders = { connection: 'keep-alive, x-internal-trace', 'x-internal-trace': 'db=10.0.0.7', server: 'Apache/2.4.1 (Unix)', 'x-powered-by': 'PHP/5.6' };
    try {
      const response = await call({ port: sidecar.port, path: '/accounts', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });
      assert.equal(response.status, 200);
      for (const name of ['x-internal-trace', 'server', 'x-powered-by']) assert.equal(response.headers[name], undefined, name);
      assert.equal(response.headers['x-upstream'], 'echo');
    } finally {
      stack.upstream.responseHeaders = {};
    }
  });
});

describe('PHANTOM_PUBLIC_HOSTS, PHANTOM_ALLOWED_METHODS and PHANTOM_FORWARD_COOKIES', () => {
  let stack: Stack;
  let token: string;

  before(async () => {
    stack = await startStack(() => ({ PHANTOM_PUBLIC_HOSTS: 'api.example.com api.example.com:8443', PHANTOM_ALLOWED_METHODS: 'GET POST', PHANTOM_FORWARD_COOKIES: 'true' }));
    token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
  });
  after(() => stack?.stop());

  const asA = (headers: Record<string, string>, method = 'GET') =>
    call({ port: stack.sidecar.port, method, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { authorization: `Bearer ${token}`, ...headers } });

  test('a listed Host passes and is the X-Forwarded-Host the API gets', async () => {
    const response = await asA({ host: 'API.example.com:8443' });
    assert.equal(response.status, 200);
    assert.equal(stack.upstream.received.at(-1)?.headers['x-forwarded-host'], 'api.example.com:8443');
  });

  test('any other Host is 421 Misdirected Request, nothing forwarded', async () => {
    const before = stack.upstream.received.length;
    for (const host of ['evil.example', 'api.example.com:9443', 'localhost']) {
      const response = await asA({ host });
      assert.equal(response.status, 421, host);
      assert.equal((await accessLineFor(stack.sidecar.logs, response)).reason, 'misdirected_request');
    }
    assert.equal(stack.upstream.received.length, before);
  });

  test('a method outside PHANTOM_ALLOWED_METHODS is 405 with that Allow', async () => {
    const response = await asA({ host: 'api.example.com' }, 'DELETE');
    assert.equal(response.status, 405);
    assert.equal(response.headers.allow, 'GET, POST');
  });

  test('cookies reach the API only when PHANTOM_FORWARD_COOKIES=true', async () => {
    assert.equal((await asA({ host: 'api.example.com', cookie: 'session=1' })).status, 200);
    assert.equal(stack.upstream.received.at(-1)?.headers.cookie, 'session=1');
  });
});
