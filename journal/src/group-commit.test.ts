import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GroupCommitQueue } from './group-commit.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('items queued while a flush runs are flushed together by the next one, in order', async () => {
  const flushes: number[][] = [];
  const q = new GroupCommitQueue<number, number>(async (items) => {
    flushes.push(items);
    await tick();
    return items.map((i) => i * 10);
  });
  const results = await Promise.all([q.push(1), q.push(2), q.push(3)]);
  assert.deepEqual(results, [10, 20, 30]);
  assert.deepEqual(flushes, [[1], [2, 3]]);
});

test('failQueuedOnError: what queued behind a failed flush fails with its error; later items are flushed again', async () => {
  let fail = true;
  const flushed: number[] = [];
  const q = new GroupCommitQueue<number, number>(
    async (items) => {
      await tick();
      if (fail) return items.map(() => new Error('disk full'));
      flushed.push(...items);
      return items;
    },
    { failQueuedOnError: true },
  );
  const first = q.push(1); // flushed alone, fails
  const behind = [q.push(2), q.push(3)]; // queued while it runs: must not be written after it
  await assert.rejects(first, /disk full/);
  for (const p of behind) await assert.rejects(p, /disk full/);
  fail = false;
  assert.equal(await q.push(4), 4);
  assert.deepEqual(flushed, [4]);
});

test('without failQueuedOnError the items behind a failed flush are flushed on their own', async () => {
  let calls = 0;
  const q = new GroupCommitQueue<number, number>(async (items) => {
    await tick();
    return calls++ === 0 ? items.map(() => new Error('once')) : items;
  });
  const first = q.push(1);
  const second = q.push(2);
  await assert.rejects(first, /once/);
  assert.equal(await second, 2);
});
