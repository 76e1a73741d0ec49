// OpenTelemetry tracing end to end: the sidecar as its own process with the standard OTEL_*
// variables, the real oidc-provider, and an OTLP/HTTP receiver here that decodes what the
// SDK's exporter sends. The partner's trace is continued, the spans are linked parent to
// child, the API gets the trace, and no attribute holds a token, a JWT or a secret.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { RunningAuthorizationServer } from '../../deploy/authorization-server/server.ts';
import { partnerToken, SIDECAR_CLIENT, startTestAuthorizationServer } from '../support/as.ts';
import { call } from '../support/client.ts';
import { makePki, type Pki } from '../support/pki.ts';
import { startSidecarProcess, type SidecarProcess } from '../support/process.ts';
import { baseEnv } from '../support/sidecar.ts';
import { startEchoUpstream, type EchoUpstream } from '../support/upstream.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: { key: string; value: Record<string, unknown> }[];
}

const pki: Pki = makePki();
let as: RunningAuthorizationServer;
let upstream: EchoUpstream;
let receiver: Server;
let receiverPort = 0;
const bodies: string[] = [];
const contentTypes: string[] = [];
const collectorKeys: string[] = [];

function spansSoFar(): OtlpSpan[] {
  return bodies.flatMap((body) => {
    const parsed = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
    return parsed.resourceSpans.flatMap((resource) => resource.scopeSpans.flatMap((scope) => scope.spans));
  });
}

async function spansOf(traceId: string, count: number): Promise<OtlpSpan[]> {
  for (let attempt = 0; attempt < 100; attempt += 1) {
    const found = spansSoFar().filter((span) => span.traceId === traceId);
    if (found.length >= count) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return spansSoFar().filter((span) => span.traceId === traceId);
}

const attribute = (span: OtlpSpan | undefined, key: string): unknown => {
  const value = span?.attributes?.find((entry) => entry.key === key)?.value;
  return value === undefined ? undefined : Object.values(value)[0];
};

before(async () => {
  as = await startTestAuthorizationServer(pki);
  upstream = await startEchoUpstream();
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        contentTypes.push(req.headers['content-type'] ?? '');
        collectorKeys.push(String(req.headers['x-collector-key']));
        bodies.push(Buffer.concat(chunks).toString('utf8'));
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverPort = (receiver.address() as { port: number }).port;
});
after(async () => {
  await upstream.stop();
  await as.stop();
  receiver.close();
});

describe('tracing with OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  let sidecar: SidecarProcess;
  before(async () => {
    sidecar = await startSidecarProcess({
      ...baseEnv(pki, upstream.url, as.introspectionUrl),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiverPort}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-key=collector-secret-123',
      OTEL_SERVICE_NAME: 'payments-sidecar',
    });
  });
  after(async () => {
    sidecar.child.kill('SIGTERM');
    await sidecar.exit;
  });

  test('the partner\'s trace is continued: request, cache lookup, introspection, JWT and upstream spans, linked, the trace id at the API', async () => {
    const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
    const traceId = randomBytes(16).toString('hex');
    const partnerSpan = randomBytes(8).toString('hex');
    const before = upstream.received.length;
    const response = await call({ port: sidecar.port, path: '/api/accounts?x=1', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}`, traceparent: `00-${traceId}-${partnerSpan}-01`, tracestate: 'bank=1', 'user-agent': 'partner-a-client/2.1' } });
    assert.equal(response.status, 200);
    const spans = await spansOf(traceId, 5);
    const byName = (name: string) => spans.find((span) => span.name === name);
    const request = byName('phantom-sidecar request');
    assert.ok(request, `spans: ${spans.map((span) => span.name).join(', ')}`);
    assert.equal(request.parentSpanId, partnerSpan, 'the partner\'s span is the parent');
    assert.equal(request.kind, 2, 'SERVER');
    assert.equal(attribute(request, 'http.request.method'), 'GET');
    assert.equal(attribute(request, 'url.path'), '/api/accounts');
    assert.equal(Number(attribute(request, 'http.response.status_code')), 200);
    assert.equal(attribute(request, 'phantom.partner.x5t_s256'), pki.partnerA.thumbprint);
    assert.equal(attribute(request, 'phantom.cache_outcome'), 'miss');
    assert.equal(attribute(request, 'user_agent.original'), 'partner-a-client/2.1');
    const lookup = byName('cache lookup');
    assert.equal(lookup?.parentSpanId, request.spanId);
    assert.equal(attribute(lookup, 'phantom.cache.outcome'), 'miss');
    const introspection = byName('introspection');
    assert.equal(introspection?.parentSpanId, lookup?.spanId, 'the AS call is inside the cache lookup');
    assert.equal(introspection?.kind, 3, 'CLIENT');
    assert.equal(attribute(introspection, 'phantom.introspection.active'), true);
    assert.equal(byName('jwt')?.parentSpanId, request.spanId);
    const upstreamSpan = byName('upstream');
    assert.equal(upstreamSpan?.parentSpanId, request.spanId);
    assert.equal(Number(attribute(upstreamSpan, 'http.response.status_code')), 200);
    // The API continues the same trace, as a child of the sidecar's upstream span.
    const received = upstream.received.slice(before).at(-1);
    assert.equal(received?.headers.traceparent, `00-${traceId}-${upstreamSpan?.spanId}-01`);
    assert.equal(received?.headers.tracestate, 'bank=1');
    // Nothing secret anywhere in what was exported.
    const jwt = String(received?.headers.authorization ?? '').replace(/^Bearer /, '');
    assert.ok(jwt.length > 20);
    const exported = bodies.join('\n');
    for (const secret of [token, jwt, SIDECAR_CLIENT.clientSecret, 'collector-secret-123']) assert.ok(!exported.includes(secret), 'a secret was exported');
    assert.match(exported, /"payments-sidecar"/, 'OTEL_SERVICE_NAME names the service');
    assert.ok(contentTypes.every((type) => type.startsWith('application/json')));
    assert.ok(collectorKeys.every((key) => key === 'collector-secret-123'), 'OTEL_EXPORTER_OTLP_HEADERS reach the collector');
  });

  test('without a traceparent a trace is started; a cache hit still shows its lookup; the access line carries the trace id', async () => {
    const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
    const first = await call({ port: sidecar.port, path: '/api/accounts', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });
    assert.equal(first.status, 200);
    const before = upstream.received.length;
    const second = await call({ port: sidecar.port, path: '/api/accounts', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}` } });
    assert.equal(second.status, 200);
    const traceparent = String(upstream.received.slice(before).at(-1)?.headers.traceparent ?? '');
    const [, traceId] = /^00-([0-9a-f]{32})-[0-9a-f]{16}-0[01]$/.exec(traceparent) ?? [];
    assert.ok(traceId, traceparent);
    const spans = await spansOf(traceId, 3);
    const request = spans.find((span) => span.name === 'phantom-sidecar request');
    assert.equal(request?.parentSpanId ?? '', '', 'a root span');
    const lookup = spans.find((span) => span.name === 'cache lookup');
    assert.equal(attribute(lookup, 'phantom.cache.outcome'), 'hit');
    assert.equal(lookup?.parentSpanId, request?.spanId);
    assert.equal(spans.find((span) => span.name === 'introspection'), undefined, 'a hit asks no one');
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const line = sidecar.output().split('\n').filter((text) => text.includes(`"trace_id":"${traceId}"`));
    assert.equal(line.length, 1, 'one access line carries the trace id');
    const access = JSON.parse(line[0] ?? '{}') as Record<string, unknown>;
    assert.equal(access.client_address, '127.0.0.1');
    assert.equal(typeof access.client_port, 'number');
    assert.match(String(access.tls_version), /^TLSv1\.[23]$/);
    assert.match(String(access.cert_subject), /CN=partner-a/);
    assert.equal(typeof access.cert_issuer, 'string');
    assert.match(String(access.cert_serial), /^[0-9A-F]+$/);
    assert.equal(access.upstream_status, 200);
    assert.equal(typeof access.upstream_ms, 'number');
  });

  test('a refusal is a span with the reason and no upstream span', async () => {
    const traceId = randomBytes(16).toString('hex');
    const response = await call({ port: sidecar.port, path: '/api/accounts', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${randomBytes(24).toString('base64url')}`, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } });
    assert.equal(response.status, 401);
    const spans = await spansOf(traceId, 2);
    const request = spans.find((span) => span.name === 'phantom-sidecar request');
    assert.equal(attribute(request, 'phantom.refusal_reason'), 'token_inactive');
    assert.equal(spans.find((span) => span.name === 'upstream'), undefined);
  });
});

describe('tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT)', () => {
  test('the partner\'s traceparent reaches the API unchanged and nothing is exported', async () => {
    const sent = bodies.length;
    const sidecar = await startSidecarProcess({ ...baseEnv(pki, upstream.url, as.introspectionUrl) });
    try {
      const token = await partnerToken(as, 'partner-a', pki.partnerA, pki);
      const traceparent = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
      const before = upstream.received.length;
      const response = await call({ port: sidecar.port, path: '/api/accounts', cert: pki.partnerA.cert, key: pki.partnerA.key, ca: pki.ca, headers: { authorization: `Bearer ${token}`, traceparent } });
      assert.equal(response.status, 200);
      assert.equal(upstream.received.slice(before).at(-1)?.headers.traceparent, traceparent);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.equal(bodies.length, sent);
    } finally {
      sidecar.child.kill('SIGTERM');
      await sidecar.exit;
    }
  });
});
