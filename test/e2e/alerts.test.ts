// The PrometheusRule against what the sidecar really exposes: on a healthy plain sidecar (no
// Redis, no CRL) and a healthy fleet sidecar no alert fires; on a sidecar the AS refuses, the
// AS alert does (so this test can fail). Two scrapes a few requests apart give the counters' rates.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { partnerToken } from '../support/as.ts';
import { call } from '../support/client.ts';
import { firing, parseExposition, type Sample } from '../support/promql.ts';
import { REDIS_MISSING, redisAvailable, startRedis, type RunningRedis } from '../support/redis.ts';
import { baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

const available = redisAvailable();
if (!available && process.env.CI === 'true') throw new Error(REDIS_MISSING);

const rules = (parse(readFileSync(new URL('../../deploy/monitoring/prometheus-rule.yaml', import.meta.url), 'utf8')) as { spec: { groups: { rules: { alert: string; expr: string }[] }[] } }).spec.groups.flatMap((group) => group.rules);

let stack: Stack;
let redis: RunningRedis | undefined;
let token: string;

before(async () => {
  stack = await startStack();
  if (available) redis = await startRedis();
  token = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki);
});
after(async () => {
  await stack?.stop();
  await redis?.stop();
});

const scrape = async (sidecar: RunningSidecar): Promise<Sample[]> => parseExposition(await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/metrics`)).text());

/** The alerts that fire across two scrapes with `traffic` in between. */
async function firingAlerts(sidecar: RunningSidecar, traffic: () => Promise<void>): Promise<string[]> {
  const earlier = await scrape(sidecar);
  const started = Date.now();
  await traffic();
  const later = await scrape(sidecar);
  const seconds = Math.max(1, (Date.now() - started) / 1000);
  return rules.filter((rule) => firing(rule.expr, earlier, later, seconds).length > 0).map((rule) => rule.alert);
}

const healthyTraffic = (sidecar: RunningSidecar) => async (): Promise<void> => {
  for (let i = 0; i < 5; i += 1) {
    const response = await call({ port: sidecar.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
  }
};

test('a healthy plain sidecar: the Redis and CRL metrics are absent, and no alert fires', async () => {
  const sidecar = await startSidecar(baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl));
  try {
    const names = new Set((await scrape(sidecar)).map((sample) => sample.name));
    assert.equal(names.has('phantom_redis_connected'), false);
    assert.equal(names.has('phantom_tls_crl_next_update_seconds'), false);
    assert.equal(names.has('phantom_tls_server_certificate_expiry_seconds'), true);
    assert.deepEqual(await firingAlerts(sidecar, healthyTraffic(sidecar)), []);
  } finally {
    await sidecar.stop();
  }
});

test('a healthy fleet sidecar: no alert fires', { skip: available ? false : REDIS_MISSING }, async () => {
  const sidecar = await startSidecar({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_REDIS_URL: redis?.url ?? '', PHANTOM_REDIS_KEY: 'alerts-test-sealing-key-0123456789abcdef' });
  try {
    for (let waited = 0; waited < 5000 && !(await scrape(sidecar)).some((sample) => sample.name === 'phantom_redis_connected' && sample.value === 1); waited += 50) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(await firingAlerts(sidecar, healthyTraffic(sidecar)), []);
  } finally {
    await sidecar.stop();
  }
});

test('a sidecar the AS refuses: the authorization server alert fires (the evaluation can fail)', async () => {
  const sidecar = await startSidecar({ ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_INTROSPECTION_CLIENT_SECRET: 'not-the-secret-0123456789' });
  try {
    const alerts = await firingAlerts(sidecar, async () => {
      for (let i = 0; i < 3; i += 1) {
        const response = await call({ port: sidecar.port, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { authorization: `Bearer ${token}-${i}` } });
        assert.equal(response.status, 503);
      }
    });
    assert.deepEqual(alerts, ['PhantomAuthorizationServerUnavailable']);
  } finally {
    await sidecar.stop();
  }
});
