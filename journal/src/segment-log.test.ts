import { test } from 'node:test';
import assert from 'node:assert/strict';
import { open, readdir, readFile, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, Registry, RobustError } from '@robustmq/common';
import { EngineKind, FsyncPolicy, type ShardConfig } from './config.js';
import { CorruptSegmentError } from './errors.js';
import type { Journal } from './journal.js';
import { BatchField } from './record-batch.js';
import { batchOf, captureLogger, openTestJournal, readAllRecords, removeDir, tempDir } from './testing/index.js';

// Test records carry 1970s timestamps, so time retention is off unless a test turns it on.
const SMALL: ShardConfig = { segmentBytes: 4096, indexIntervalBytes: 512, fsyncPolicy: FsyncPolicy.Never, retentionMs: -1 };

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await fn(dir);
  } finally {
    await removeDir(dir);
  }
}

/** Appends n batches of one ~100-byte record each; returns the values. */
async function fill(j: Journal, shard: string, n: number, from = 0): Promise<string[]> {
  const values: string[] = [];
  for (let i = from; i < from + n; i++) {
    const v = `value-${i}-${'x'.repeat(60)}`;
    values.push(v);
    await j.append(shard, batchOf([v], { timestamp: 1_000_000 + i }));
  }
  return values;
}

const shardDir = (dir: string, name: string): string => join(dir, 'segment', encodeURIComponent(name));

async function logFiles(dir: string, name: string): Promise<string[]> {
  return (await readdir(shardDir(dir, name))).filter((f) => f.endsWith('.log')).sort();
}

test('segments roll by size with 20-digit base-offset names and .index/.timeindex files', () =>
  withDir(async (dir) => {
    const j = await openTestJournal(dir);
    await j.createShard('s', { engine: EngineKind.Segment, config: SMALL });
    const values = await fill(j, 's', 200);
    const logs = await logFiles(dir, 's');
    assert.ok(logs.length > 3, `rolled into ${logs.length} segments`);
    assert.equal(logs[0], '00000000000000000000.log');
    for (const f of logs) assert.match(f, /^\d{20}\.log$/);
    const files = await readdir(shardDir(dir, 's'));
    assert.ok(files.includes('00000000000000000000.index'));
    assert.ok(files.includes('00000000000000000000.timeindex'));
    for (const f of logs) assert.ok((await stat(join(shardDir(dir, 's'), f))).size <= 4096);
    assert.deepEqual(
      (await readAllRecords(j, 's', 0n, 700)).map((r) => r.value!.toString()),
      values,
    );
    // every offset is found through the indexes
    for (let o = 0; o < 200; o += 7) {
      const r = await j.read('s', BigInt(o), { maxBytes: 1 });
      assert.equal(r.data.readBigInt64BE(0), BigInt(o));
    }
    await j.close();
  }));

test('segments roll by age', () =>
  withDir(async (dir) => {
    const j = await openTestJournal(dir);
    // Long enough that the first two appends land in the first segment even on a busy machine.
    await j.createShard('s', { engine: EngineKind.Segment, config: { segmentMs: 300, retentionMs: -1 } });
    await fill(j, 's', 2);
    await new Promise((r) => setTimeout(r, 350));
    await fill(j, 's', 1, 2);
    assert.deepEqual(await logFiles(dir, 's'), ['00000000000000000000.log', '00000000000000000002.log']);
    await j.close();
  }));

test('retention by size and by age deletes whole sealed segments', () =>
  withDir(async (dir) => {
    const j = await openTestJournal(dir);
    await j.createShard('bytes', { engine: EngineKind.Segment, config: { ...SMALL, retentionBytes: 8192 } });
    await fill(j, 'bytes', 300);
    const info = await j.getShard('bytes');
    // checked at each roll: retentionBytes + one sealed segment + the active one at most
    assert.ok(info.bytes <= 8192 + 2 * 4096, `size ${info.bytes}`);
    assert.ok(info.earliestOffset > 0n);
    const recs = await readAllRecords(j, 'bytes', info.earliestOffset);
    assert.equal(recs.at(-1)!.offset, 299n);

    await j.createShard('age', { engine: EngineKind.Segment, config: { ...SMALL, retentionMs: 60_000 } });
    await fill(j, 'age', 100); // timestamps around 1970: far older than a minute
    const age = await j.getShard('age');
    assert.ok(age.earliestOffset > 0n, 'old segments deleted on roll');
    // Retention runs after a roll, once the sealed segment's background sync is done.
    for (let i = 0; i < 200 && (await logFiles(dir, 'age')).length > 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal((await logFiles(dir, 'age')).length, 1, 'only the active segment is kept');
    await j.close();
  }));

test('updateShardConfig: new retention is enforced at once and survives a reopen', () =>
  withDir(async (dir) => {
    let j = await openTestJournal(dir);
    await j.createShard('s', { engine: EngineKind.Segment, config: SMALL });
    await fill(j, 's', 200);
    assert.equal((await j.getShard('s')).earliestOffset, 0n);
    const info = await j.updateShardConfig('s', { ...SMALL, retentionBytes: 8192 });
    assert.ok(info.earliestOffset > 0n, 'old segments deleted by the update itself');
    assert.ok(info.bytes <= 8192 + 4096, `size ${info.bytes}`);
    assert.equal(info.config.retentionBytes, 8192);
    await j.updateShardConfig('s', { ...SMALL, retentionMs: 60_000 }); // 1970s timestamps: all sealed segments expire
    assert.equal((await logFiles(dir, 's')).length, 1, 'only the active segment is kept');
    await j.close();
    j = await openTestJournal(dir);
    assert.deepEqual((await j.getShard('s')).config, { ...SMALL, retentionMs: 60_000 });
    await j.close();
  }));

test('missing, stale and damaged indexes are rebuilt on open', () =>
  withDir(async (dir) => {
    let j = await openTestJournal(dir);
    await j.createShard('s', { engine: EngineKind.Segment, config: SMALL });
    const values = await fill(j, 's', 120);
    await j.close();
    const d = shardDir(dir, 's');
    const idx = (await readdir(d)).filter((f) => f.endsWith('.index')).sort();
    await unlink(join(d, idx[0]!)); // missing
    await writeFile(join(d, idx[1]!), Buffer.from([0, 0, 0, 9, 0, 0, 0, 1, 0, 0])); // not a multiple of 8
    const stale = await readFile(join(d, idx[2]!));
    if (stale.length >= 8) {
      stale.writeUInt32BE(stale.readUInt32BE(stale.length - 8) + 1, stale.length - 8); // wrong offset
      await writeFile(join(d, idx[2]!), stale);
    }
    const ti = (await readdir(d)).filter((f) => f.endsWith('.timeindex')).sort();
    await truncate(join(d, ti[3]!), 5);
    j = await openTestJournal(dir);
    assert.deepEqual(
      (await readAllRecords(j, 's', 0n, 300)).map((r) => r.value!.toString()),
      values,
    );
    for (let o = 0; o < 120; o += 5) assert.equal((await j.read('s', BigInt(o), { maxBytes: 1 })).data.readBigInt64BE(0), BigInt(o));
    assert.equal(await j.offsetForTimestamp('s', 1_000_050), 50n);
    await j.close();
  }));

test('a torn tail is truncated on open with a warning and a metric', () =>
  withDir(async (dir) => {
    let j = await openTestJournal(dir);
    await j.createShard('s', { engine: EngineKind.Segment, config: SMALL });
    await fill(j, 's', 10);
    await j.close();
    const d = shardDir(dir, 's');
    const log = join(d, '00000000000000000000.log');
    const size = (await stat(log)).size;
    // simulate a crash: no clean-shutdown marker, half a batch written at the end
    await unlink(join(d, '.clean'));
    const extra = batchOf(['torn']);
    await writeFile(log, extra.subarray(0, 30), { flag: 'a' });
    const { logger, lines } = captureLogger();
    const registry = new Registry();
    j = await openTestJournal(dir, { logger, registry });
    assert.equal((await stat(log)).size, size);
    assert.equal(await j.latestOffset('s'), 10n);
    const warn = lines.find((l) => l.msg === 'truncating torn or corrupt log tail');
    assert.ok(warn, 'warning logged');
    assert.equal(warn.bytes, 30);
    assert.equal(warn.level, 40);
    const metric = await registry.getSingleMetric('robustmq_journal_recovery_truncated_bytes_total')!.get();
    assert.equal(metric.values[0]!.value, 30);
    assert.deepEqual(await j.append('s', batchOf(['next'])), { baseOffset: 10n, lastOffset: 10n });
    await j.close();
  }));

test('a bad CRC at the tail after a crash is truncated; flipped bytes mid-log of the active segment truncate from there', () =>
  withDir(async (dir) => {
    let j = await openTestJournal(dir);
    await j.createShard('s', { engine: EngineKind.Segment, config: { fsyncPolicy: FsyncPolicy.Never } });
    await fill(j, 's', 10);
    await j.close();
    const d = shardDir(dir, 's');
    const log = join(d, '00000000000000000000.log');
    const buf = await readFile(log);
    const batchSize = buf.length / 10;
    buf[buf.length - 5]! ^= 0xff; // last batch
    await writeFile(log, buf);
    await unlink(join(d, '.clean'));
    j = await openTestJournal(dir);
    assert.equal(await j.latestOffset('s'), 9n);
    assert.equal((await stat(log)).size, batchSize * 9);
    await j.close();
  }));

test('corruption inside a sealed segment: CorruptSegment with file and position; later segments stay readable', () =>
  withDir(async (dir) => {
    let j = await openTestJournal(dir);
    await j.createShard('s', { engine: EngineKind.Segment, config: SMALL });
    await fill(j, 's', 150);
    await j.close();
    const d = shardDir(dir, 's');
    const logs = await logFiles(dir, 's');
    const victim = join(d, logs[1]!);
    const bytes = await readFile(victim);
    const firstSize = bytes.readInt32BE(BatchField.BatchLength) + 12;
    const base = Number(bytes.readBigInt64BE(0));
    // flip a payload byte of the second batch of segment 1 (CRC catches it on read)
    const fh = await open(victim, 'r+');
    await fh.write(Buffer.from([bytes[firstSize + 70]! ^ 0xff]), 0, 1, firstSize + 70);
    await fh.close();
    j = await openTestJournal(dir);
    await assert.rejects(j.read('s', BigInt(base + 1)), (err: unknown) => {
      assert.ok(err instanceof CorruptSegmentError);
      assert.equal(err.code, ErrorCode.CorruptSegment);
      assert.equal(err.file, victim);
      assert.equal(err.position, firstSize);
      return true;
    });
    // the batch before it is still returned, alone
    const before = await j.read('s', BigInt(base));
    assert.equal(before.nextOffset, BigInt(base + 1));
    // later segments are fine
    const third = Number(BigInt(logs[2]!.slice(0, 20)));
    const rest = await readAllRecords(j, 's', BigInt(third));
    assert.equal(rest.at(-1)!.offset, 149n);
    // a broken length field is reported the same way
    const fh2 = await open(victim, 'r+');
    await fh2.write(Buffer.from([0x7f, 0xff, 0xff, 0xff]), 0, 4, BatchField.BatchLength);
    await fh2.close();
    await assert.rejects(j.read('s', BigInt(base)), (err: unknown) => err instanceof RobustError && err.code === ErrorCode.CorruptSegment);
    await j.close();
  }));

test('reads: large range in one buffer; the batch containing the offset comes first', () =>
  withDir(async (dir) => {
    const j = await openTestJournal(dir);
    await j.createShard('s', { engine: EngineKind.Segment });
    for (let i = 0; i < 50; i++) await j.append('s', batchOf(Array.from({ length: 10 }, (_, k) => `r${i * 10 + k}`)));
    const r = await j.read('s', 255n, { maxBytes: 10 << 20 });
    assert.equal(r.data.readBigInt64BE(0), 250n);
    assert.equal(r.nextOffset, 500n);
    await j.close();
  }));

test('deleteRecordsBefore removes whole segments below and persists the start offset', () =>
  withDir(async (dir) => {
    let j = await openTestJournal(dir);
    await j.createShard('s', { engine: EngineKind.Segment, config: SMALL });
    await fill(j, 's', 150);
    const before = (await logFiles(dir, 's')).length;
    await j.deleteRecordsBefore('s', 100n);
    assert.ok((await logFiles(dir, 's')).length < before);
    await j.close();
    j = await openTestJournal(dir);
    assert.equal(await j.earliestOffset('s'), 100n);
    await assert.rejects(j.read('s', 99n), (e: unknown) => e instanceof RobustError && e.code === ErrorCode.OffsetOutOfRange);
    await j.close();
  }));
