import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthorizationServerUnavailable } from '../../src/errors.ts';
import { IntrospectionCache, cacheLifetimeMs, tokenKey } from '../../src/introspection/cache.ts';
import type { Introspection, Introspector } from '../../src/introspection/answer.ts';

const settings = { maxEntries: 100, maxTtlSeconds: 300, negativeTtlSeconds: 5, negativeMaxEntries: 100, staleIfErrorSeconds: 0 };
const NOW = 1_800_000_000_000;

test('lifetime: min(exp - now, max TTL) for active answers, the negative TTL for inactive ones', () => {
  const active = (exp?: number): Introspection => ({ active: true, claims: exp === undefined ? {} : { exp } });
  assert.equal(cacheLifetimeMs(active(NOW / 1000 + 60), settings, NOW), 60_000);
  assert.equal(cacheLifetimeMs(active(NOW / 1000 + 3600), settings, NOW), 300_000);
  assert.equal(cacheLifetimeMs(active(), settings, NOW), 300_000);
  assert.equal(cacheLifetimeMs(active(NOW / 1000 - 1), settings, NOW), 0, 'an expired answer is not stored');
  assert.equal(cacheLifetimeMs({ active: false }, settings, NOW), 5000);
  assert.equal(cacheLifetimeMs({ active: false }, { ...settings, maxTtlSeconds: 2 }, NOW), 2000);
  assert.equal(cacheLifetimeMs(active(NOW / 1000 + 60), { ...settings, maxTtlSeconds: 0 }, NOW), 0);
  assert.equal(cacheLifetimeMs({ active: false }, { ...settings, maxTtlSeconds: 0 }, NOW), 0);
});

test('keys are SHA-256 of the token, never the token', () => {
  assert.equal(tokenKey('abc'), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
});

/** A controllable introspector: each call waits until the test settles it. */
function scripted(): Introspector & { calls: string[]; settle(answer: Introspection | Error): void } {
  const waiting: ((answer: Introspection | Error) => void)[] = [];
  const calls: string[] = [];
  return {
    calls,
    introspect(token) {
      calls.push(token);
      return new Promise((resolve, reject) => waiting.push((answer) => (answer instanceof Error ? reject(answer) : resolve(answer))));
    },
    settle(answer) {
      for (const next of waiting.splice(0)) next(answer);
    },
    close: async () => {},
  };
}

test('concurrent lookups of one token share one call: a miss and shared ones, then hits', async () => {
  const introspector = scripted();
  const cache = new IntrospectionCache(introspector, settings, () => NOW);
  const lookups = Array.from({ length: 5 }, () => cache.lookup('t'));
  introspector.settle({ active: true, claims: { exp: NOW / 1000 + 60 } });
  const outcomes = (await Promise.all(lookups)).map((l) => l.outcome).sort();
  assert.deepEqual(outcomes, ['miss', 'shared', 'shared', 'shared', 'shared']);
  assert.equal(introspector.calls.length, 1);
  assert.equal((await cache.lookup('t')).outcome, 'hit');
  assert.equal(introspector.calls.length, 1);
});

test('an answer is never served past its exp', async () => {
  let now = NOW;
  const introspector = scripted();
  const cache = new IntrospectionCache(introspector, settings, () => now);
  const first = cache.lookup('t');
  introspector.settle({ active: true, claims: { exp: NOW / 1000 + 10 } });
  await first;
  now = NOW + 9_000;
  assert.equal((await cache.lookup('t')).outcome, 'hit');
  now = NOW + 10_001;
  const again = cache.lookup('t');
  introspector.settle({ active: false });
  assert.equal((await again).outcome, 'miss');
  assert.equal(introspector.calls.length, 2);
});

test('inactive answers are remembered for the negative TTL only', async () => {
  let now = NOW;
  const introspector = scripted();
  const cache = new IntrospectionCache(introspector, settings, () => now);
  const first = cache.lookup('t');
  introspector.settle({ active: false });
  await first;
  now = NOW + 4_900;
  assert.equal((await cache.lookup('t')).outcome, 'hit');
  now = NOW + 5_100;
  const again = cache.lookup('t');
  introspector.settle({ active: false });
  assert.equal((await again).outcome, 'miss');
});

test('failures are never cached and reach every waiting request', async () => {
  const introspector = scripted();
  const cache = new IntrospectionCache(introspector, settings, () => NOW);
  const lookups = [cache.lookup('t'), cache.lookup('t')];
  introspector.settle(new AuthorizationServerUnavailable('as_timeout'));
  for (const lookup of lookups) await assert.rejects(lookup, AuthorizationServerUnavailable);
  const retry = cache.lookup('t');
  introspector.settle({ active: true, claims: {} });
  assert.equal((await retry).outcome, 'miss');
  assert.equal(introspector.calls.length, 2);
});

test('max TTL 0 turns the cache off but concurrent lookups still share a call', async () => {
  const introspector = scripted();
  const cache = new IntrospectionCache(introspector, { ...settings, maxTtlSeconds: 0 }, () => NOW);
  const pair = [cache.lookup('t'), cache.lookup('t')];
  introspector.settle({ active: true, claims: {} });
  assert.deepEqual((await Promise.all(pair)).map((l) => l.outcome), ['miss', 'shared']);
  const later = cache.lookup('t');
  introspector.settle({ active: true, claims: {} });
  assert.equal((await later).outcome, 'miss');
  assert.equal(introspector.calls.length, 2);
  assert.equal(cache.size, 0);
});

test('the cache is bounded by PHANTOM_CACHE_MAX_ENTRIES', async () => {
  const introspector: Introspector = { introspect: async () => ({ active: true, claims: {} }), close: async () => {} };
  const cache = new IntrospectionCache(introspector, { ...settings, maxEntries: 3 }, () => NOW);
  for (const token of ['a', 'b', 'c', 'd', 'e']) await cache.lookup(token);
  assert.equal(cache.size, 3);
  assert.equal((await cache.lookup('a')).outcome, 'miss', 'the least recently used entry went first');
});

test('a token repeated on one connection maps to the same entry; another token does not', async () => {
  const introspector: Introspector & { calls: number } = {
    calls: 0,
    async introspect(token) {
      this.calls += 1;
      return { active: true, claims: { sub: token } };
    },
    close: async () => {},
  };
  const cache = new IntrospectionCache(introspector, settings, () => NOW);
  const connection = {};
  const a1 = await cache.lookup('token-a', connection);
  const a2 = await cache.lookup('token-a', connection);
  const b = await cache.lookup('token-b', connection);
  const a3 = await cache.lookup('token-a', connection);
  assert.deepEqual([a1.outcome, a2.outcome, b.outcome, a3.outcome], ['miss', 'hit', 'miss', 'hit']);
  assert.equal(a3.entry, a1.entry);
  assert.notEqual(b.entry, a1.entry);
  assert.equal(b.entry.introspection.active && b.entry.introspection.claims.sub, 'token-b');
});

test('inactive answers live in their own small cache: any number of them never evicts an active answer', async () => {
  const introspector: Introspector = {
    introspect: async (token) => (token === 'good' ? { active: true, claims: { exp: NOW / 1000 + 60 } } : { active: false }),
    close: async () => {},
  };
  const cache = new IntrospectionCache(introspector, { ...settings, maxEntries: 2, negativeMaxEntries: 3 }, () => NOW);
  assert.equal((await cache.lookup('good')).outcome, 'miss');
  for (let i = 0; i < 50; i += 1) assert.equal((await cache.lookup(`random-${i}`)).entry.introspection.active, false);
  assert.equal(cache.inactiveSize, 3, 'the inactive cache is bounded');
  assert.equal(cache.size, 1);
  assert.equal((await cache.lookup('good')).outcome, 'hit');
  assert.equal((await cache.lookup('random-49')).outcome, 'hit', 'recent inactive answers are still remembered');
});

test('beforeCall runs only for a new call; its ticket is returned on a miss and released when the AS fails', async () => {
  const introspector = scripted();
  const cache = new IntrospectionCache(introspector, settings, () => NOW);
  let admitted = 0;
  let released = 0;
  const beforeCall = async () => {
    admitted += 1;
    return { release: () => { released += 1; }, failed: () => undefined };
  };
  const first = cache.lookup('t', undefined, beforeCall);
  const joined = cache.lookup('t', undefined, beforeCall);
  await new Promise((resolve) => setImmediate(resolve));
  introspector.settle({ active: false });
  const [miss, shared] = await Promise.all([first, joined]);
  assert.equal(admitted, 1);
  assert.equal(typeof miss.ticket?.release, 'function');
  assert.equal(shared.ticket, undefined);
  await cache.lookup('t', undefined, beforeCall);
  assert.equal(admitted, 1, 'a hit costs nothing');
  const failing = cache.lookup('u', undefined, beforeCall);
  await new Promise((resolve) => setImmediate(resolve));
  introspector.settle(new AuthorizationServerUnavailable('as_timeout'));
  await assert.rejects(failing);
  assert.deepEqual([admitted, released], [2, 1]);
  await assert.rejects(cache.lookup('v', undefined, async () => {
    throw new Error('refused');
  }), { message: 'refused' });
  assert.equal(introspector.calls.includes('v'), false, 'a refused call is not made');
});

test('stale-if-error: an active answer past its cache lifetime but not its exp is reused while the AS fails, and evicted by a revocation', async () => {
  let now = NOW;
  let failing = false;
  const introspector: Introspector = {
    introspect: async () => {
      if (failing) throw new AuthorizationServerUnavailable('as_timeout');
      return { active: true, claims: { exp: NOW / 1000 + 600, client_id: 'c' } };
    },
    close: async () => {},
  };
  const cache = new IntrospectionCache(introspector, { ...settings, maxTtlSeconds: 10, staleIfErrorSeconds: 30 }, () => now, undefined, true);
  assert.equal((await cache.lookup('t')).outcome, 'miss');
  now += 11_000;
  failing = true;
  assert.equal((await cache.lookup('t')).outcome, 'stale');
  now += 30_000;
  await assert.rejects(cache.lookup('t'), AuthorizationServerUnavailable, 'not past the stale window');
  now = NOW;
  failing = false;
  await cache.lookup('u');
  now += 11_000;
  failing = true;
  assert.equal((await cache.lookup('u')).outcome, 'stale', 'its cache lifetime is over (it left the active level)');
  cache.invalidate([`opaque:c`]);
  await assert.rejects(cache.lookup('u'), AuthorizationServerUnavailable, 'a revocation evicts stale answers too');
  const off = new IntrospectionCache(introspector, { ...settings, maxTtlSeconds: 10 }, () => now);
  failing = false;
  await off.lookup('v');
  now += 11_000;
  failing = true;
  await assert.rejects(off.lookup('v'), AuthorizationServerUnavailable, 'off by default');
});

test('a revocation that arrives while the token is being introspected: the active answer is neither kept nor used', async () => {
  const introspector = scripted();
  let now = NOW;
  const cache = new IntrospectionCache(introspector, settings, () => now, undefined, true);
  const key = tokenKey('racing');
  const pending = cache.lookup('racing');
  await new Promise((resolve) => setImmediate(resolve));
  cache.invalidate([`token:${key}`]);
  introspector.settle({ active: true, claims: { exp: NOW / 1000 + 60, sub: 'user-1' } });
  assert.equal((await pending).entry.introspection.active, false, 'the answer predates the revocation');
  assert.equal(cache.peek('racing'), undefined, 'and is not cached');
  // By subject too: an answer for a user revoked meanwhile.
  const bySubject = cache.lookup('racing-2');
  await new Promise((resolve) => setImmediate(resolve));
  cache.invalidate(['opaque:user-2']);
  introspector.settle({ active: true, claims: { exp: NOW / 1000 + 60, sub: 'user-2' } });
  assert.equal((await bySubject).entry.introspection.active, false);
  // An introspection that starts after the revocation is judged on its own.
  now += 1;
  const later = cache.lookup('racing-3');
  introspector.settle({ active: true, claims: { exp: NOW / 1000 + 60, sub: 'user-2' } });
  assert.equal((await later).entry.introspection.active, true);
  assert.equal(cache.peek('racing-3')?.introspection.active, true);
});
