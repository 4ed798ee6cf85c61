import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineKind } from './config.js';
import { batchOf, openTestJournal, readAllRecords, removeDir, tempDir } from './testing/index.js';

test('memory: bounded by maxRecords and maxBytes, oldest evicted', async () => {
  const dir = await tempDir();
  try {
    const j = await openTestJournal(dir);
    await j.createShard('m', { engine: EngineKind.Memory, config: { memoryMaxRecords: 10 } });
    for (let i = 0; i < 25; i++) await j.append('m', batchOf([`v${i}`, `w${i}`]));
    const info = await j.getShard('m');
    assert.equal(info.records, 10);
    assert.equal(info.earliestOffset, 40n);
    assert.equal((await readAllRecords(j, 'm', 40n)).length, 10);
    await j.createShard('b', { engine: EngineKind.Memory, config: { memoryMaxBytes: 1000 } });
    for (let i = 0; i < 50; i++) await j.append('b', batchOf(['x'.repeat(100)]));
    assert.ok((await j.getShard('b')).bytes <= 1000);
    await j.close();
  } finally {
    await removeDir(dir);
  }
});
