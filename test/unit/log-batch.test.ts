import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { LineBatch } from '../../src/log.ts';

function recorder(): { writes: string[]; flushed: number; stream: { write(text: string): void; flush(done?: () => void): void } } {
  const record = { writes: [] as string[], flushed: 0, stream: { write: (text: string) => void record.writes.push(text), flush: (done?: () => void) => { record.flushed += 1; done?.(); } } };
  return record;
}

test('lines are held until 8 KiB have gathered, then go out in one write, in order', () => {
  const target = recorder();
  const batch = new LineBatch(target.stream);
  const line = `${'x'.repeat(999)}\n`;
  for (let i = 0; i < 8; i += 1) batch.write(line);
  assert.deepEqual(target.writes, [], 'under 8 KiB: nothing written yet');
  const last = `${'y'.repeat(199)}\n`;
  batch.write(last);
  assert.equal(target.writes.length, 1);
  assert.equal(target.writes[0], `${line.repeat(8)}${last}`);
});

test('flush sends what is gathered and then flushes the target; an empty flush writes nothing', () => {
  const target = recorder();
  const batch = new LineBatch(target.stream);
  let done = false;
  batch.flush(() => { done = true; });
  assert.deepEqual(target.writes, []);
  assert.equal(done, true);
  batch.write('a\n');
  batch.write('b\n');
  batch.flush();
  assert.deepEqual(target.writes, ['a\nb\n']);
  assert.equal(target.flushed, 2);
});

test('as the logger’s stream: pino’s lines and flush pass through it whole', () => {
  const target = recorder();
  const logger = pino({ base: null, timestamp: false }, new LineBatch(target.stream));
  logger.warn({ n: 1 }, 'first');
  logger.error('second');
  assert.deepEqual(target.writes, []);
  logger.flush();
  const lines = target.writes.join('').trim().split('\n').map((text) => JSON.parse(text) as { msg: string });
  assert.deepEqual(lines.map((line) => line.msg), ['first', 'second']);
});
