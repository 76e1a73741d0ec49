import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InvalidToken } from '../../src/errors.ts';
import { checkCertificateBinding } from '../../src/pipeline/binding.ts';

const A = 'BLGoa75IMxH8UOq8I-5r_71cSU6clDLY-ZyLrhrwAiY';
const B = 'fkWdHslAdZ6GhlvQvIrLwTYza6Jg2s9hhtxeE7eU9h8';

const cases: [string, Parameters<typeof checkCertificateBinding>, string | null][] = [
  ['matching thumbprint', [{ 'x5t#S256': A }, A, true], null],
  ['another certificate', [{ 'x5t#S256': A }, B, true], 'binding_mismatch'],
  ['one character off', [{ 'x5t#S256': A }, `${A.slice(0, -1)}Z`, true], 'binding_mismatch'],
  ['a prefix of the thumbprint', [{ 'x5t#S256': A }, A.slice(0, 20), true], 'binding_mismatch'],
  ['no certificate on the connection', [{ 'x5t#S256': A }, undefined, true], 'binding_mismatch'],
  ['bound token even when binding is optional', [{ 'x5t#S256': A }, B, false], 'binding_mismatch'],
  ['no cnf while binding is required', [undefined, A, true], 'token_not_bound'],
  ['cnf without x5t#S256 while required', [{}, A, true], 'token_not_bound'],
  ['no cnf while binding is optional', [undefined, A, false], null],
  ['a DPoP-bound token, binding required', [{ jkt: 'k' }, A, true], 'dpop_bound_token'],
  ['a DPoP-bound token, binding optional', [{ jkt: 'k' }, A, false], 'dpop_bound_token'],
];

for (const [name, args, reason] of cases) {
  test(name, () => {
    if (reason === null) {
      assert.doesNotThrow(() => checkCertificateBinding(...args));
      return;
    }
    assert.throws(() => checkCertificateBinding(...args), (error: unknown) => error instanceof InvalidToken && error.reason === reason);
  });
}
