import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sealer } from '../../src/fleet/sealing.ts';

const key = Buffer.from('a'.repeat(32));
const other = Buffer.from('b'.repeat(32));

test('a sealed value opens under its own name and purpose only, and shows nothing of its text', () => {
  const sealer = new Sealer(key);
  const sealed = sealer.seal('answer', 'phantom:v2:answer:K1', '{"client_id":"partner-a","scope":"accounts"}');
  assert.ok(!sealed.includes('partner-a') && !Buffer.from(sealed.slice(3), 'base64url').toString('latin1').includes('partner-a'));
  assert.equal(sealer.open('answer', 'phantom:v2:answer:K1', sealed), '{"client_id":"partner-a","scope":"accounts"}');
  assert.equal(sealer.open('answer', 'phantom:v2:answer:K2', sealed), undefined, 'moved under another key');
  assert.equal(sealer.open('revocation', 'phantom:v2:answer:K1', sealed), undefined, 'another purpose');
  assert.equal(new Sealer(other).open('answer', 'phantom:v2:answer:K1', sealed), undefined, 'another fleet key');
  const tampered = `${sealed.slice(0, -2)}${sealed.endsWith('A') ? 'B' : 'A'}${sealed.slice(-1)}`;
  assert.equal(sealer.open('answer', 'phantom:v2:answer:K1', tampered), undefined);
  for (const garbage of ['', 's1.', 's1.AAAA', '{"active":true}', 'x'.repeat(100)]) assert.equal(sealer.open('answer', 'n', garbage), undefined, garbage);
  assert.notEqual(sealer.seal('answer', 'n', 'same'), sealer.seal('answer', 'n', 'same'), 'a fresh IV each time');
});

test('a rotation: values sealed under the previous key open, new ones are sealed under the new key', () => {
  const before = new Sealer(key).seal('revocation', 'channel', 'message');
  const rotated = new Sealer(other, key);
  assert.equal(rotated.open('revocation', 'channel', before), 'message');
  assert.equal(new Sealer(key).open('revocation', 'channel', rotated.seal('revocation', 'channel', 'new')), undefined);
  assert.equal(rotated.subjectNames('opaque:user-1').length, 2);
  assert.equal(rotated.subjectNames('opaque:user-1')[1], new Sealer(key).subjectNames('opaque:user-1')[0]);
  assert.ok(!rotated.subjectNames('opaque:user-1')[0]?.includes('user-1'));
});
