import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { accessLineText, accessWriter, connectionFacts, createLogger, type AccessLine } from '../../src/log.ts';

const full: AccessLine = {
  interactionId: 'a1b2c3', method: 'POST', path: '/accounts/"quoted"\\back\u0001', status: 403, durationMs: 1.23456,
  clientId: 'partner-a', sub: 'alice', cache: 'hit', x5t: 'x5tValue', reason: 'scope_missing', detail: 'scope', rule: 'payments', anonymous: true,
};
const bare: AccessLine = {
  interactionId: 'z', method: 'GET', path: '/', status: 200, durationMs: 0.5,
  clientId: undefined, sub: undefined, cache: 'none', x5t: undefined, reason: undefined, detail: undefined, rule: undefined, anonymous: false,
};

// The line pino itself writes for the same fields, the way the access line was written before
// it became one prepared string: the two must agree byte for byte.
function pinoLine(line: AccessLine, time: number): string {
  let out = '';
  const logger = pino(
    { base: { service: 'phantom-sidecar' }, timestamp: () => `,"time":${time}`, formatters: { level: (label) => ({ level: label }) } },
    { write: (text: string) => { out += text; } },
  );
  logger.info({
    interaction_id: line.interactionId, method: line.method, path: line.path, status: line.status,
    duration_ms: Math.round(line.durationMs * 100) / 100, client_id: line.clientId, sub: line.sub, cache: line.cache,
    x5t: line.x5t, reason: line.reason, detail: line.detail, rule: line.rule, anonymous: line.anonymous ? true : undefined,
  }, 'request');
  return out;
}

test('the prepared access line is the line pino writes for the same fields, escapes and all', () => {
  for (const line of [full, bare]) assert.equal(accessLineText(line, 1_800_000_000_123), pinoLine(line, 1_800_000_000_123));
});

test('the access line goes to the logger stream at info, and not at all when info is off', () => {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _e, done) => { lines.push(chunk.toString()); done(); } });
  accessWriter(createLogger('info', sink))(bare);
  accessWriter(createLogger('warn', sink))(bare);
  assert.equal(lines.length, 1);
  const written = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
  assert.equal(written.msg, 'request');
  assert.equal(written.interaction_id, 'z');
});

test('what security operations asks for: address and port, certificate, TLS, user agent, the API\'s own answer, the trace; still valid JSON', () => {
  const line: AccessLine = {
    ...bare,
    connection: connectionFacts({ clientAddress: '10.0.3.17', clientPort: 51234, tlsVersion: 'TLSv1.3', certSubject: 'CN=partner-a,O=Partner "A"', certIssuer: 'CN=Partner CA', certSerial: '5a1f' }),
    userAgent: 'client/1.0', upstreamStatus: 502, upstreamMs: 12.3456, traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  };
  const parsed = JSON.parse(accessLineText(line, '"2026-12-02T18:52:11.204Z"')) as Record<string, unknown>;
  assert.equal(parsed.time, '2026-12-02T18:52:11.204Z');
  assert.deepEqual(
    [parsed.client_address, parsed.client_port, parsed.tls_version, parsed.cert_subject, parsed.cert_issuer, parsed.cert_serial, parsed.user_agent, parsed.upstream_status, parsed.upstream_ms, parsed.trace_id],
    ['10.0.3.17', 51234, 'TLSv1.3', 'CN=partner-a,O=Partner "A"', 'CN=Partner CA', '5a1f', 'client/1.0', 502, 12.35, '4bf92f3577b34da6a3ce929d0e0e4736'],
  );
});

test('PHANTOM_LOG_TIME=iso: the access line and every other line carry ISO 8601 UTC times', () => {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _e, done) => { lines.push(chunk.toString()); done(); } });
  const logger = createLogger('info', sink, 'iso');
  accessWriter(logger, 'iso')(bare);
  logger.info('another line');
  assert.equal(lines.length, 2);
  for (const text of lines) assert.match(String((JSON.parse(text) as { time: unknown }).time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});
