// No rule of the route policy can be passed by another spelling of the same path: escapes of
// unreserved characters, another case, a trailing slash. The API is Fastify, the project's own
// example framework, once with its default routing and once with lenient routing
// (caseSensitive: false, ignoreTrailingSlash: true); each route says which handler ran.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { partnerToken } from '../support/as.ts';
import { call } from '../support/client.ts';
import { baseEnv, startSidecar, type RunningSidecar } from '../support/sidecar.ts';
import { startStack, type Stack } from '../support/stack.ts';

const POLICY = `
rules:
  - name: transactions
    methods: [GET]
    path: /accounts/{accountId}/transactions
    any_of: [transactions, payments]
  - name: accounts-read
    methods: [GET]
    path: /accounts/
    scopes: [accounts]
`;

async function fastifyApi(lenient: boolean): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify(lenient ? { routerOptions: { caseSensitive: false, ignoreTrailingSlash: true } } : {});
  app.get('/accounts', async () => ({ handler: 'accounts' }));
  app.get('/accounts/:id', async () => ({ handler: 'account' }));
  app.get('/accounts/:id/transactions', async () => ({ handler: 'transactions' }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

// Each one is /accounts/42/transactions to some router.
const SPELLINGS = [
  '/accounts/42/transactions',
  '/accounts/42/%74ransactions',
  '/accounts/42/%74%72%61%6e%73%61%63%74%69%6f%6e%73',
  '/accounts/42/transaction%73',
  '/accounts/4%32/transactions',
  '/accounts/42/Transactions',
  '/accounts/42/TRANSACTIONS',
  '/accounts/42/%54ransactions',
  '/accounts/42/transactions/',
  '/accounts/42/Transactions/',
  '/Accounts/42/transactions',
  '/%61ccounts/42/transactions',
];

describe('another spelling of a path never passes another rule', () => {
  let stack: Stack;
  const apis: { app: FastifyInstance; url: string }[] = [];
  const sidecars: Record<string, RunningSidecar> = {};
  let accountsOnly: string;
  let withTransactions: string;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'phantom-spelling-'));
    writeFileSync(join(dir, 'policy.yaml'), POLICY);
    stack = await startStack();
    const strict = await fastifyApi(false);
    const lenient = await fastifyApi(true);
    apis.push(strict, lenient);
    const env = (url: string) => ({ ...baseEnv(stack.pki, url, stack.as.introspectionUrl), PHANTOM_POLICY_FILE: join(dir, 'policy.yaml') });
    sidecars.strict = await startSidecar(env(strict.url));
    sidecars.lenient = await startSidecar(env(lenient.url));
    sidecars.lenientFolded = await startSidecar({ ...env(lenient.url), PHANTOM_POLICY_CASE_INSENSITIVE: 'true' });
    accountsOnly = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki, 'accounts');
    withTransactions = await partnerToken(stack.as, 'partner-a', stack.pki.partnerA, stack.pki, 'accounts transactions');
  });
  after(async () => {
    for (const sidecar of Object.values(sidecars)) await sidecar.stop();
    for (const api of apis) await api.app.close();
    await stack?.stop();
  });

  const get = (sidecar: RunningSidecar, path: string, token: string) =>
    call({ port: sidecar.port, path, cert: stack.pki.partnerA.cert, key: stack.pki.partnerA.key, ca: stack.pki.ca, headers: { authorization: `Bearer ${token}` } });

  for (const name of ['strict', 'lenient', 'lenientFolded'] as const) {
    test(`${name} routing: a token without the transactions scope never reaches the transactions handler, however the path is spelt`, async () => {
      for (const path of SPELLINGS) {
        const response = await get(sidecars[name]!, path, accountsOnly);
        assert.notEqual(response.json.handler, 'transactions', `${path} reached the transactions handler with status ${response.status}`);
        assert.ok([403, 404].includes(response.status), `${path}: ${response.status}`);
      }
    });
  }

  test('the scoped token reaches the handler by the canonical spelling and by escapes of unreserved characters; the API gets the decoded path', async () => {
    for (const path of ['/accounts/42/transactions', '/accounts/42/%74ransactions', '/accounts/4%32/transactions']) {
      const response = await get(sidecars.strict!, path, withTransactions);
      assert.equal(response.status, 200, path);
      assert.equal(response.json.handler, 'transactions', path);
    }
    // Another case meets another rule: refused on a case-sensitive policy, whoever asks.
    const other = await get(sidecars.lenient!, '/accounts/42/Transactions', withTransactions);
    assert.equal(other.status, 403);
    // With PHANTOM_POLICY_CASE_INSENSITIVE the lenient API's spellings are one path, judged by one rule.
    for (const path of ['/accounts/42/Transactions', '/accounts/42/TRANSACTIONS/', '/Accounts/42/transactions']) {
      const response = await get(sidecars.lenientFolded!, path, withTransactions);
      assert.equal(response.status, 200, path);
      assert.equal(response.json.handler, 'transactions', path);
    }
    const account = await get(sidecars.strict!, '/accounts/42', accountsOnly);
    assert.deepEqual([account.status, account.json.handler], [200, 'account']);
  });
});
