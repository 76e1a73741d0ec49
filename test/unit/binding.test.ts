import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidToken } from '../../src/errors.ts';
import { checkBinding, type Possession } from '../../src/request/binding.ts';
import type { Confirmation } from '../../src/introspection/answer.ts';

const A = 'BLGoa75IMxH8UOq8I-5r_71cSU6clDLY-ZyLrhrwAiY';
const B = 'fkWdHslAdZ6GhlvQvIrLwTYza6Jg2s9hhtxeE7eU9h8';
const K = '0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I';
const MTLS = { mtls: true, dpop: false };
const BOTH = { mtls: true, dpop: true };
const DPOP = { mtls: false, dpop: true };
const bearer = (x5t: string | undefined, accepted = MTLS): Possession => ({ scheme: 'Bearer', x5t, dpopJkt: undefined, accepted });
const dpop = (jkt: string | undefined, x5t: string | undefined = A, accepted = BOTH): Possession => ({ scheme: 'DPoP', x5t, dpopJkt: jkt, accepted });

const cases: [string, Confirmation | undefined, Possession, boolean, string | null][] = [
  ['matching thumbprint', { 'x5t#S256': A }, bearer(A), true, null],
  ['another certificate', { 'x5t#S256': A }, bearer(B), true, 'binding_mismatch'],
  ['one character off', { 'x5t#S256': A }, bearer(`${A.slice(0, -1)}Z`), true, 'binding_mismatch'],
  ['a prefix of the thumbprint', { 'x5t#S256': A }, bearer(A.slice(0, 20)), true, 'binding_mismatch'],
  ['no certificate on the connection', { 'x5t#S256': A }, bearer(undefined), true, 'binding_mismatch'],
  ['bound token even when binding is optional', { 'x5t#S256': A }, bearer(B), false, 'binding_mismatch'],
  ['no cnf while binding is required', undefined, bearer(A), true, 'token_not_bound'],
  ['cnf with neither member while required', {}, bearer(A), true, 'token_not_bound'],
  ['no cnf while binding is optional', undefined, bearer(A), false, null],
  ['a DPoP-bound token where only mTLS is accepted', { jkt: K }, dpop(K, A, MTLS), true, 'binding_method_not_accepted'],
  ['a certificate-bound token where only DPoP is accepted', { 'x5t#S256': A }, bearer(A, DPOP), true, 'binding_method_not_accepted'],
  ['a DPoP-bound token with its proof', { jkt: K }, dpop(K), true, null],
  ['a DPoP-bound token with another key\'s proof', { jkt: K }, dpop('other'), true, 'binding_mismatch'],
  ['a DPoP-bound token sent as Bearer (a downgrade)', { jkt: K }, bearer(A, BOTH), true, 'dpop_downgrade'],
  ['bound both ways, both proven', { 'x5t#S256': A, jkt: K }, dpop(K, A), true, null],
  ['bound both ways, the certificate wrong', { 'x5t#S256': A, jkt: K }, dpop(K, B), true, 'binding_mismatch'],
  ['bound both ways, no DPoP proof', { 'x5t#S256': A, jkt: K }, bearer(A, BOTH), true, 'dpop_downgrade'],
  ['bound both ways where DPoP is not accepted', { 'x5t#S256': A, jkt: K }, bearer(A, MTLS), true, 'binding_method_not_accepted'],
  ['the DPoP scheme with a certificate-bound token', { 'x5t#S256': A }, dpop(K, A), true, 'token_not_bound'],
  ['the DPoP scheme with an unbound token, binding optional', undefined, dpop(K), false, 'token_not_bound'],
];

for (const [name, cnf, possession, requireBinding, reason] of cases) {
  test(name, () => {
    if (reason === null) {
      assert.doesNotThrow(() => checkBinding(cnf, possession, requireBinding));
      return;
    }
    assert.throws(() => checkBinding(cnf, possession, requireBinding), (error: unknown) => error instanceof InvalidToken && error.reason === reason);
  });
}
