import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BodyLimit, UpstreamSlots, clientResponseHeaders, isSidecarOnly, limitedBody, upstreamRequestHeaders } from '../../src/http/proxy.ts';
import { checkDeclaredLength } from '../../src/request/target.ts';
import { RequestRejected } from '../../src/errors.ts';

const own = { jwt: 'the.jwt.value', interactionId: 'iid', clientIp: '192.0.2.7', checkedHost: 'api.example.com', forwardCookies: false };

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
    own,
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

test('identity and routing headers other gateways set, and names with "_", never reach the API', () => {
  const forged = [
    'x-original-url', 'x-rewrite-url', 'x-original-uri', 'true-client-ip', 'cf-connecting-ip', 'remote-user', 'x-remote-user',
    'x-authenticated-userid', 'x-authenticated-scope', 'x-consumer-id', 'x-consumer-username', 'x-userinfo',
    'x-amzn-oidc-identity', 'x-amzn-oidc-data', 'x-ms-client-principal', 'x-ms-client-principal-name',
    'x_forwarded_for', 'x_authenticated_userid', 'some_header', 'dpop',
  ];
  const headers = upstreamRequestHeaders(Object.fromEntries([...forged.map((name) => [name, 'forged']), ['x-kept', 'yes']]), own);
  for (const name of forged) assert.equal(headers[name], undefined, name);
  assert.equal(headers['x-kept'], 'yes');
});

test('method override headers never reach the API: the API runs the method the policy judged', () => {
  const headers = upstreamRequestHeaders({ 'x-http-method-override': 'DELETE', 'x-http-method': 'DELETE', 'x-method-override': 'PUT', accept: '*/*' }, own);
  for (const name of ['x-http-method-override', 'x-http-method', 'x-method-override']) assert.equal(headers[name], undefined, name);
  assert.equal(headers.accept, '*/*');
});

test('Cookie is dropped unless PHANTOM_FORWARD_COOKIES=true', () => {
  assert.equal(upstreamRequestHeaders({ cookie: 'session=1' }, own).cookie, undefined);
  assert.equal(upstreamRequestHeaders({ cookie: 'session=1' }, { ...own, forwardCookies: true }).cookie, 'session=1');
});

test('without a vouched-for Host no X-Forwarded-Host is sent', () => {
  assert.equal(upstreamRequestHeaders({ host: 'evil.example' }, { ...own, checkedHost: undefined })['x-forwarded-host'], undefined);
});

test('hop-by-hop headers, the ones the API names in Connection, server, x-powered-by and its interaction id stay with the sidecar', () => {
  assert.deepEqual(
    clientResponseHeaders({
      connection: 'keep-alive, X-Internal-Trace',
      'x-internal-trace': 'db=10.0.0.7',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      'x-fapi-interaction-id': 'other',
      server: 'Apache/2.4.1',
      'x-powered-by': 'Express',
      'content-type': 'text/plain',
      'x-api': '1',
    }),
    { 'content-type': 'text/plain', 'x-api': '1' },
  );
});

test('isSidecarOnly agrees with the filter', () => {
  assert.equal(isSidecarOnly('x-forwarded-prefix'), true);
  assert.equal(isSidecarOnly('accept'), false);
});

test('a declared Content-Length over the limit is 413 before anything is read', () => {
  assert.throws(() => checkDeclaredLength('101', 100), (error: unknown) => error instanceof RequestRejected && error.status === 413 && error.reason === 'body_too_large');
  checkDeclaredLength('100', 100);
  checkDeclaredLength(undefined, 100);
});

test('a streamed body that grows past the limit is cut with an error, never passed off as complete', async () => {
  const chunks: Buffer[] = [];
  const limited = limitedBody(Readable.from([Buffer.alloc(60), Buffer.alloc(60)]), 100);
  await assert.rejects(
    pipeline(limited, async function* (source) {
      for await (const chunk of source) chunks.push(chunk as Buffer);
    }),
    (error: unknown) => error instanceof RequestRejected && error.status === 413,
  );
  assert.equal(limited instanceof BodyLimit && limited.exceeded, true);
  assert.ok(Buffer.concat(chunks).length <= 60, 'nothing past the limit is passed on');
  const exact = limitedBody(Readable.from([Buffer.alloc(50), Buffer.alloc(50)]), 100);
  let total = 0;
  for await (const chunk of exact) total += (chunk as Buffer).length;
  assert.equal(total, 100);
});

test('upstream slots: free ones at once, then a wait, then 503 after the queue timeout', async () => {
  const slots = new UpstreamSlots(2);
  const first = slots.acquire(50);
  const second = slots.acquire(50);
  assert.equal(typeof first, 'function');
  assert.equal(typeof second, 'function');
  const waiting = slots.acquire(1000);
  assert.ok(waiting instanceof Promise);
  (first as () => void)();
  const third = await waiting;
  assert.equal(slots.used, 2);
  const refused = slots.acquire(30);
  await assert.rejects(refused as Promise<unknown>, (error: unknown) => error instanceof RequestRejected && error.status === 503 && error.reason === 'upstream_busy' && error.retryAfterSeconds === 1);
  (second as () => void)();
  third();
  third();
  assert.equal(slots.used, 0, 'a release counts once');
});
