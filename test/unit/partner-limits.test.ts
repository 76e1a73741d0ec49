import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestRejected } from '../../src/errors.ts';
import { PartnerLimits } from '../../src/request/partner-limits.ts';

const limits = { maxConcurrentPerClient: 2, maxFailedTokensPerMinute: 3, maxConcurrentIntrospectionsPerClient: 2 };
const refused = (reason: string, retryAfter?: number) => (error: unknown) =>
  error instanceof RequestRejected && error.status === 429 && error.reason === reason && (retryAfter === undefined || error.retryAfterSeconds === retryAfter);

test('concurrency is counted per partner; a release counts once', () => {
  const partners = new PartnerLimits(limits);
  const a1 = partners.enter('A');
  const a2 = partners.enter('A');
  assert.throws(() => partners.enter('A'), refused('client_concurrency_limit', 1));
  const b = partners.enter('B');
  a1();
  a1();
  assert.equal(partners.inFlight('A'), 1);
  partners.enter('A');
  assert.throws(() => partners.enter('A'));
  a2();
  b();
  assert.equal(partners.inFlight('B'), 0);
});

test('failed-token budget: only failures count, per partner, reset after a minute', async () => {
  let now = 1_000_000;
  const partners = new PartnerLimits(limits, () => now, 50);
  // Good tokens, however many, spend nothing.
  for (let i = 0; i < 10; i += 1) (await partners.admitIntrospection('A')).release();
  for (let i = 0; i < 3; i += 1) (await partners.admitIntrospection('A')).failed();
  await assert.rejects(partners.admitIntrospection('A'), refused('failed_token_limit', 60));
  assert.throws(() => partners.checkFailureBudget('A'), refused('failed_token_limit', 60));
  (await partners.admitIntrospection('B')).release();
  now += 45_000;
  await assert.rejects(partners.admitIntrospection('A'), refused('failed_token_limit', 15));
  now += 15_000;
  const ticket = await partners.admitIntrospection('A');
  ticket.release();
  ticket.failed();
  assert.doesNotThrow(() => partners.checkFailureBudget('A'), 'a failure after the release is not counted twice');
  partners.recordFailure('A');
  partners.recordFailure('A');
  partners.recordFailure('A');
  assert.throws(() => partners.checkFailureBudget('A'), refused('failed_token_limit'));
});

test('introspection slots: at most the concurrency per partner, the rest queued, then 429 past the queue timeout', async () => {
  const partners = new PartnerLimits(limits, Date.now, 50);
  const first = await partners.admitIntrospection('A');
  const second = await partners.admitIntrospection('A');
  let thirdIn = false;
  const third = partners.admitIntrospection('A').then((ticket) => {
    thirdIn = true;
    return ticket;
  });
  (await partners.admitIntrospection('B')).release();
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(thirdIn, false, 'waits for a slot of its own partner');
  first.release();
  (await third).release();
  assert.equal(thirdIn, true);
  const fourth = await partners.admitIntrospection('A');
  await assert.rejects(partners.admitIntrospection('A'), refused('introspection_concurrency_limit', 1));
  second.release();
  fourth.release();
  (await partners.admitIntrospection('A')).release();
});
