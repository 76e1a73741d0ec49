// Per-call cost of the sidecar's own cache-hit work, with no network: where its share of a
// request's CPU goes. `node bench/micro.ts`.
import { openSync } from 'node:fs';
import { pino } from 'pino';
import { extractBearerToken, rejectTokenInQuery } from '../src/request/credential.ts';
import { IntrospectionCache } from '../src/introspection/cache.ts';
import { checkIssuerAndAudience, checkScopes, checkTokenTimes } from '../src/request/token-claims.ts';
import { checkBinding } from '../src/request/binding.ts';
import { JwtMinter } from '../src/introspection/upstream-token.ts';
import { upstreamRequestHeaders } from '../src/http/proxy.ts';
import { accessWriter, createLogger } from '../src/log.ts';
import { SidecarMetrics } from '../src/metrics.ts';
import { interactionIdOf } from '../src/http/interaction-id.ts';
import type { IncomingMessage } from 'node:http';

const x5t = 'BLGoa75IMxH8UOq8I-5r_71cSU6clDLY-ZyLrhrwAiY';
const token = 'Hj9FS4nvQ2xk1mPq8rT5uV7wX0yZ3aB6cD9eF2gH4jK';
const claims = { client_id: 'partner-a', scope: 'accounts transactions', exp: Math.floor(Date.now() / 1000) + 3600, iss: 'https://as', aud: 'https://api', cnf: { 'x5t#S256': x5t } };
const cache = new IntrospectionCache({ introspect: async () => ({ active: true, claims }), close: async () => {} }, { maxEntries: 100, maxTtlSeconds: 300, negativeTtlSeconds: 5, negativeMaxEntries: 100, staleIfErrorSeconds: 0 });
const minter = await JwtMinter.create({ mode: 'mint', issuer: 'https://s', audience: 'https://a', ttlSeconds: 60, alg: 'ES256', signingKey: undefined });
const connection = {};
const { entry } = await cache.lookup(token, connection);
await minter.jwtFor(entry, Math.floor(Date.now() / 1000));
const logger = createLogger('info', pino.destination({ dest: openSync('/dev/null', 'w'), sync: false, minLength: 4096 }));
const metrics = new SidecarMetrics({ activeEntries: () => 1, inactiveEntries: () => 0, introspectionsInFlight: () => 0, upstreamSlotsInUse: () => 0, serverNotAfterMs: () => Date.now() + 1e9, crlNextUpdateMs: () => undefined, now: Date.now });
const headers = { host: 'api.example.com', authorization: `Bearer ${token}`, accept: 'application/json', 'user-agent': 'curl/8', 'content-type': 'application/json' };
const raw = { headers: { 'x-fapi-interaction-id': '6f0e1d2c-3b4a-4596-8877-665544332211' } } as unknown as IncomingMessage;

async function measure(name: string, fn: () => unknown | Promise<unknown>, n = 200_000): Promise<void> {
  for (let i = 0; i < 20_000; i += 1) await fn();
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i += 1) await fn();
  const ns = Number(process.hrtime.bigint() - start) / n;
  process.stdout.write(`${name.padEnd(44)} ${(ns / 1000).toFixed(2).padStart(7)} µs\n`);
}

await measure('await of nothing (the harness)', () => undefined);
await measure('interaction id (echo a UUID)', () => interactionIdOf(raw));
await measure('token: query check + Bearer extraction', () => { rejectTokenInQuery('/api/accounts'); return extractBearerToken([`Bearer ${token}`]); });
await measure('cache lookup (hit, same connection)', () => cache.lookup(token, connection));
await measure('cache lookup (hit, new connection: hash)', () => cache.lookup(token, {}));
await measure('time, iss/aud, binding, scope checks', () => { checkTokenTimes(claims, Date.now() / 1000); checkIssuerAndAudience(claims, { expectedIssuer: 'https://as', expectedAudience: 'https://api' }); checkBinding(claims.cnf, { scheme: 'Bearer', x5t, dpopJkt: undefined, accepted: { mtls: true, dpop: false } }, true); checkScopes(claims, ['accounts']); });
await measure('minted JWT reuse', () => minter.jwtFor(entry, Math.floor(Date.now() / 1000)));
await measure('upstream request headers', () => upstreamRequestHeaders(headers, { jwt: 'j', interactionId: 'i', clientIp: '127.0.0.1', checkedHost: 'h', forwardCookies: false }));
const line = { interactionId: 'i', method: 'GET', path: '/api/accounts', status: 200, durationMs: 1.2, cache: 'hit' as const, clientId: 'partner-a', sub: undefined, x5t, reason: undefined, detail: undefined, rule: undefined, anonymous: false };
const writeAccess = accessWriter(logger);
await measure('access log line', () => writeAccess(line));
await measure('metrics record', () => metrics.record(line));
