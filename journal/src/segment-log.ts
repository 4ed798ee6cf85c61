import { fdatasync, ftruncateSync, writeSync, writevSync } from 'node:fs';
import { promisify } from 'node:util';
import { mkdir, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RobustError, type Logger } from '@robustmq/common';
import { FsyncPolicy, type JournalConfig, type ShardConfig } from './config.js';
import { CorruptSegmentError } from './errors.js';
import { fsyncDir, wrapFsError, writeFileAtomic } from './fs-util.js';
import { GroupCommitQueue } from './group-commit.js';
import type { JournalMetrics } from './metrics.js';
import { BATCH_HEADER_BYTES, BATCH_LOG_OVERHEAD, BatchField, decodeRecordBatch } from './record-batch.js';
import { Segment, batchFramingProblem } from './segment.js';
import { ReadBufferPool } from './read-buffers.js';
import { assignOffsets, checkOffset, type AppendInput, type AppendResult, type EngineReadResult } from './storage-engine.js';

const CLEAN_MARKER = '.clean';
const fdatasyncAsync = promisify(fdatasync);

/** Writes all of `bufs` at `position` synchronously (a short write is continued, as the kernel may cut one). */
function writeAllSync(fd: number, bufs: Buffer[], total: number, position: number): void {
  let done = bufs.length === 1 ? writeSync(fd, bufs[0]!, 0, total, position) : writevSync(fd, bufs, position);
  while (done < total) {
    const rest = Buffer.concat(bufs).subarray(done);
    const n = writeSync(fd, rest, 0, rest.length, position + done);
    if (n === 0) throw new RobustError(ErrorCode.StorageIo, `short write: ${done} of ${total} bytes`);
    done += n;
  }
}
/** Buffers of large reads, shared by every shard of the process (see ReadBufferPool). */
const readBuffers = new ReadBufferPool();
const LOG_START_FILE = 'log-start-offset';

/**
 * One shard of the segment engine: a directory of segments, the last one active.
 *
 * How this works: appends go through a GroupCommitQueue, so they are serialized and every batch
 * waiting while a write+fsync runs is written by the next single `writev` (and covered by one
 * fsync under policy `always`). Offsets are assigned by overwriting each batch's baseOffset just
 * before the write. `hw` (next offset) and the active segment's `size` move only after the write
 * (and fsync) completed, so readers never see bytes that could still vanish. A failed write is
 * truncated away; if even that fails the shard refuses appends until reopened.
 */
export class SegmentLog {
  readonly name: string;
  readonly dir: string;
  config: JournalConfig;
  overrides: ShardConfig;
  segments: Segment[] = [];
  logStart = 0n;
  /** High watermark: the next offset to be written; everything below is readable. */
  hw = 0n;
  private readonly log: Logger;
  private readonly metrics: JournalMetrics;
  private readonly queue: GroupCommitQueue<AppendInput, AppendResult>;
  private readonly timers: NodeJS.Timeout[] = [];
  private dirty = false;
  private failed: RobustError | null = null;
  private closed = false;

  private constructor(name: string, dir: string, config: JournalConfig, overrides: ShardConfig, log: Logger, metrics: JournalMetrics) {
    this.name = name;
    this.dir = dir;
    this.config = config;
    this.overrides = overrides;
    this.log = log.child({ shard: name });
    this.metrics = metrics;
    this.queue = new GroupCommitQueue((items) => this.writeGroup(items), { failQueuedOnError: true });
  }

  get active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  /** Opens (recovering) or, with `fresh`, creates the shard directory. */
  static async open(
    name: string,
    dir: string,
    config: JournalConfig,
    overrides: ShardConfig,
    log: Logger,
    metrics: JournalMetrics,
    fresh: boolean,
  ): Promise<SegmentLog> {
    const s = new SegmentLog(name, dir, config, overrides, log, metrics);
    try {
      if (fresh) await rm(dir, { recursive: true, force: true }); // leftovers of a crashed delete
      await mkdir(dir, { recursive: true });
      await s.recover();
    } catch (err) {
      for (const seg of s.segments) await seg.close();
      throw wrapFsError(err, `open shard ${name} in ${dir}`);
    }
    s.startTimers();
    return s;
  }

  private async recover(): Promise<void> {
    const files = await readdir(this.dir);
    const bases = files
      .filter((f) => /^\d{20}\.log$/.test(f))
      .map((f) => BigInt(f.slice(0, 20)))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    try {
      this.logStart = BigInt((await readFile(join(this.dir, LOG_START_FILE), 'utf8')).trim());
    } catch {
      this.logStart = 0n;
    }
    const clean = files.includes(CLEAN_MARKER);
    if (clean) {
      await unlink(join(this.dir, CLEAN_MARKER));
      await fsyncDir(this.dir);
    }
    if (bases.length === 0) {
      this.segments.push(await Segment.create(this.dir, this.logStart));
      await fsyncDir(this.dir);
    }
    for (let i = 0; i < bases.length; i++) {
      const seg = await Segment.open(this.dir, bases[i]!);
      this.segments.push(seg);
      const nextBase = bases[i + 1] ?? null;
      if (nextBase !== null) {
        seg.sealed = true;
        if (!(await seg.loadIndexes(nextBase))) {
          const r = await seg.rebuild(this.config.indexIntervalBytes, seg.size);
          if (r.problem) {
            this.log.warn(
              { file: seg.logPath, position: r.validEnd, reason: r.problem },
              'corrupt sealed segment; later data stays readable',
            );
          }
          seg.nextOffset = nextBase;
          await seg.writeIndexes(true);
          this.log.info({ file: seg.logPath }, 'segment index rebuilt');
        }
      } else {
        await this.recoverActive(seg, clean);
      }
    }
    this.hw = this.active.nextOffset;
    const first = this.segments[0]!.baseOffset;
    if (this.logStart < first) this.logStart = first;
    if (this.logStart > this.hw) this.logStart = this.hw;
  }

  /** The active segment after a clean close: trust the indexes and check the tail; else rescan it all. */
  private async recoverActive(seg: Segment, clean: boolean): Promise<void> {
    const fileSize = seg.size;
    let r: { validEnd: number; problem: string | null };
    if (clean && (await seg.loadIndexes(null))) {
      const from = seg.index.lastPosition();
      seg.nextOffset = seg.baseOffset + BigInt(seg.index.lastRelOffset());
      seg.bytesSinceIndex = 0;
      r = await seg.scan(from, fileSize, true, (b) => {
        seg.noteBatch(b.position, b.size, b.baseOffset, b.endOffset, b.maxTimestamp, this.config.indexIntervalBytes);
      });
    } else {
      r = await seg.rebuild(this.config.indexIntervalBytes, fileSize);
    }
    if (r.validEnd < fileSize) {
      const bytes = fileSize - r.validEnd;
      this.log.warn(
        { file: seg.logPath, position: r.validEnd, bytes, reason: r.problem ?? 'trailing bytes' },
        'truncating torn or corrupt log tail',
      );
      this.metrics.recoveryTruncatedBytes.inc({ engine: 'segment' }, bytes);
      seg.index.truncateToPosition(r.validEnd);
      seg.timeIndex.truncateToRelOffset(Number(seg.nextOffset - seg.baseOffset) + 1);
      await seg.truncate(r.validEnd);
      await seg.fh.datasync();
    }
  }

  private startTimers(): void {
    if (this.config.fsyncPolicy === FsyncPolicy.Interval) {
      this.timers.push(setInterval(() => void this.syncIfDirty(), this.config.fsyncIntervalMs).unref());
    }
    if (this.config.retentionMs > 0 || this.config.retentionBytes > 0) {
      this.timers.push(setInterval(() => void this.enforceRetention(), this.config.retentionCheckIntervalMs).unref());
    }
  }

  /** New settings: timers restart with them and retention is enforced at once. */
  async reconfigure(config: JournalConfig, overrides: ShardConfig): Promise<void> {
    if (this.closed) throw new RobustError(ErrorCode.EngineClosed, `shard ${this.name} is closed`);
    this.config = config;
    this.overrides = overrides;
    this.stopTimers();
    this.startTimers();
    await this.enforceRetention();
  }

  private async syncIfDirty(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    try {
      await this.active.fh.datasync();
      this.metrics.fsyncs.inc({ engine: 'segment' });
    } catch (err) {
      this.log.warn({ err }, 'interval fsync failed');
    }
  }

  // -------------------------------------------------------------------------------------------
  // writes

  append(input: AppendInput): Promise<AppendResult> {
    try {
      const now = this.appendNow(input);
      if (now !== undefined) return Promise.resolve(now);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.queue.push(input);
  }

  /**
   * The fast path: nothing queued, no fsync to wait for, no roll — the write is one synchronous
   * page-cache copy, so the append completes here. Undefined when the queue must take it.
   */
  appendNow(input: AppendInput): AppendResult | undefined {
    if (this.closed) throw new RobustError(ErrorCode.EngineClosed, `shard ${this.name} is closed`);
    if (this.failed) throw this.failed;
    if (!this.config.inlineWrites || this.config.fsyncPolicy === FsyncPolicy.Always || this.queue.busy || this.mustRoll(input.buf.length))
      return undefined;
    try {
      const res = this.place(input, this.active.size);
      this.writeInline(this.active, [input.buf], input.buf.length);
      return res;
    } catch (err) {
      throw wrapFsError(err, `append to shard ${this.name}`);
    }
  }

  private mustRoll(bytes: number, writePos = this.active.size): boolean {
    if (writePos === 0) return false;
    return writePos + bytes > this.config.segmentBytes || Date.now() - this.active.createdMs >= this.config.segmentMs;
  }

  /** Assigns offsets to `item` written at `writePos` of the active segment and indexes its batches. */
  private place(item: AppendInput, writePos: number): AppendResult {
    const active = this.active;
    const res = assignOffsets(item, active.nextOffset);
    for (const b of item.batches) {
      const base = item.buf.readBigInt64BE(b.position);
      active.noteBatch(
        writePos + b.position,
        b.size,
        base,
        base + BigInt(b.lastOffsetDelta + 1),
        b.maxTimestamp,
        this.config.indexIntervalBytes,
      );
    }
    return res;
  }

  private async writeGroup(items: AppendInput[]): Promise<(AppendResult | Error)[]> {
    const results: (AppendResult | Error)[] = [];
    let part: Buffer[] = [];
    let partResults: AppendResult[] = [];
    const flushPart = async (): Promise<void> => {
      if (part.length === 0) return;
      await this.writePart(part);
      results.push(...partResults);
      part = [];
      partResults = [];
    };
    try {
      if (this.failed) throw this.failed;
      let writePos = this.active.size;
      for (const item of items) {
        if (this.mustRoll(item.buf.length, writePos)) {
          await flushPart();
          await this.roll();
          writePos = 0;
        }
        partResults.push(this.place(item, writePos));
        writePos += item.buf.length;
        part.push(item.buf);
      }
      await flushPart();
    } catch (err) {
      const e = wrapFsError(err, `append to shard ${this.name}`);
      while (results.length < items.length) results.push(e);
    }
    return results;
  }

  /** Writes `bufs` at the end of the active segment; on failure truncates them away again. */
  private async writePart(bufs: Buffer[]): Promise<void> {
    const seg = this.active;
    const total = bufs.reduce((n, b) => n + b.length, 0);
    if (this.config.inlineWrites && this.config.fsyncPolicy !== FsyncPolicy.Always) {
      this.writeInline(seg, bufs, total);
      return;
    }
    const start = seg.size;
    const prevMax = seg.maxTimestamp;
    try {
      if (this.config.inlineWrites) writeAllSync(seg.fh.fd, bufs, total, start);
      else {
        const { bytesWritten } = bufs.length === 1 ? await seg.fh.write(bufs[0]!, 0, total, start) : await seg.fh.writev(bufs, start);
        if (bytesWritten !== total) throw new RobustError(ErrorCode.StorageIo, `short write: ${bytesWritten} of ${total} bytes`);
      }
      if (this.config.fsyncPolicy === FsyncPolicy.Always) {
        await fdatasyncAsync(seg.fh.fd); // the callback API: ~25 µs less than FileHandle.datasync here
        this.metrics.fsyncs.inc({ engine: 'segment' });
      } else this.dirty = true;
    } catch (err) {
      await this.undoWrite(seg, start, prevMax, () => seg.fh.truncate(start));
      throw err;
    }
    this.written(seg, start, total);
  }

  /** The synchronous page-cache write of the inline path (no fsync to wait for). */
  private writeInline(seg: Segment, bufs: Buffer[], total: number): void {
    const start = seg.size;
    const prevMax = seg.maxTimestamp;
    try {
      writeAllSync(seg.fh.fd, bufs, total, start);
    } catch (err) {
      void this.undoWrite(seg, start, prevMax, () => ftruncateSync(seg.fh.fd, start));
      throw err;
    }
    this.dirty = true;
    this.written(seg, start, total);
  }

  private written(seg: Segment, start: number, total: number): void {
    if (seg.verifiedEnd === start) seg.verifiedEnd = start + total;
    seg.size = start + total;
    this.hw = seg.nextOffset;
  }

  /** Forgets the index entries of a failed write and truncates its bytes away. */
  private async undoWrite(seg: Segment, start: number, prevMax: number, truncate: () => unknown): Promise<void> {
    seg.index.truncateToPosition(start);
    seg.timeIndex.truncateToRelOffset(Number(this.hw - seg.baseOffset) + 1);
    seg.nextOffset = this.hw;
    seg.maxTimestamp = prevMax;
    try {
      await truncate();
    } catch (truncErr) {
      this.failed = wrapFsError(truncErr, `truncate ${seg.logPath} after a failed write`);
      this.log.error({ err: truncErr, file: seg.logPath }, 'cannot undo failed write; shard refuses appends until reopened');
    }
  }

  private async roll(): Promise<void> {
    const old = this.active;
    old.sealed = true;
    const seg = await Segment.create(this.dir, old.nextOffset);
    // A sync-per-append shard acknowledges appends in the new file: its name must be durable first.
    if (this.config.fsyncPolicy === FsyncPolicy.Always) await fsyncDir(this.dir);
    this.segments.push(seg);
    // The sealed segment's index files — and for the other policies its data (up to a whole
    // segment of dirty pages) and the directory — are written and synced off the append path.
    // A crash before that only costs an index rebuild on the next start.
    old.sealing = this.seal(old);
    this.metrics.segmentsRolled.inc();
    this.log.info({ file: seg.logPath, baseOffset: seg.baseOffset.toString() }, 'segment rolled');
    void this.enforceRetention();
  }

  /** Deletes whole sealed segments beyond retentionMs / retentionBytes or below logStart. */
  private async seal(seg: Segment): Promise<void> {
    try {
      await seg.writeIndexes(true);
      if (this.config.fsyncPolicy !== FsyncPolicy.Always) await fsyncDir(this.dir);
    } catch (err) {
      this.log.warn({ err, file: seg.logPath }, 'sealing a rolled segment failed; its indexes are rebuilt on the next start');
    } finally {
      seg.sealing = undefined;
    }
  }

  async enforceRetention(now = Date.now()): Promise<void> {
    const { retentionMs, retentionBytes } = this.config;
    let total = this.segments.reduce((n, s) => n + s.size, 0);
    while (this.segments.length > 1 && !this.closed) {
      const s = this.segments[0]!;
      const expired = retentionMs > 0 && Number.isFinite(s.maxTimestamp) && s.maxTimestamp < now - retentionMs;
      const oversize = retentionBytes > 0 && total - s.size >= retentionBytes;
      const deleted = s.nextOffset <= this.logStart;
      if (!expired && !oversize && !deleted) break;
      this.segments.shift();
      total -= s.size;
      const next = this.segments[0]!.baseOffset;
      if (this.logStart < next) this.logStart = next;
      await s.sealing;
      await s.destroy();
      this.metrics.segmentsDeleted.inc();
      this.log.info({ file: s.logPath, reason: deleted ? 'deleteRecords' : expired ? 'retentionMs' : 'retentionBytes' }, 'segment deleted');
    }
  }

  async deleteRecordsBefore(offset: bigint): Promise<bigint> {
    checkOffset(this.name, offset, this.logStart, this.hw);
    if (offset > this.logStart) {
      await writeFileAtomic(join(this.dir, LOG_START_FILE), offset.toString());
      this.logStart = offset;
      await this.enforceRetention();
    }
    return this.logStart;
  }

  // -------------------------------------------------------------------------------------------
  // reads

  /** The segment containing `offset` (largest base ≤ offset). */
  private segmentFor(offset: bigint): Segment {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (this.segments[mid]!.baseOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return this.segments[lo]!;
  }

  async read(from: bigint, maxBytes: number): Promise<EngineReadResult> {
    checkOffset(this.name, from, this.logStart, this.hw);
    if (from === this.hw) return { data: Buffer.alloc(0), nextOffset: from };
    const seg = this.segmentFor(from);
    return seg.withReader(() => this.readSegment(seg, from, maxBytes));
  }

  private corrupt(seg: Segment, position: number, reason: string): CorruptSegmentError {
    this.metrics.corruptReads.inc({ engine: 'segment' });
    return new CorruptSegmentError(seg.logPath, position, reason);
  }

  /**
   * One read into one buffer: from the index entry at or before `from`, skip to the batch that
   * contains `from`, then return whole batches up to maxBytes as a view of that buffer. Large
   * buffers come from the read pool and go back to it through the result's `release`.
   */
  private async readSegment(seg: Segment, from: bigint, maxBytes: number): Promise<EngineReadResult> {
    const end = seg.size;
    let bufPos = seg.index.lookup(Number(from - seg.baseOffset)).position;
    let buf = await seg.readAt(bufPos, Math.min(end - bufPos, maxBytes + this.config.indexIntervalBytes), readBuffers);
    let off = 0;
    // 1. find the batch containing `from`
    let size: number;
    for (;;) {
      if (off + BATCH_HEADER_BYTES > buf.length) {
        const pos = bufPos + off;
        readBuffers.releaser(buf)(); // nothing of it was returned
        if (pos >= end) return { data: Buffer.alloc(0), nextOffset: seg.nextOffset };
        buf = await seg.readAt(pos, Math.min(end - pos, maxBytes + BATCH_HEADER_BYTES), readBuffers);
        bufPos = pos;
        off = 0;
        if (buf.length < BATCH_HEADER_BYTES) throw this.corrupt(seg, pos, 'truncated batch header');
      }
      const problem = batchFramingProblem(buf, off, end - bufPos - off, false);
      if (problem) throw this.corrupt(seg, bufPos + off, problem);
      size = buf.readInt32BE(off + BatchField.BatchLength) + BATCH_LOG_OVERHEAD;
      const endOffset = buf.readBigInt64BE(off) + BigInt(buf.readInt32BE(off + BatchField.LastOffsetDelta) + 1);
      if (endOffset > from) break;
      off += size;
    }
    // 2. make sure the buffer holds the first batch whole and as much as maxBytes allows
    const first = bufPos + off;
    const want = Math.max(size, Math.min(end - first, maxBytes));
    if (buf.length - off < want) {
      readBuffers.releaser(buf)();
      buf = await seg.readAt(first, want, readBuffers);
      bufPos = first;
      off = 0;
    }
    // 3. take whole batches
    let cur = off;
    let expected: bigint | null = null;
    while (cur + BATCH_HEADER_BYTES <= buf.length) {
      const n = buf.readInt32BE(cur + BatchField.BatchLength) + BATCH_LOG_OVERHEAD;
      if (cur > off && cur + n - off > maxBytes) break;
      if (cur + n > buf.length && n >= BATCH_HEADER_BYTES) break;
      const base = buf.readBigInt64BE(cur);
      const at = bufPos + cur;
      const verify = this.config.verifyReads && at + n > seg.verifiedEnd;
      const problem =
        batchFramingProblem(buf, cur, end - bufPos - cur, verify) ??
        (expected !== null && base !== expected ? `base offset ${base} where ${expected} was expected` : null);
      if (problem) {
        if (cur === off) throw this.corrupt(seg, bufPos + cur, problem);
        break; // return the good batches; the next read reports the damage
      }
      if (verify && at === seg.verifiedEnd) seg.verifiedEnd = at + n;
      expected = base + BigInt(buf.readInt32BE(cur + BatchField.LastOffsetDelta) + 1);
      cur += n;
    }
    if (expected === null) throw this.corrupt(seg, first, 'truncated batch');
    return { data: buf.subarray(off, cur), nextOffset: expected, release: readBuffers.releaser(buf) };
  }

  async offsetForTimestamp(ts: number): Promise<bigint | null> {
    for (const seg of this.segments) {
      if (!(seg.maxTimestamp >= ts)) continue;
      const found = await seg.withReader(async () => {
        const rel = seg.timeIndex.lookup(ts);
        const start = seg.index.lookup(rel).position;
        let hit: bigint | null = null;
        const r = await seg.scan(start, seg.size, false, (b) => {
          if (b.maxTimestamp < ts) return true;
          for (const rec of decodeRecordBatch(b.bytes, { verifyCrc: false }).records) {
            if (rec.timestamp >= ts && rec.offset >= this.logStart) {
              hit = rec.offset;
              return false;
            }
          }
          return true;
        });
        if (hit === null && r.problem) throw this.corrupt(seg, r.validEnd, r.problem);
        return hit;
      });
      if (found !== null) return found;
    }
    return null;
  }

  stats(): { bytes: number; records: number } {
    return { bytes: this.segments.reduce((n, s) => n + s.size, 0), records: Number(this.hw - this.logStart) };
  }

  // -------------------------------------------------------------------------------------------
  // lifecycle

  private stopTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers.length = 0;
  }

  /** Flushes everything, writes the active indexes and the clean-shutdown marker. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopTimers();
    await this.queue.idle();
    try {
      if (!this.failed) {
        await this.active.writeIndexes(true);
        await writeFile(join(this.dir, CLEAN_MARKER), '');
        await fsyncDir(this.dir);
      }
    } catch (err) {
      this.log.warn({ err }, 'clean close failed; the next open rebuilds indexes');
    }
    for (const seg of this.segments) {
      await seg.sealing;
      await seg.close();
    }
  }

  /** Closes and removes the shard's directory. */
  async destroy(): Promise<void> {
    this.closed = true;
    this.stopTimers();
    await this.queue.idle();
    for (const seg of this.segments) {
      await seg.sealing;
      await seg.destroy();
    }
    await rm(this.dir, { recursive: true, force: true });
  }
}
