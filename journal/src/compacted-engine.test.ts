import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RobustError } from '@robustmq/common';
import { EngineKind } from './config.js';
import { encodeRecordBatch } from './record-batch.js';
import { openTestJournal, readAllRecords, removeDir, tempDir } from './testing/index.js';

const put = (key: string, value: string | null): Buffer =>
  encodeRecordBatch([{ key: Buffer.from(key), value: value === null ? null : Buffer.from(value) }]);

test('compacted: latest value per key, tombstones delete, offsets stay monotonic, survives compaction and reopen', async () => {
  const dir = await tempDir();
  try {
    let j = await openTestJournal(dir);
    await j.createShard('retained', { engine: EngineKind.Compacted });
    await j.append('retained', put('a/1', 'one')); // 0
    await j.append('retained', put('b/2', 'two')); // 1
    await j.append('retained', put('a/1', 'uno')); // 2
    await j.append('retained', put('c/3', 'three')); // 3
    await j.append('retained', put('b/2', null)); // 4: tombstone
    const live = async (): Promise<[bigint, string, string][]> =>
      (await readAllRecords(j, 'retained', 0n)).map((r) => [r.offset, r.key!.toString(), r.value!.toString()]);
    assert.deepEqual(await live(), [
      [2n, 'a/1', 'uno'],
      [3n, 'c/3', 'three'],
    ]);
    assert.equal(await j.latestOffset('retained'), 5n);
    assert.equal((await j.getShard('retained')).records, 2);
    await assert.rejects(
      j.append('retained', encodeRecordBatch([{ key: null, value: Buffer.from('x') }])),
      (e: unknown) => e instanceof RobustError && e.code === ErrorCode.CorruptBatch,
    );
    await j.close();
    j = await openTestJournal(dir);
    assert.deepEqual(await live(), [
      [2n, 'a/1', 'uno'],
      [3n, 'c/3', 'three'],
    ]);
    // overwrite one key many times: past 1 MiB of dead bytes the log is rewritten
    const v = 'v'.repeat(4000);
    for (let i = 0; i < 400; i++) await j.append('retained', put('hot', `${i}-${v}`));
    await j.append('retained', put('hot', null)); // the newest offsets are tombstones
    const file = join(dir, 'compacted', 'retained', 'data.log');
    assert.ok((await stat(file)).size < 1024 * 1024, 'compacted');
    assert.equal(await j.latestOffset('retained'), 406n);
    await j.close();
    j = await openTestJournal(dir);
    assert.equal(await j.latestOffset('retained'), 406n, 'high watermark kept after compaction dropped the tail');
    assert.deepEqual(await live(), [
      [2n, 'a/1', 'uno'],
      [3n, 'c/3', 'three'],
    ]);
    assert.deepEqual(await j.append('retained', put('d', 'd')), { baseOffset: 406n, lastOffset: 406n });
    await j.close();
    // a torn tail is cut on open
    await writeFile(file, Buffer.from([0, 0, 0, 0, 0, 0, 0, 9, 0, 0]), { flag: 'a' });
    j = await openTestJournal(dir);
    assert.equal(await j.latestOffset('retained'), 407n);
    assert.deepEqual(await readdir(join(dir, 'compacted', 'retained')), ['data.log']);
    await j.close();
  } finally {
    await removeDir(dir);
  }
});
