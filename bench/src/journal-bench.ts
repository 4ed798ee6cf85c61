/**
 * Journal benchmark: append throughput against the raw sequential write speed of the same disk
 * (same sync policy, same bytes per write), large reads from the page cache, and the multiplexed
 * engine with very many shards. Run: `robust-bench journal [dir]` (through the dispatcher, which
 * exports `run(argv)`) or `node --expose-gc bench/dist/src/journal-bench.js [dir]`.
 * Env: BENCH_SECONDS (per append case, split over BENCH_ROUNDS alternating raw/journal rounds;
 * defaults 3 and 3), BENCH_BLOCKING_FSYNC=1 (raw `always` loop fsyncs synchronously), BENCH_SHARDS (multiplexed, default 1000000),
 * BENCH_READ_MB (data read back, default 512).
 */
import { closeSync, fdatasync, fdatasyncSync, openSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { encodeRecordBatch, EngineKind, FsyncPolicy, type Journal } from '@robustmq/journal';
import { openTestJournal } from '@robustmq/journal/testing';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const BLOCKING_FSYNC = process.env.BENCH_BLOCKING_FSYNC === '1';
const fdatasyncAsync = promisify(fdatasync);
const SHARDS = Number(process.env.BENCH_SHARDS ?? 1_000_000);
const READ_MB = Number(process.env.BENCH_READ_MB ?? 512);
let baseDir = '';

interface Row {
  case: string;
  policy: string;
  'MB/s': string;
  'records/s': string;
  'vs raw': string;
}
let rows: Row[] = [];
const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function makeBatch(recordBytes: number, records: number): Buffer {
  const value = Buffer.alloc(recordBytes, 0x61);
  return encodeRecordBatch(Array.from({ length: records }, () => ({ key: null, value })));
}

/**
 * Sequential writes of `bytesPerWrite` to a fresh file for `seconds`, fdatasync after each under
 * `always`: the system calls the journal makes for an append, made the fastest way this process
 * can — synchronous `write(2)` in a loop, and for `always` `fdatasync(2)` on the thread pool as the
 * journal does (an event loop must not block on an fsync; with BENCH_BLOCKING_FSYNC=1 the raw loop calls
 * it synchronously, which is faster on this VM by the thread hand-off).
 */
async function rawWrite(dir: string, bytesPerWrite: number, policy: FsyncPolicy, seconds: number): Promise<number> {
  const path = join(dir, `raw-${bytesPerWrite}-${policy}.bin`);
  const fd = openSync(path, 'w');
  const buf = Buffer.alloc(bytesPerWrite, 0x62);
  let pos = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    pos += writeSync(fd, buf, 0, buf.length, pos);
    if (policy === FsyncPolicy.Always) {
      if (BLOCKING_FSYNC) fdatasyncSync(fd);
      else await fdatasyncAsync(fd);
    }
  }
  const secs = (performance.now() - t0) / 1000;
  closeSync(fd);
  await rm(path);
  return pos / secs;
}

async function journalAppend(
  j: Journal,
  shard: string,
  batch: Buffer,
  inFlight: number,
  seconds: number,
): Promise<{ bytesPerSec: number; batchesPerSec: number }> {
  let batches = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const worker = async (): Promise<void> => {
    const own = Buffer.from(batch); // append rewrites baseOffset in place
    while (performance.now() < end) {
      await j.append(shard, own);
      batches++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const secs = (performance.now() - t0) / 1000;
  return { bytesPerSec: (batches * batch.length) / secs, batchesPerSec: batches / secs };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

async function appendCases(): Promise<void> {
  const dir = join(baseDir, 'append');
  // the server's defaults (1 GiB segments: a roll syncs the sealed segment in the background, as Kafka does), no retention
  const j = await openTestJournal(dir, { config: { retentionMs: -1 } });
  let n = 0;
  for (const policy of [FsyncPolicy.Never, FsyncPolicy.Always]) {
    for (const recordBytes of [100, 1024]) {
      for (const [records, inFlight] of [[1, 1], [16, 1], [256, 1], [256, 4], ...(policy === FsyncPolicy.Always ? [[1, 64]] : [])] as [
        number,
        number,
      ][]) {
        const batch = makeBatch(recordBytes, records);
        const shard = `bench-${n++}`;
        await j.createShard(shard, { engine: EngineKind.Segment, config: { fsyncPolicy: policy } });
        // raw and journal alternate ROUNDS times and each reports its median, so a slow moment
        // of the VM's disk hits both sides rather than one
        const raws: number[] = [];
        const runs: { bytesPerSec: number; batchesPerSec: number }[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          raws.push(await rawWrite(dir, batch.length, policy, SECONDS / ROUNDS));
          runs.push(await journalAppend(j, shard, batch, inFlight, SECONDS / ROUNDS));
        }
        const raw = median(raws);
        const r = { bytesPerSec: median(runs.map((x) => x.bytesPerSec)), batchesPerSec: median(runs.map((x) => x.batchesPerSec)) };
        rows.push({
          case: `append ${recordBytes} B × ${records}/batch${inFlight > 1 ? `, ${inFlight} in flight` : ''}`,
          policy,
          'MB/s': `${fmt(r.bytesPerSec / 1e6, 1)} (raw ${fmt(raw / 1e6, 1)})`,
          'records/s': fmt(r.batchesPerSec * records),
          // with several in flight, raw (one writer, one sync per write) is not the same workload
          'vs raw': inFlight > 1 ? 'n/a' : fmt(r.bytesPerSec / raw, 2),
        });
        await j.deleteShard(shard);
      }
    }
  }
  await j.close();
}

async function readCases(): Promise<void> {
  const dir = join(baseDir, 'read');
  const j = await openTestJournal(dir, { config: { retentionMs: -1, fsyncPolicy: FsyncPolicy.Never } });
  const batch = makeBatch(1024, 256);
  for (const verifyReads of [true, false]) {
    const shard = `read-${verifyReads}`;
    await j.createShard(shard, { engine: EngineKind.Segment, config: { verifyReads } });
    let written = 0;
    const own = Buffer.from(batch);
    while (written < READ_MB * 1024 * 1024) {
      await j.append(shard, own);
      written += own.length;
    }
    const latest = await j.latestOffset(shard);
    for (const maxBytes of [1 << 20, 8 << 20]) {
      // first pass warms the page cache; time the next two
      let bytes = 0;
      let t0 = 0;
      for (let pass = 0; pass < 3; pass++) {
        if (pass === 1) t0 = performance.now();
        let next = 0n;
        while (next < latest) {
          const r = await j.read(shard, next, { maxBytes });
          if (pass > 0) bytes += r.data.length;
          next = r.nextOffset;
        }
      }
      const secs = (performance.now() - t0) / 1000;
      rows.push({
        case: `read ${fmt(READ_MB)} MiB, maxBytes ${maxBytes >> 20} MiB, verifyReads=${verifyReads}`,
        policy: 'page cache',
        'MB/s': fmt(bytes / secs / 1e6, 0),
        'records/s': fmt(((bytes / batch.length) * 256) / secs),
        'vs raw': '',
      });
    }
    await j.deleteShard(shard);
  }
  await j.close();
}

function heapAfterGc(): number {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
  return process.memoryUsage().heapUsed;
}

async function multiplexedCase(): Promise<void> {
  const dir = join(baseDir, 'multiplexed');
  const j = await openTestJournal(dir, { config: { fsyncPolicy: FsyncPolicy.Interval } });
  const heap0 = heapAfterGc();
  const batch = makeBatch(100, 1);
  const chunk = 10_000;
  const t0 = performance.now();
  for (let i = 0; i < SHARDS; i += chunk) {
    const names = Array.from({ length: Math.min(chunk, SHARDS - i) }, (_, k) => `inbox/client-${i + k}`);
    await Promise.all(names.map((name) => j.createShard(name, { engine: EngineKind.Multiplexed })));
  }
  const tCreate = performance.now();
  for (let i = 0; i < SHARDS; i += chunk) {
    const names = Array.from({ length: Math.min(chunk, SHARDS - i) }, (_, k) => `inbox/client-${i + k}`);
    await Promise.all(names.map((name) => j.append(name, Buffer.from(batch))));
  }
  const tAppend = performance.now();
  const heap1 = heapAfterGc();
  const perShard = (heap1 - heap0) / SHARDS;
  rows.push({
    case: `multiplexed: create ${fmt(SHARDS)} shards`,
    policy: 'interval',
    'MB/s': `${fmt((tCreate - t0) / 1000, 1)} s`,
    'records/s': `${fmt(SHARDS / ((tCreate - t0) / 1000))} creates/s`,
    'vs raw': '',
  });
  rows.push({
    case: `multiplexed: append 1 × 100 B to each`,
    policy: 'interval',
    'MB/s': `${fmt((tAppend - tCreate) / 1000, 1)} s`,
    'records/s': fmt(SHARDS / ((tAppend - tCreate) / 1000)),
    'vs raw': '',
  });
  rows.push({
    case: `multiplexed: heap per idle shard${(globalThis as { gc?: unknown }).gc ? '' : ' (no --expose-gc: approximate)'}`,
    policy: '',
    'MB/s': `${fmt(perShard, 0)} B`,
    'records/s': `heap ${fmt(heap1 / 1e6, 0)} MB, rss ${fmt(process.memoryUsage().rss / 1e6, 0)} MB`,
    'vs raw': '',
  });
  const tReopen = performance.now();
  await j.close();
  const j2 = await openTestJournal(dir);
  rows.push({
    case: `multiplexed: close + reopen with ${fmt(SHARDS)} shards`,
    policy: '',
    'MB/s': `${fmt((performance.now() - tReopen) / 1000, 1)} s`,
    'records/s': '',
    'vs raw': '',
  });
  await j2.close();
}

/** `robust-bench journal [dir]`: runs every case in `dir` (default a temporary directory, removed after). */
export async function run(argv: string[]): Promise<number> {
  if (argv[0] === '--help' || argv[0] === '-h') {
    console.log(
      'robust-bench journal [dir]   env: BENCH_SECONDS, BENCH_ROUNDS, BENCH_BLOCKING_FSYNC, BENCH_SHARDS, BENCH_READ_MB; node --expose-gc for exact heap',
    );
    return 0;
  }
  if ((globalThis as { gc?: unknown }).gc === undefined) {
    // the heap-per-shard case needs --expose-gc: run this file in a node that has it
    const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), ...argv], { stdio: 'inherit' });
    const [code] = (await once(child, 'exit')) as [number | null];
    return code ?? 1;
  }
  const dir = argv[0];
  baseDir = dir ?? (await mkdtemp(join(tmpdir(), 'journal-bench-')));
  rows = [];
  try {
    console.log(`journal bench in ${baseDir} (${SECONDS} s per append case)`);
    await appendCases();
    await readCases();
    await multiplexedCase();
    console.table(rows);
  } finally {
    if (dir === undefined) await rm(baseDir, { recursive: true, force: true });
  }
  return 0;
}

// still runnable on its own: node --expose-gc bench/dist/src/journal-bench.js [dir]
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  process.exitCode = await run(process.argv.slice(2));
