import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineKind } from './config.js';
import { batchOf, openTestJournal, readAllRecords, removeDir, tempDir } from './testing/index.js';

test('multiplexed: thousands of shards are cheap to create, keep their data and counters across reopen', async () => {
  const dir = await tempDir();
  try {
    let j = await openTestJournal(dir);
    const n = 5000;
    await Promise.all(Array.from({ length: n }, (_, i) => j.createShard(`inbox/${i}`, { engine: EngineKind.Multiplexed })));
    await Promise.all(Array.from({ length: n }, (_, i) => j.append(`inbox/${i}`, batchOf([`m${i}`]))));
    await j.append('inbox/7', batchOf(['second']));
    await j.deleteShard('inbox/9');
    await j.close();
    j = await openTestJournal(dir);
    const list = await j.listShards({ prefix: 'inbox/' });
    assert.equal(list.length, n - 1);
    const seven = await j.getShard('inbox/7');
    assert.equal(seven.latestOffset, 2n);
    assert.equal(seven.records, 2);
    assert.deepEqual(
      (await readAllRecords(j, 'inbox/7', 0n)).map((r) => r.value!.toString()),
      ['m7', 'second'],
    );
    // ids are never reused: a new shard does not see a deleted shard's data
    await j.createShard('inbox/9', { engine: EngineKind.Multiplexed });
    assert.equal(await j.latestOffset('inbox/9'), 0n);
    await j.close();
  } finally {
    await removeDir(dir);
  }
});
