// The per-route policy over real mTLS against the real oidc-provider: which rule a request
// meets decides its scopes, its sender constraint and whether it needs a token at all; a
// request no rule covers never reaches the API. A bad file stops the start; a bad edit is ignored.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/config.ts';
import { partnerToken } from '../support/as.ts';
import { call } from '../support/client.ts';
import { startSidecarProcess } from '../support/process.ts';
import { accessLineFor, baseEnv, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

const dir = mkdtempSync(join(tmpdir(), 'phantom-policy-'));
const policyFile = join(dir, 'policy.yaml');
const POLICY = `
rules:
  - name: status
    methods: [GET]
    path: /status
    anonymous: true
  # First match wins: the narrower rule before the prefix that also covers it.
  - name: transactions
    methods: [GET, POST]
    path: /accounts/{accountId}/transactions
    any_of: [transactions, payments]
  - name: accounts-read
    methods: [GET]
    path: /accounts/
    scopes: [accounts]
  - name: payments
    methods: [POST]
    path: /payments
    scopes: [payments]
`;

describe('a policy for an Open Banking style API', () => {
  let stack: Stack;
  let sidecar: RunningSidecar;
  let accountsOnly: string;
  let withTransactions: string;

  before(async () => {
    writeFileSync(policyFile, POLICY);
    stack = await startStack(() => ({ PHANTOM_POLICY_FILE: policyFile, PHANTOM_TLS_RELOAD_INTERVAL_S: '3600' }));
    sidecar = stack.sidecar;
    accountsOnly = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki, 'accounts');
    withTransactions = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki, 'accounts transactions');
  });
  after(() => stack?.stop());

  const send = (path: string, token: string | undefined, method = 'GET') =>
    call({ port: sidecar.port, path, method, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

  test('a matching rule with its scope: forwarded, the rule in the access line and the metric', async () => {
    const response = await send('/accounts/42', accountsOnly);
    assert.equal(response.status, 200);
    assert.equal((await accessLineFor(sidecar.logs, response)).rule, 'accounts-read');
    const metrics = await (await fetch(`http://127.0.0.1:${sidecar.adminPort}/metrics`)).text();
    assert.match(metrics, /phantom_requests_total\{status="200",reason="",rule="accounts-read"\} [1-9]/);
  });

  test('{param} rules with any_of: one of the alternatives suffices; without any, 403 insufficient_scope', async () => {
    assert.equal((await send('/accounts/42/transactions', withTransactions)).status, 200);
    const refused = await send('/accounts/42/transactions', accountsOnly);
    assert.equal(refused.status, 403);
    assert.equal(refused.json.error, 'insufficient_scope');
    assert.match(String(refused.headers['www-authenticate']), /scope="transactions payments"/);
  });

  test('an anonymous route: forwarded with no token and no JWT, and the access line says so', async () => {
    const before = stack.upstream.received.length;
    const response = await send('/status', undefined);
    assert.equal(response.status, 200);
    assert.equal(stack.upstream.received.length, before + 1);
    assert.equal(stack.upstream.received.at(-1)?.headers.authorization, undefined);
    const line = await accessLineFor(sidecar.logs, response);
    assert.deepEqual([line.rule, line.anonymous], ['status', true]);
    const withToken = await send('/status', 'some-client-token');
    assert.equal(withToken.status, 200);
    assert.equal(stack.upstream.received.at(-1)?.headers.authorization, undefined, 'a client\'s Authorization never reaches the API');
  });

  test('no rule covers it: 403, never forwarded, and the AS is not asked', async () => {
    const before = stack.upstream.received.length;
    const asked = stack.introspections();
    for (const [method, path] of [['GET', '/admin'], ['DELETE', '/accounts/42'], ['POST', '/status'], ['GET', '/accountsx']] as const) {
      const response = await send(path, accountsOnly, method);
      assert.equal(response.status, 403, `${method} ${path}`);
      assert.equal((await accessLineFor(sidecar.logs, response)).reason, 'no_matching_rule');
    }
    assert.equal(stack.upstream.received.length, before);
    assert.equal(stack.introspections(), asked);
  });

  test('the policy is re-read on change; a bad edit is logged and the last good policy stays', async () => {
    writeFileSync(policyFile, `${POLICY}\n  - name: admin\n    path: /admin\n    scopes: [accounts]\n`);
    sidecar.policy.check();
    assert.equal((await send('/admin', accountsOnly)).status, 200);
    writeFileSync(policyFile, 'rules:\n  - name: broken\n    path: no-slash\n');
    sidecar.policy.check();
    assert.ok(sidecar.logs.some((line) => line.includes('route policy rules do not check out') && line.includes('rule \\"broken\\"')));
    assert.equal((await send('/admin', accountsOnly)).status, 200, 'the last good policy is in force');
    assert.equal((await send('/accounts/1', accountsOnly)).status, 200);
  });
});

describe('a bad policy at start', () => {
  test('stops the start with exit 2, naming the file, the rule and what is wrong', async () => {
    const stack = await startStack();
    try {
      const broken = join(dir, 'broken.yaml');
      writeFileSync(broken, 'rules:\n  - name: accounts\n    path: /accounts/\n    scopes: accounts\n');
      const env = { ...baseEnv(stack.pki, stack.upstream.url, stack.as.introspectionUrl), PHANTOM_POLICY_FILE: broken };
      assert.throws(() => loadConfig(env), (error: unknown) => error instanceof ConfigError && error.message === `PHANTOM_POLICY_FILE: ${broken}: rule "accounts": scopes must be a list of scope names`);
      const child = await startSidecarProcess(env);
      assert.equal(await child.exit, 2);
      assert.equal(child.output().trim(), `phantom-sidecar: PHANTOM_POLICY_FILE: ${broken}: rule "accounts": scopes must be a list of scope names`);
    } finally {
      await stack.stop();
    }
  });
});
