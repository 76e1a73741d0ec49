import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { accessLineText, accessWriter, createLogger, type AccessLine } from '../../src/log.ts';

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
