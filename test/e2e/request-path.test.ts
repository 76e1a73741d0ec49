// The HTTP and TLS rules of the request path, against the real authorization server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import type { RunningAuthorizationServer } from '../../deploy/authorization-server/server.ts';
import { partnerToken } from '../support/as.ts';
import { call, type CallOptions } from '../support/client.ts';
import type { Identity, Pki } from '../support/pki.ts';
import { accessLineFor, accessLines, baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';
import type { EchoUpstream } from '../support/upstream.ts';

describe('the request path over real TLS', () => {
  let stack: Stack;
  let pki: Pki;
  let as: RunningAuthorizationServer;
  let upstream: EchoUpstream;
  let sidecar: RunningSidecar;
  let token: string;
  const introspections = (): number => stack.introspections();

  before(async () => {
    stack = await startStack(() => ({ PHANTOM_UPSTREAM_TIMEOUT_MS: '500' }));
    ({ pki, as, upstream, sidecar } = stack);
    token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
  });

  after(() => stack?.stop());

  const asA = (options: Partial<CallOptions> = {}) =>
    call({ port: sidecar.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` }, ...options });

  describe('TLS', () => {
    const handshake = (identity: Identity | undefined, extra: Record<string, unknown> = {}): Promise<TLSSocket> =>
      new Promise((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: sidecar.port, ca: pki.ca, servername: 'localhost', cert: identity?.cert, key: identity?.key, ...extra });
        socket.once('secureConnect', () => {
          // TLS 1.3 reports a refused client certificate after the handshake: wait for it.
          socket.once('data', () => undefined);
          setTimeout(() => (socket.destroyed ? reject(new Error('closed by server')) : resolve(socket)), 100);
        });
        socket.once('error', reject);
      });

    test('a trusted partner certificate completes the handshake', async () => {
      const socket = await handshake(pki.partnerA);
      assert.equal(socket.authorized, true);
      socket.destroy();
    });

    for (const [name, identity] of [
      ['no client certificate', undefined],
      ['a certificate from an unknown CA', 'rogue'],
      ['an expired certificate', 'partnerAExpired'],
    ] as const) {
      test(`${name}: the handshake fails and nothing reaches HTTP`, async () => {
        const before = accessLines(sidecar.logs).length;
        const chosen = identity === undefined ? undefined : pki[identity];
        await assert.rejects(handshake(chosen));
        await assert.rejects(asA({ cert: chosen?.cert, key: chosen?.key }));
        assert.equal(accessLines(sidecar.logs).length, before);
      });
    }

    test('TLS 1.1 and TLS 1.2 without ECDHE AES-GCM are refused', async () => {
      await assert.rejects(handshake(pki.partnerA, { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }));
      await assert.rejects(handshake(pki.partnerA, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305' }));
      const ok = await handshake(pki.partnerA, { maxVersion: 'TLSv1.2' });
      assert.match(ok.getCipher().name, /^ECDHE-ECDSA-AES(128|256)-GCM-SHA(256|384)$/);
      ok.destroy();
    });

    test('TLS 1.2 renegotiation is refused: the certificate cannot change under a connection', async () => {
      const socket = await handshake(pki.partnerA, { maxVersion: 'TLSv1.2' });
      const outcome = await new Promise<string>((resolve) => {
        socket.once('error', (error) => resolve(`error: ${error.message}`));
        socket.once('close', () => resolve('closed'));
        const started = socket.renegotiate({ rejectUnauthorized: true }, (error) => resolve(error ? `error: ${error.message}` : 'renegotiated'));
        if (!started) resolve('not started');
      });
      socket.destroy();
      assert.notEqual(outcome, 'renegotiated');
    });

    test('a resumed TLS session keeps its certificate binding', async () => {
      const agent = new Agent({ keepAlive: false, maxCachedSessions: 10 });
      const reused: boolean[] = [];
      let lastId: unknown;
      for (let i = 0; i < 3; i += 1) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = request(
            { host: '127.0.0.1', port: sidecar.port, path: '/r', servername: 'localhost', ca: pki.ca, cert: pki.partnerA.cert, key: pki.partnerA.key, agent, headers: { authorization: `Bearer ${token}` } },
            (res) => {
              reused.push((res.socket as TLSSocket).isSessionReused());
              lastId = res.headers['x-fapi-interaction-id'];
              res.resume();
              res.on('end', () => resolve(res.statusCode ?? 0));
            },
          );
          req.on('error', reject);
          req.end();
        });
        assert.equal(status, 200);
      }
      agent.destroy();
      assert.ok(reused.slice(1).some(Boolean), `no session was resumed: ${reused.join(',')}`);
      assert.equal((await accessLineFor(sidecar.logs, { headers: { 'x-fapi-interaction-id': lastId } })).x5t, pki.partnerA.thumbprint);
    });
  });

  describe('token extraction', () => {
    test('no Authorization header: 401 with a bare Bearer challenge', async () => {
      const response = await asA({ headers: {} });
      assert.equal(response.status, 401);
      assert.equal(response.headers['www-authenticate'], 'Bearer realm="phantom-sidecar"');
      assert.equal(response.json.error, 'unauthorized');
    });

    test('Basic credentials: 401 with a bare Bearer challenge', async () => {
      const response = await asA({ headers: { authorization: 'Basic cGFydG5lcjpzZWNyZXQ=' } });
      assert.equal(response.status, 401);
      assert.equal(response.headers['www-authenticate'], 'Bearer realm="phantom-sidecar"');
    });

    test('two Authorization headers: 400 invalid_request', async () => {
      const response = await asA({ headers: { authorization: [`Bearer ${token}`, `Bearer ${token}`] } });
      assert.equal(response.status, 400);
      assert.equal(response.json.error, 'invalid_request');
    });

    test('a token in the query: 400, the AS is not asked and the URL\'s token never reaches a log', async () => {
      const calls = introspections();
      const secret = 'query-token-value-xyz';
      const response = await asA({ path: `/api/accounts?access_token=${secret}` });
      assert.equal(response.status, 400);
      assert.equal(response.json.error, 'invalid_request');
      assert.match(String(response.headers['www-authenticate']), /error="invalid_request"/);
      assert.equal(introspections(), calls);
      assert.ok(!sidecar.logs.join('\n').includes(secret));
      assert.equal((await accessLineFor(sidecar.logs, response)).path, '/api/accounts');
    });

    test('a token in a form body: 400 invalid_request, nothing forwarded', async () => {
      const before = upstream.received.length;
      const response = await asA({
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: `amount=10&access_token=${token}`,
      });
      assert.equal(response.status, 400);
      assert.equal(response.json.error, 'invalid_request');
      assert.equal(upstream.received.length, before);
    });

    test('an ordinary form body is forwarded as it came', async () => {
      const response = await asA({ method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'amount=10&note=a+b' });
      assert.equal(response.status, 200);
      assert.equal(upstream.received.at(-1)!.body, 'amount=10&note=a+b');
    });

    test('a token over 4096 bytes: 400 and the authorization server is not called', async () => {
      const calls = introspections();
      const response = await asA({ headers: { authorization: `Bearer ${'a'.repeat(4097)}` } });
      assert.equal(response.status, 400);
      assert.equal(response.json.error, 'invalid_request');
      assert.equal(introspections(), calls);
    });
  });

  describe('interaction id and headers', () => {
    test('x-fapi-interaction-id is echoed when it is a UUID, replaced when not, on errors too', async () => {
      const id = '6f0e1d2c-3b4a-4596-8877-665544332211';
      const echoed = await asA({ headers: { authorization: `Bearer ${token}`, 'x-fapi-interaction-id': id } });
      assert.equal(echoed.headers['x-fapi-interaction-id'], id);
      assert.equal(upstream.received.at(-1)!.headers['x-fapi-interaction-id'], id);
      assert.equal((await accessLineFor(sidecar.logs, echoed)).interaction_id, id);
      const replaced = await asA({ headers: { authorization: `Bearer ${token}`, 'x-fapi-interaction-id': 'not a uuid <script>' } });
      assert.match(String(replaced.headers['x-fapi-interaction-id']), /^[0-9a-f-]{36}$/);
      const refused = await asA({ headers: {} });
      assert.match(String(refused.headers['x-fapi-interaction-id']), /^[0-9a-f-]{36}$/);
      assert.ok(refused.headers.date, 'a Date header is sent');
    });

    test('hop-by-hop and identity headers are dropped both ways; Connection: close is honoured', async () => {
      const response = await asA({
        headers: { authorization: `Bearer ${token}`, connection: 'close, x-drop-me', 'x-drop-me': '1', 'client-cert': ':Zm9v:', 'x-client-cert-san': 'admin' },
      });
      assert.equal(response.status, 200);
      const seen = upstream.received.at(-1)!.headers;
      assert.equal(seen['x-drop-me'], undefined);
      assert.equal(seen['client-cert'], undefined);
      assert.equal(seen['x-client-cert-san'], undefined);
      assert.equal(response.headers.connection, 'close');
      assert.equal(response.headers['x-upstream'], 'echo');
    });

    test('Expect: 100-continue bodies go through (curl sends it for large uploads)', async () => {
      const response = await asA({ method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', expect: '100-continue' }, body: '{"a":1}' });
      assert.equal(response.status, 200);
      assert.equal(upstream.received.at(-1)!.body, '{"a":1}');
      assert.equal(upstream.received.at(-1)!.headers.expect, undefined);
    });

    test('the API learns the partner\'s address from the sidecar, never from the client, and no Host nobody vouched for', async () => {
      const response = await asA({ headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': '10.6.6.6', forwarded: 'for=10.6.6.6', 'x-forwarded-host': 'evil.example', host: 'api.example.com' } });
      assert.equal(response.status, 200);
      const seen = upstream.received.at(-1)!.headers;
      assert.equal(seen['x-forwarded-for'], '127.0.0.1');
      assert.equal(seen['x-forwarded-proto'], 'https');
      assert.equal(seen['x-forwarded-host'], undefined, 'without PHANTOM_PUBLIC_HOSTS the Host is not vouched for');
      assert.equal(seen.forwarded, undefined);
    });

    test('a malformed URL gets the sidecar\'s JSON error, which never quotes the URL', async () => {
      const response = await asA({ path: `/%E0%A4%A?access_token=${token}` });
      assert.equal(response.status, 400);
      assert.ok(!response.text.includes(token) && !response.text.includes('%E0'), response.text);
      assert.deepEqual(response.json, { error: 'invalid_request', error_description: 'The request URL is malformed' });
      assert.match(String(response.headers['x-fapi-interaction-id']), /^[0-9a-f-]{36}$/);
      assert.ok(!sidecar.logs.join('\n').includes(token));
    });

    test('path traversal is refused before it reaches the API', async () => {
      const before = upstream.received.length;
      const response = await asA({ path: '/api/../admin' });
      assert.equal(response.status, 400);
      assert.equal(upstream.received.length, before);
    });

    test('a large body streams through untouched', async () => {
      const body = JSON.stringify({ data: 'x'.repeat(3 * 1024 * 1024) });
      const response = await asA({ method: 'PUT', path: '/api/bulk', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
      assert.equal(response.status, 200);
      assert.equal(upstream.received.at(-1)!.body.length, body.length);
    });
  });

  describe('upstream failures', () => {
    test('the API too slow: 504', async () => {
      upstream.delayMs = 1500;
      try {
        const response = await asA();
        assert.equal(response.status, 504);
        assert.equal((await accessLineFor(sidecar.logs, response)).reason, 'upstream_timeout');
      } finally {
        upstream.delayMs = 0;
      }
    });

    test('an upstream URL with a path prefixes it; the query follows', async () => {
      const prefixed = await startSidecar(baseEnv(pki, `${upstream.url}/v1/`, as.introspectionUrl));
      try {
        const response = await call({ port: prefixed.port, path: '/accounts?page=2', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });
        assert.equal(response.status, 200);
        assert.equal(upstream.received.at(-1)!.url, '/v1/accounts?page=2');
      } finally {
        await prefixed.stop();
      }
    });

    test('the API refusing connections: 502', async () => {
      const closed = await startSidecar(baseEnv(pki, 'http://127.0.0.1:1', as.introspectionUrl));
      try {
        const response = await call({ port: closed.port, cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });
        assert.equal(response.status, 502);
        assert.match(String((await accessLineFor(closed.logs, response)).reason), /^upstream_unavailable/);
      } finally {
        await closed.stop();
      }
    });
  });
});
