import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RobustError } from '@robustmq/common';
import { EngineKind, FsyncPolicy, type ShardConfig } from './config.js';
import { batchOf, openTestJournal, readAllRecords, removeDir, tempDir } from './testing/index.js';

const SMALL: ShardConfig = { segmentBytes: 4096, indexIntervalBytes: 512, fsyncPolicy: FsyncPolicy.Always, retentionMs: -1 };
const value = (i: number): string => `value-${i}-${'x'.repeat(60)}`;

// A real ENOSPC without a small filesystem: the segment the shard rolls into next is a symlink
// to /dev/full, where every write fails with ENOSPC.
test(
  'a full disk is a typed, retriable StorageFull error; acknowledged records survive and the shard works again once space is back',
  {
    skip: !existsSync('/dev/full'),
  },
  async () => {
    const dir = await tempDir();
    try {
      let j = await openTestJournal(dir);
      await j.createShard('s', { engine: EngineKind.Segment, config: SMALL });
      const acked: string[] = [];
      for (let i = 0; i < 20; i++) {
        await j.append('s', batchOf([value(i)], { timestamp: 1_000_000 + i }));
        acked.push(value(i));
      }
      const shardDir = join(dir, 'segment', 's');
      const existing = new Set(await readdir(shardDir));
      const traps: string[] = [];
      for (let o = 20; o < 200; o++) {
        const name = `${String(o).padStart(20, '0')}.log`;
        if (existing.has(name)) continue;
        traps.push(join(shardDir, name));
        await symlink('/dev/full', join(shardDir, name));
      }
      let failure: unknown;
      for (let i = 20; i < 200 && failure === undefined; i++) {
        try {
          await j.append('s', batchOf([value(i)], { timestamp: 1_000_000 + i }));
          acked.push(value(i));
        } catch (err) {
          failure = err;
        }
      }
      assert.ok(failure instanceof RobustError, `expected a RobustError, got ${String(failure)}`);
      assert.equal(failure.code, ErrorCode.StorageFull);
      assert.equal(failure.retriable, true);
      // The process is fine and what was acknowledged is readable.
      await assert.rejects(j.append('s', batchOf(['more'])), (e: unknown) => e instanceof RobustError);
      assert.deepEqual(
        (await readAllRecords(j, 's', 0n, 1000)).map((r) => r.value?.toString()),
        acked,
      );
      await j.close().catch(() => undefined);
      // Space is back: the shard reopens with every acknowledged record and takes appends again.
      for (const t of traps) await unlink(t);
      j = await openTestJournal(dir);
      assert.deepEqual(
        (await readAllRecords(j, 's', 0n, 1000)).map((r) => r.value?.toString()),
        acked,
      );
      const { baseOffset: base } = await j.append('s', batchOf(['after']));
      assert.equal(base, BigInt(acked.length));
      await j.close();
    } finally {
      await removeDir(dir);
    }
  },
);
