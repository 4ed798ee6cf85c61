import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, RobustError } from '@robustmq/common';
import type { EngineKind, ShardConfig } from '../config.js';
import { OffsetOutOfRangeError } from '../errors.js';
import type { JournalClient } from '../journal.js';
import { BatchField, decodeRecordBatch, encodeRecordBatch } from '../record-batch.js';
import { batchOf, readAllRecords, removeDir, tempDir } from './helpers.js';

/** A client on a data directory; `close` releases it so the directory can be reopened. */
export type OpenClient = (dataDir: string) => Promise<JournalClient & { close(): Promise<void> }>;

export interface EngineSuiteOptions {
  /** Names this run when one engine runs the suite with several configurations. */
  label?: string;
  engine: EngineKind;
  open: OpenClient;
  /** Shard config overrides used by every shard of the suite. */
  config?: ShardConfig;
  /** Whether record data survives a reopen (false for memory). */
  persistent: boolean;
  /** Whether reads return the appended bytes unchanged (false for compacted, which re-encodes live records). */
  storesBatchesAsGiven: boolean;
}

function isCode(code: string): (err: unknown) => boolean {
  return (err: unknown) => err instanceof RobustError && err.code === code;
}

const text = (b: Buffer | null): string | null => (b === null ? null : b.toString());

/**
 * The behaviour every engine (and every JournalClient, in-process or remote) must have.
 * Each test opens its own client on a fresh directory and closes it at the end.
 */
export function runEngineSuite(opts: EngineSuiteOptions): void {
  const { engine, config } = opts;
  const create = { engine, config };

  async function withClient(fn: (c: JournalClient, dir: string) => Promise<void>): Promise<void> {
    const dir = await tempDir();
    const c = await opts.open(dir);
    try {
      await fn(c, dir);
    } finally {
      await c.close();
      await removeDir(dir);
    }
  }

  describe(`engine suite: ${engine}${opts.label ? ` (${opts.label})` : ''}`, () => {
    test('create, get, list, delete; duplicates and unknown names are typed errors', () =>
      withClient(async (c) => {
        const info = await c.createShard('a', create);
        assert.equal(info.engine, engine);
        assert.equal(info.earliestOffset, 0n);
        assert.equal(info.latestOffset, 0n);
        await c.createShard('b/с ü.x', create);
        await assert.rejects(c.createShard('a', create), isCode(ErrorCode.ShardExists));
        await assert.rejects(c.createShard('', create), isCode(ErrorCode.ShardInvalid));
        await assert.rejects(c.createShard('bad', { engine, config: { segmentBytes: -1 } }), isCode(ErrorCode.ShardInvalid));
        assert.deepEqual(
          (await c.listShards()).map((s) => s.name),
          ['a', 'b/с ü.x'],
        );
        await c.deleteShard('a');
        await assert.rejects(c.getShard('a'), isCode(ErrorCode.ShardNotFound));
        await assert.rejects(c.append('a', batchOf(['x'])), isCode(ErrorCode.ShardNotFound));
        await assert.rejects(c.read('a', 0n), isCode(ErrorCode.ShardNotFound));
        await assert.rejects(c.deleteShard('a'), isCode(ErrorCode.ShardNotFound));
        await c.createShard('a', create); // a deleted name can be reused and starts empty
        assert.equal((await c.getShard('a')).latestOffset, 0n);
      }));

    test('append assigns consecutive offsets; records round-trip', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        const ts = 1_700_000_000_000;
        const r1 = await c.append('s', batchOf(['a', 'b', 'c'], { timestamp: ts }));
        assert.deepEqual(r1, { baseOffset: 0n, lastOffset: 2n });
        const r2 = await c.append('s', batchOf(['d'], { timestamp: ts + 1 }));
        assert.deepEqual(r2, { baseOffset: 3n, lastOffset: 3n });
        assert.equal(await c.latestOffset('s'), 4n);
        assert.equal(await c.earliestOffset('s'), 0n);
        const recs = await readAllRecords(c, 's', 0n);
        assert.deepEqual(
          recs.map((r) => [r.offset, text(r.value), r.timestamp, r.headers.length]),
          [
            [0n, 'a', ts, 1],
            [1n, 'b', ts, 1],
            [2n, 'c', ts, 1],
            [3n, 'd', ts + 1, 1],
          ],
        );
        const info = await c.getShard('s');
        assert.equal(info.records, 4);
        assert.ok(info.bytes > 0);
      }));

    if (opts.storesBatchesAsGiven) {
      test('reads return the stored bytes: whole batches, only baseOffset rewritten', () =>
        withClient(async (c) => {
          await c.createShard('s', create);
          const b1 = batchOf(['one', 'two']);
          const copy1 = Buffer.from(b1);
          await c.append('s', batchOf(['zero']));
          await c.append('s', b1);
          const r = await c.read('s', 2n); // inside the second batch: the whole batch comes back
          assert.equal(r.data.readBigInt64BE(0), 1n);
          assert.deepEqual(r.data.subarray(8), copy1.subarray(8));
          assert.equal(r.nextOffset, 3n);
          decodeRecordBatch(r.data); // CRC still valid
        }));
    }

    test('maxBytes returns whole batches, at least one; nextOffset walks everything once', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        const values: string[] = [];
        for (let i = 0; i < 40; i++) {
          const v = `v${i}-${'x'.repeat(i * 7)}`;
          values.push(v);
          await c.append('s', batchOf([v]));
        }
        const first = await c.read('s', 0n, { maxBytes: 1 });
        assert.ok(first.data.length > 1, 'first batch returned whole even above maxBytes');
        assert.equal(first.nextOffset, 1n);
        for (const maxBytes of [1, 200, 1000, 1 << 20]) {
          const recs = await readAllRecords(c, 's', 0n, maxBytes);
          assert.deepEqual(
            recs.map((r) => text(r.value)),
            values,
          );
        }
        const mid = await readAllRecords(c, 's', 17n);
        assert.equal(mid[0]!.offset, 17n);
        assert.equal(mid.length, 23);
      }));

    test('several batches in one append', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        const r = await c.append('s', Buffer.concat([batchOf(['a', 'b']), batchOf(['c'])]));
        assert.deepEqual(r, { baseOffset: 0n, lastOffset: 2n });
        assert.deepEqual(
          (await readAllRecords(c, 's', 0n)).map((x) => text(x.value)),
          ['a', 'b', 'c'],
        );
      }));

    test('bad input: CRC, magic, truncation, empty, oversize; the shard stays usable', () =>
      withClient(async (c) => {
        await c.createShard('s', { engine, config: { ...config, maxBatchBytes: 4096 } });
        const crc = batchOf(['x']);
        crc[crc.length - 1]! ^= 0xff;
        await assert.rejects(c.append('s', crc), isCode(ErrorCode.CorruptBatch));
        const magic = batchOf(['x']);
        magic[BatchField.Magic] = 1;
        await assert.rejects(c.append('s', magic), isCode(ErrorCode.CorruptBatch));
        const good = batchOf(['x']);
        await assert.rejects(c.append('s', good.subarray(0, good.length - 3)), isCode(ErrorCode.Truncated));
        await assert.rejects(c.append('s', Buffer.alloc(0)), isCode(ErrorCode.Truncated));
        await assert.rejects(c.append('s', batchOf(['y'.repeat(5000)])), isCode(ErrorCode.BatchTooLarge));
        assert.deepEqual(await c.append('s', good), { baseOffset: 0n, lastOffset: 0n });
      }));

    test('offsets out of range carry earliest and latest', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        await c.append('s', batchOf(['a', 'b']));
        await assert.rejects(c.read('s', 3n), (err: unknown) => {
          assert.ok(err instanceof OffsetOutOfRangeError);
          assert.equal(err.code, ErrorCode.OffsetOutOfRange);
          assert.equal(err.earliestOffset, 0n);
          assert.equal(err.latestOffset, 2n);
          return true;
        });
        await assert.rejects(c.read('s', -1n), isCode(ErrorCode.OffsetOutOfRange));
        const atEnd = await c.read('s', 2n);
        assert.equal(atEnd.data.length, 0);
        assert.equal(atEnd.nextOffset, 2n);
        await assert.rejects(c.deleteRecordsBefore('s', 5n), isCode(ErrorCode.OffsetOutOfRange));
      }));

    test('long poll: woken by the append, times out empty, abortable, ended by delete', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        const t0 = Date.now();
        const waiting = c.read('s', 0n, { maxWaitMs: 10_000 });
        setTimeout(() => void c.append('s', batchOf(['late'])), 30);
        const r = await waiting;
        assert.ok(Date.now() - t0 < 5000, 'woken by the append, not the timeout');
        assert.equal(text(decodeRecordBatch(r.data).records[0]!.value), 'late');

        const t1 = Date.now();
        const empty = await c.read('s', 1n, { maxWaitMs: 50 });
        assert.equal(empty.data.length, 0);
        assert.ok(Date.now() - t1 >= 45);

        const ac = new AbortController();
        const aborted = c.read('s', 1n, { maxWaitMs: 10_000, signal: ac.signal });
        ac.abort();
        await assert.rejects(aborted, isCode(ErrorCode.Aborted));

        const orphan = assert.rejects(c.read('s', 1n, { maxWaitMs: 10_000 }), isCode(ErrorCode.ShardNotFound));
        await new Promise((r) => setTimeout(r, 10)); // let the read park
        await c.deleteShard('s');
        await orphan;
      }));

    test('subscribe yields appends in order and ends on abort', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        await c.append('s', batchOf(['a']));
        const ac = new AbortController();
        const seen: string[] = [];
        const done = (async () => {
          for await (const r of c.subscribe('s', 0n, { signal: ac.signal })) {
            for (let pos = 0; pos < r.data.length;) {
              const b = decodeRecordBatch(r.data, { position: pos });
              for (const rec of b.records) seen.push(text(rec.value)!);
              pos += b.size;
            }
            if (seen.length === 3) ac.abort();
          }
        })();
        await c.append('s', batchOf(['b']));
        await new Promise((r) => setTimeout(r, 10));
        await c.append('s', batchOf(['c']));
        await done;
        assert.deepEqual(seen, ['a', 'b', 'c']);
      }));

    test('offsetForTimestamp finds the first record at or after a time', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        for (let i = 0; i < 20; i++) await c.append('s', batchOf([`v${i}`, `w${i}`], { timestamp: 1000 + i * 10 }));
        assert.equal(await c.offsetForTimestamp('s', 0), 0n);
        assert.equal(await c.offsetForTimestamp('s', 1000), 0n);
        assert.equal(await c.offsetForTimestamp('s', 1001), 2n);
        assert.equal(await c.offsetForTimestamp('s', 1050), 10n);
        assert.equal(await c.offsetForTimestamp('s', 1190), 38n);
        assert.equal(await c.offsetForTimestamp('s', 5000), null);
      }));

    test('deleteRecordsBefore moves the earliest offset', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        for (let i = 0; i < 10; i++) await c.append('s', batchOf([`v${i}`]));
        assert.equal(await c.deleteRecordsBefore('s', 4n), 4n);
        assert.equal(await c.earliestOffset('s'), 4n);
        await assert.rejects(c.read('s', 3n), isCode(ErrorCode.OffsetOutOfRange));
        const recs = await readAllRecords(c, 's', 4n);
        assert.deepEqual(
          recs.map((r) => r.offset),
          [4n, 5n, 6n, 7n, 8n, 9n],
        );
        await c.append('s', batchOf(['after']));
        assert.equal(await c.latestOffset('s'), 11n);
      }));

    test('updateShardConfig replaces the overrides; a smaller maxBatchBytes refuses the next big append', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        const big = batchOf(['x'.repeat(2000)]);
        if (engine === 'multiplexed') {
          await assert.rejects(c.updateShardConfig('s', { maxBatchBytes: 1000 }), isCode(ErrorCode.ShardInvalid));
          return;
        }
        await c.append('s', big);
        await assert.rejects(c.updateShardConfig('s', { ...config, maxBatchBytes: -5 }), isCode(ErrorCode.ShardInvalid));
        await assert.rejects(c.updateShardConfig('nope', { maxBatchBytes: 1000 }), isCode(ErrorCode.ShardNotFound));
        await c.updateShardConfig('s', { ...config, maxBatchBytes: 1000 });
        await assert.rejects(c.append('s', batchOf(['x'.repeat(2000)])), isCode(ErrorCode.BatchTooLarge));
        await c.append('s', batchOf(['small']));
        await c.updateShardConfig('s', { ...config });
        await c.append('s', batchOf(['x'.repeat(2000)]));
        assert.equal(await c.latestOffset('s'), 3n);
      }));

    test('concurrent appends get unique contiguous offsets', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        const results = await Promise.all(Array.from({ length: 60 }, (_, i) => c.append('s', batchOf([`p${i}`, `q${i}`]))));
        const bases = results.map((r) => r.baseOffset).sort((a, b) => (a < b ? -1 : 1));
        assert.deepEqual(
          bases,
          Array.from({ length: 60 }, (_, i) => BigInt(i * 2)),
        );
        const recs = await readAllRecords(c, 's', 0n);
        assert.equal(recs.length, 120);
        for (const [i, r] of results.entries()) {
          const got = recs.find((x) => x.offset === r.baseOffset)!;
          assert.equal(text(got.value), `p${i}`);
        }
      }));

    test('a reopened journal sees its shards' + (opts.persistent ? ' and their data' : ''), async () => {
      const dir = await tempDir();
      try {
        let c = await opts.open(dir);
        await c.createShard('keep', create);
        await c.createShard('gone', create);
        await c.append('keep', batchOf(['a', 'b']));
        await c.append('keep', batchOf(['c']));
        await c.deleteShard('gone');
        await c.close();
        c = await opts.open(dir);
        try {
          assert.deepEqual(
            (await c.listShards()).map((s) => s.name),
            ['keep'],
          );
          if (opts.persistent) {
            assert.equal(await c.latestOffset('keep'), 3n);
            assert.deepEqual(
              (await readAllRecords(c, 'keep', 0n)).map((r) => text(r.value)),
              ['a', 'b', 'c'],
            );
            assert.deepEqual(await c.append('keep', batchOf(['d'])), { baseOffset: 3n, lastOffset: 3n });
          } else {
            assert.equal(await c.latestOffset('keep'), 0n);
          }
        } finally {
          await c.close();
        }
      } finally {
        await removeDir(dir);
      }
    });

    test('an encoded gzip batch is stored and read back', () =>
      withClient(async (c) => {
        await c.createShard('s', create);
        const b = encodeRecordBatch(
          [
            { key: Buffer.from('k1'), value: Buffer.from('gz'.repeat(200)) },
            { key: Buffer.from('k2'), value: Buffer.from('zz') },
          ],
          { compression: 1 },
        );
        await c.append('s', b);
        assert.deepEqual(
          (await readAllRecords(c, 's', 0n)).map((r) => text(r.value)),
          ['gz'.repeat(200), 'zz'],
        );
      }));
  });
}
