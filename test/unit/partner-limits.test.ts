import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestRejected } from '../../src/errors.ts';
import { PartnerLimits } from '../../src/pipeline/partner-limits.ts';

const limits = { maxConcurrentPerClient: 2, maxFailedTokensPerMinute: 3, maxConcurrentIntrospections: 64 };
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

test('failed-token budget: charged in advance, refunded for good tokens, reset after a minute', () => {
  let now = 1_000_000;
  const partners = new PartnerLimits(limits, () => now);
  const charges = [partners.chargeIntrospection('A'), partners.chargeIntrospection('A'), partners.chargeIntrospection('A')];
  assert.throws(() => partners.chargeIntrospection('A'), refused('failed_token_limit', 60));
  partners.chargeIntrospection('B');
  charges[0]?.();
  charges[0]?.();
  partners.chargeIntrospection('A');
  assert.throws(() => partners.chargeIntrospection('A'));
  now += 45_000;
  assert.throws(() => partners.chargeIntrospection('A'), refused('failed_token_limit', 15));
  now += 15_000;
  partners.chargeIntrospection('A');
  // A refund from the previous window does not touch the new one.
  charges[1]?.();
  partners.chargeIntrospection('A');
  partners.chargeIntrospection('A');
  assert.throws(() => partners.chargeIntrospection('A'));
});
