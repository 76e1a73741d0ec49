import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildAdmin } from '../../src/admin.ts';
import { createLogger } from '../../src/log.ts';
import { SidecarMetrics } from '../../src/metrics.ts';
import { Writable } from 'node:stream';

const sources = (entries: number) => ({
  activeEntries: () => entries,
  inactiveEntries: () => 0,
  introspectionsInFlight: () => 0,
  upstreamSlotsInUse: () => 0,
  serverNotAfterMs: () => 2_000_000_000_000,
  crlNextUpdateMs: () => undefined,
  now: () => 1_999_999_000_000,
});

const quiet = createLogger('silent', new Writable({ write: (_c, _e, done) => done() }));

test('readyz follows readiness: 503 while starting or draining, 200 when ready', async () => {
  const readiness = { ready: false };
  const admin = buildAdmin({ logger: quiet, readiness, jwks: { keys: [] }, metrics: new SidecarMetrics(sources(0)) });
  assert.equal((await admin.inject('/readyz')).statusCode, 503);
  readiness.ready = true;
  assert.equal((await admin.inject('/readyz')).statusCode, 200);
  readiness.ready = false;
  assert.equal((await admin.inject('/readyz')).statusCode, 503);
  assert.equal((await admin.inject('/healthz')).statusCode, 200, 'alive all along');
  assert.equal((await admin.inject('/anything-else')).statusCode, 404);
});

test('metrics count requests by status and reason, and cache outcomes', async () => {
  const metrics = new SidecarMetrics(sources(7));
  const base = { interactionId: 'i', method: 'GET', path: '/a', clientId: undefined, sub: undefined, x5t: undefined, reason: undefined, detail: undefined, rule: undefined, anonymous: false };
  metrics.record({ ...base, status: 200, durationMs: 3, cache: 'hit' });
  metrics.record({ ...base, status: 200, durationMs: 4, cache: 'hit' });
  metrics.record({ ...base, status: 401, durationMs: 1, cache: 'miss', reason: 'binding_mismatch' });
  metrics.record({ ...base, status: 400, durationMs: 1, cache: 'none', reason: 'token_in_query' });
  const admin = buildAdmin({ logger: quiet, readiness: { ready: true }, jwks: { keys: [] }, metrics });
  const text = (await admin.inject('/metrics')).body;
  assert.match(text, /phantom_requests_total\{status="200",reason="",rule=""\} 2/);
  assert.match(text, /phantom_requests_total\{status="401",reason="binding_mismatch",rule=""\} 1/);
  assert.match(text, /phantom_introspection_cache_total\{outcome="hit"\} 2/);
  assert.match(text, /phantom_introspection_cache_total\{outcome="miss"\} 1/);
  assert.doesNotMatch(text, /outcome="none"/);
  assert.match(text, /phantom_introspection_cache_entries 7/);
  assert.match(text, /phantom_request_duration_seconds_count 4/);
  assert.match(text, /phantom_process_cpu_seconds_total/);
});
