// Random requests over real mTLS (fast-check): whatever arrives, the sidecar never answers
// 500, and nothing reaches the API unless it is a well-formed request with the one active,
// bound token the scripted AS knows.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isRefusalReason } from '../../src/reasons.ts';
import { json, startFakeAuthorizationServer, type FakeAuthorizationServer } from '../support/fake-as.ts';
import { makePki } from '../support/pki.ts';
import { openTls, readResponse } from '../support/raw.ts';
import { baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstream.ts';

const pki = makePki();
const GOOD = 'the-one-good-token';
let fake: FakeAuthorizationServer;
let upstream: EchoUpstream;
let sidecar: RunningSidecar;

before(async () => {
  fake = await startFakeAuthorizationServer(pki);
  fake.handle = (request, res) => {
    const token = new URLSearchParams(request.body).get('token');
    if (token !== GOOD) return json(res, { active: false });
    json(res, { active: true, client_id: 'partner-a', token_type: 'Bearer', aud: 'https://api.example.com', exp: Math.floor(Date.now() / 1000) + 300, cnf: { 'x5t#S256': pki.partnerA.thumbprint } });
  };
  upstream = await startEchoUpstream();
  sidecar = await startSidecar({ ...baseEnv(pki, `${upstream.url}/base/`, fake.url), PHANTOM_MAX_FAILED_TOKENS_PER_MIN: '100000' });
});
after(async () => {
  await sidecar?.stop();
  await upstream?.stop();
  await fake?.stop();
});

/** What may reach the API: a path any URL parser leaves as it is, with nothing to traverse. */
function isSafePath(path: string): boolean {
  if (!path.startsWith('/') || path.includes('\\') || path.includes('//')) return false;
  if (new URL(path, 'http://api.internal').pathname !== path) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return false;
  }
  return !decoded.includes('\\') && !decoded.split('/').some((segment) => ['.', '..'].includes(segment.split(';', 1)[0] ?? ''));
}

const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'PROPFIND', 'get', 'G\u00c9T');
const pathChar = fc.constantFrom('/', '.', '%', '2', 'e', 'f', '5', 'c', '0', '\\', ';', 'a', 'b', '~', '@', '?', '=', '&', '#', '"', '*');
const path = fc.oneof(
  fc.array(pathChar, { maxLength: 24 }).map((chars) => `/${chars.join('')}`),
  fc.constantFrom('*', 'http://localhost/x', '//x', '/ok', '/a/b?c=d'),
);
const authorization = fc.oneof(
  fc.constant(`Bearer ${GOOD}`),
  fc.constant(`bearer ${GOOD}`),
  fc.constant(`Bearer ${GOOD}x`),
  fc.string({ maxLength: 30 }).map((token) => `Bearer ${token}`),
  fc.constant(`DPoP ${GOOD}`),
  fc.constant(''),
);
const extraHeader = fc.tuple(
  fc.constantFrom('x-forwarded-for', 'x_user', 'forwarded', 'client-cert', 'content-length', 'transfer-encoding', 'host', 'authorization', 'x-fapi-interaction-id', 'expect', 'x-custom'),
  fc.stringMatching(/^[ -~]{0,20}$/),
);

interface Sent {
  verb: string;
  target: string;
  auth: string;
  extra: [string, string][];
}

/** The oracle: what the API received must have been a well-formed request with the good token. */
function checkReceived(sent: Sent, seen: { url: string; headers: Record<string, unknown> }): void {
  const where = `${sent.verb} ${sent.target} | ${sent.auth} | ${JSON.stringify(sent.extra)}`;
  assert.match(sent.auth, new RegExp(`^bearer ${GOOD}$`, 'i'), where);
  assert.ok(!sent.extra.some(([name]) => name === 'authorization'), `a second Authorization header was let through: ${where}`);
  assert.ok(['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'].includes(sent.verb), where);
  const path = sent.target.split('?', 1)[0] ?? '';
  assert.ok(isSafePath(path), where);
  assert.equal(seen.url.split('?', 1)[0], `/base${path}`, where);
  assert.match(String(seen.headers.authorization), /^Bearer ey/, where);
}

test('random requests: never a 500, and only a well-formed request with the good token reaches the API', async () => {
  const sent = new Map<string, Sent>();
  let counter = 0;
  await fc.assert(
    fc.asyncProperty(method, path, authorization, fc.array(extraHeader, { maxLength: 3 }), async (verb, target, auth, extra) => {
      // Each request is marked, so whatever the API receives, even late, is matched to what was sent.
      const id = `fuzz-${(counter += 1)}`;
      sent.set(id, { verb, target, auth, extra });
      const lines = [`${verb} ${target} HTTP/1.1`, 'Host: localhost', `x-fuzz-id: ${id}`];
      if (auth !== '') lines.push(`Authorization: ${auth}`);
      for (const [name, value] of extra) lines.push(`${name}: ${value}`);
      const socket = await openTls(sidecar.port, pki.partnerA, pki);
      let status = 0;
      try {
        const response = readResponse(socket, 3000);
        socket.write(`${lines.join('\r\n')}\r\n\r\n`);
        status = (await response.catch(() => ({ status: 0 }))).status;
      } finally {
        socket.destroy();
      }
      assert.notEqual(status, 500, lines.join(' | '));
    }),
    { numRuns: 150 },
  );
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (const seen of upstream.received) {
    const request = sent.get(String(seen.headers['x-fuzz-id']));
    assert.ok(request !== undefined, 'the API received a request nobody sent');
    checkReceived(request, seen);
  }
  assert.ok(!sidecar.logs.some((line) => line.includes('unexpected error')), 'an unexpected error was logged');
  // Whatever came in, the metric labels stay within the closed set of reasons.
  const metrics = await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/metrics`)).text();
  const reasons = [...metrics.matchAll(/phantom_requests_total\{status="\d+",reason="([^"]*)",rule="[^"]*"\}/g)].map((match) => match[1] ?? '');
  assert.ok(reasons.length > 3);
  for (const reason of reasons) assert.ok(reason === '' || isRefusalReason(reason), reason);
});
