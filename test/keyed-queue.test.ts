// keyedQueue (server/db/keyed-queue.ts): calls with one key run one at a time, in order; other keys and null run at
// once; a failure does not hold the queue.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { keyedQueue } from '../server/db/keyed-queue.ts';

const tick = () => new Promise((r) => setTimeout(r, 5));

test('one key: one at a time, in call order; a failed call lets the next run', async () => {
  const inTurn = keyedQueue();
  const log: string[] = [];
  let running = 0, most = 0;
  const job = (name: string, fail = false) => inTurn('a', async () => {
    running++; most = Math.max(most, running); log.push(`start ${name}`);
    await tick();
    log.push(`end ${name}`); running--;
    if (fail) throw new Error(name);
    return name;
  });
  const results = await Promise.allSettled([job('1'), job('2', true), job('3')]);
  assert.is(most, 1);
  assert.equal(log, ['start 1', 'end 1', 'start 2', 'end 2', 'start 3', 'end 3']);
  assert.equal(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
});

test('other keys and null do not wait', async () => {
  const inTurn = keyedQueue();
  let running = 0, most = 0;
  const job = (key: string | null) => inTurn(key, async () => { running++; most = Math.max(most, running); await tick(); running--; });
  await Promise.all([job('a'), job('b'), job(null), job(null)]);
  assert.is(most, 4);
});

test.run();
