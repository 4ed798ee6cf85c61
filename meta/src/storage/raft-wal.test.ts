import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, statSync, truncateSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { RaftWal } from './raft-wal.js';
import { EntryType, type Entry } from '../raft/types.js';

const log = pino({ level: 'silent' });
const ent = (index: number, term: number, text = `e${index}`): Entry => ({ index, term, type: EntryType.Normal, data: Buffer.from(text) });

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-wal-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('entries and hard state survive a reopen; an overwritten suffix stays overwritten', async (t) => {
  const dir = tmp(t);
  assert.equal(await RaftWal.isEmpty(dir), true);
  const { wal } = await RaftWal.open(dir, log);
  await wal.save([ent(1, 1), ent(2, 1), ent(3, 1)], { term: 1, vote: 1, commit: 1 }, true);
  await wal.save([ent(2, 2, 'new2'), ent(3, 2, 'new3'), ent(4, 2)], { term: 2, vote: 2, commit: 3 }, true);
  await wal.close();
  assert.equal(await RaftWal.isEmpty(dir), false);
  const { storage, recovery, wal: w2 } = await RaftWal.open(dir, log);
  t.after(() => w2.close());
  assert.deepEqual(recovery.hardState, { term: 2, vote: 2, commit: 3 });
  assert.equal(storage.lastIndex(), 4);
  const got = storage.entries(1, 5, Number.MAX_SAFE_INTEGER).map((e) => [e.index, e.term, Buffer.from(e.data).toString()]);
  assert.deepEqual(got, [
    [1, 1, 'e1'],
    [2, 2, 'new2'],
    [3, 2, 'new3'],
    [4, 2, 'e4'],
  ]);
});

test('a torn tail is truncated to the last whole record', async (t) => {
  const dir = tmp(t);
  const { wal } = await RaftWal.open(dir, log);
  await wal.save([ent(1, 1), ent(2, 1)], { term: 1, vote: 0, commit: 2 }, true);
  await wal.save([ent(3, 1, 'x'.repeat(100))], undefined, true);
  await wal.close();
  const file = join(dir, readdirSync(dir).find((f) => f.startsWith('wal-')) as string);
  const size = statSync(file).size;
  truncateSync(file, size - 30); // cut into the last record
  const { storage, recovery, wal: w2 } = await RaftWal.open(dir, log);
  assert.equal(storage.lastIndex(), 2);
  assert.ok(recovery.truncatedBytes > 0);
  // appending after recovery works and survives
  await w2.save([ent(3, 1, 'again')], undefined, true);
  await w2.close();
  const { storage: s3, wal: w3 } = await RaftWal.open(dir, log);
  t.after(() => w3.close());
  assert.equal(Buffer.from(s3.entries(3, 4, 1e9)[0]?.data ?? []).toString(), 'again');
});

test('a flipped byte ends replay at that record', async (t) => {
  const dir = tmp(t);
  const { wal } = await RaftWal.open(dir, log);
  for (let i = 1; i <= 10; i++) await wal.save([ent(i, 1, `entry-${String(i).padStart(3, '0')}`)], undefined, false);
  await wal.close();
  const file = join(dir, readdirSync(dir).find((f) => f.startsWith('wal-')) as string);
  const buf = readFileSync(file);
  const recLen = buf.length / 10;
  const at = recLen * 6 + 12; // inside record 7
  buf[at] = (buf[at] as number) ^ 0xff;
  writeFileSync(file, buf);
  const { storage, wal: w2 } = await RaftWal.open(dir, log);
  t.after(() => w2.close());
  assert.equal(storage.lastIndex(), 6);
});

test('a snapshot replaces the entries it covers and old WAL files are removed', async (t) => {
  const dir = tmp(t);
  const { wal, storage } = await RaftWal.open(dir, log, { voters: [1, 2, 3], learners: [] });
  const entries = Array.from({ length: 20 }, (_, i) => ent(i + 1, 1));
  await wal.save(entries, { term: 1, vote: 1, commit: 20 }, true);
  storage.append(entries);
  const snap = storage.createSnapshot(15, { voters: [1, 2, 3], learners: [4] }, Buffer.from('state@15'));
  await wal.saveSnapshot(snap, { term: 1, vote: 1, commit: 20 }, entries.slice(15));
  await wal.save([ent(21, 2)], { term: 2, vote: 1, commit: 21 }, true);
  await wal.close();
  assert.equal(readdirSync(dir).filter((f) => f.startsWith('wal-')).length, 1, 'old wal files deleted');
  const { storage: s2, recovery, wal: w2 } = await RaftWal.open(dir, log);
  t.after(() => w2.close());
  assert.equal(recovery.snapshot?.metadata.index, 15);
  assert.deepEqual(recovery.snapshot?.metadata.confState, { voters: [1, 2, 3], learners: [4] });
  assert.equal(Buffer.from(recovery.snapshot?.data ?? []).toString(), 'state@15');
  assert.equal(s2.firstIndex(), 16);
  assert.equal(s2.lastIndex(), 21);
  assert.equal(s2.term(21), 2);
});

test('preallocated: zeros after the last record are padding, and writing goes on in place after a reopen', async (t) => {
  const dir = tmp(t);
  const opts = { preallocateBytes: 64 * 1024 };
  const { wal } = await RaftWal.open(dir, log, undefined, opts);
  // enough records to cross half a step several times, so the fill runs while records are written
  for (let i = 1; i <= 300; i++) await wal.save([ent(i, 1, 'v'.repeat(500))], { term: 1, vote: 1, commit: i }, i % 7 === 0);
  await wal.close();
  const file = join(dir, readdirSync(dir).find((f) => f.startsWith('wal-')) as string);
  const size = statSync(file).size;
  assert.ok(size > 300 * 500, 'records written');
  assert.equal(
    readFileSync(file)
      .subarray(-1000)
      .every((b) => b === 0),
    true,
    'zero-filled ahead of the last record',
  );

  const { storage, recovery, wal: w2 } = await RaftWal.open(dir, log, undefined, opts);
  assert.equal(recovery.truncatedBytes, 0, 'padding is not a torn tail');
  assert.equal(storage.lastIndex(), 300);
  assert.deepEqual(recovery.hardState, { term: 1, vote: 1, commit: 300 });
  await w2.save([ent(301, 2, 'after-reopen')], { term: 2, vote: 1, commit: 301 }, true);
  await w2.close();
  assert.equal(statSync(file).size, size, 'the record went into the preallocated space');

  const { storage: s3, wal: w3 } = await RaftWal.open(dir, log, undefined, opts);
  t.after(() => w3.close());
  assert.equal(s3.lastIndex(), 301);
  assert.equal(Buffer.from(s3.entries(301, 302, 1e9)[0]?.data ?? []).toString(), 'after-reopen');
  assert.equal(s3.term(300), 1);
});

test('preallocated: a torn record before the zeros is cut off, not taken for padding', async (t) => {
  const dir = tmp(t);
  const opts = { preallocateBytes: 64 * 1024 };
  const { wal } = await RaftWal.open(dir, log, undefined, opts);
  await wal.save([ent(1, 1), ent(2, 1)], { term: 1, vote: 0, commit: 2 }, true);
  await wal.save([ent(3, 1, 'x'.repeat(100))], undefined, true);
  await wal.close();
  const file = join(dir, readdirSync(dir).find((f) => f.startsWith('wal-')) as string);
  const buf = readFileSync(file);
  let end = buf.length;
  while (end > 0 && buf[end - 1] === 0) end--;
  buf.fill(0, end - 30, end); // the last record's tail never reached the disk
  writeFileSync(file, buf);
  const { storage, recovery, wal: w2 } = await RaftWal.open(dir, log, undefined, opts);
  assert.equal(storage.lastIndex(), 2);
  assert.ok(recovery.truncatedBytes > 0);
  await w2.save([ent(3, 1, 'again')], undefined, true);
  await w2.close();
  const { storage: s3, wal: w3 } = await RaftWal.open(dir, log, undefined, opts);
  t.after(() => w3.close());
  assert.equal(Buffer.from(s3.entries(3, 4, 1e9)[0]?.data ?? []).toString(), 'again');
});
