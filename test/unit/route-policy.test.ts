import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestRejected } from '../../src/errors.ts';
import { parsePolicy, pathMatches } from '../../src/request/route-policy.ts';

const defaults = { senderConstraints: { mtls: true, dpop: true }, requiredScopes: [] };

test('paths: exact, a prefix ending in /, {param} segments', () => {
  assert.equal(pathMatches('/status', '/status'), true);
  assert.equal(pathMatches('/status', '/status/'), true, 'a trailing slash is the same path');
  assert.equal(pathMatches('/status', '/statusx'), false);
  assert.equal(pathMatches('/accounts/', '/accounts/42/transactions'), true);
  assert.equal(pathMatches('/accounts/', '/accounts/'), true);
  assert.equal(pathMatches('/accounts/', '/accounts'), true, 'a prefix covers its own path, with or without the slash');
  assert.equal(pathMatches('/accounts/', '/accountsx'), false);
  assert.equal(pathMatches('/accounts/{id}/transactions', '/accounts/7/transactions/'), true);
  assert.equal(pathMatches('/accounts/{id}/transactions', '/accounts/7/Transactions'), false);
  assert.equal(pathMatches('/accounts/{id}/transactions', '/accounts/7/Transactions', true), true);
  assert.equal(pathMatches('/accounts/{id}', '/accounts/42'), true);
  assert.equal(pathMatches('/accounts/{id}', '/accounts/42/x'), false);
  assert.equal(pathMatches('/accounts/{id}', '/accounts/'), false, 'a parameter is never empty');
  assert.equal(pathMatches('/accounts/{id}/transactions', '/accounts/7/transactions'), true);
  assert.equal(pathMatches('/', '/anything/at/all'), true);
});

const OPEN_BANKING = `
rules:
  - name: status
    methods: [GET]
    path: /status
    anonymous: true
  - name: accounts-read
    methods: [GET, HEAD]
    path: /accounts/
    scopes: [accounts]
  - name: payment-create
    methods: [POST]
    path: /payments
    scopes: [payments]
    sender_constraint: mtls
  - name: payment-status
    methods: [GET]
    path: /payments/{paymentId}
    any_of: [payments, payments:read]
    audience: https://payments.example.com
`;

test('an Open Banking style policy: first match wins, no match is 403', () => {
  const policy = parsePolicy(OPEN_BANKING, defaults);
  assert.equal(policy.match('GET', '/status').anonymous, true);
  assert.equal(policy.match('GET', '/accounts/1').name, 'accounts-read');
  assert.deepEqual(policy.match('POST', '/payments').senderConstraints, { mtls: true, dpop: false });
  const status = policy.match('GET', '/payments/p-1');
  assert.deepEqual([status.name, status.anyOf, status.audience], ['payment-status', ['payments', 'payments:read'], 'https://payments.example.com']);
  for (const [method, path] of [['POST', '/status'], ['DELETE', '/accounts/1'], ['GET', '/payments'], ['GET', '/admin']] as const) {
    assert.throws(() => policy.match(method, path), (error: unknown) => error instanceof RequestRejected && error.status === 403 && error.reason === 'no_matching_rule', `${method} ${path}`);
  }
  assert.deepEqual(policy.scopes().sort(), ['accounts', 'payments', 'payments:read']);
});

const bad: [string, string, RegExp][] = [
  ['not YAML', 'rules: [', /not valid YAML/],
  ['no rules', 'other: 1', /needs a non-empty "rules" list/],
  ['a rule without a name', 'rules:\n  - path: /x', /rule #1: needs a name/],
  ['two rules of one name', 'rules:\n  - {name: a, path: /x}\n  - {name: a, path: /y}', /rule "a": the name is used twice/],
  ['no path', 'rules:\n  - {name: a}', /rule "a": needs a path/],
  ['a path with ..', 'rules:\n  - {name: a, path: /x/../y}', /rule "a": needs a path/],
  ['an unknown key', 'rules:\n  - {name: a, path: /x, scope: [a]}', /rule "a": has an unknown key "scope"/],
  ['an unknown method', 'rules:\n  - {name: a, path: /x, methods: [TRACE]}', /unknown method "TRACE"/],
  ['an anonymous rule with scopes', 'rules:\n  - {name: a, path: /x, anonymous: true, scopes: [s]}', /is anonymous: it cannot also ask/],
  ['a bad sender constraint', 'rules:\n  - {name: a, path: /x, sender_constraint: bearer}', /sender_constraint must be mtls, dpop or either/],
  ['scopes not a list', 'rules:\n  - {name: a, path: /x, scopes: accounts}', /scopes must be a list of scope names/],
];
for (const [name, text, message] of bad) {
  test(`a policy with ${name} is refused, naming the rule`, () => {
    assert.throws(() => parsePolicy(text, defaults), message);
  });
}

test('a rule cannot ask for a sender constraint the sidecar does not accept', () => {
  assert.throws(() => parsePolicy('rules:\n  - {name: a, path: /x, sender_constraint: dpop}', { ...defaults, senderConstraints: { mtls: true, dpop: false } }), /asks for dpop, which PHANTOM_SENDER_CONSTRAINTS does not accept/);
});
