import { open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '@robustmq/common';
import { wrapFsError } from './fs-util.js';
import { BATCH_HEADER_BYTES, BATCH_LOG_OVERHEAD, BatchField } from './record-batch.js';
import { OffsetIndex, TimeIndex } from './segment-index.js';
import type { ReadBufferPool } from './read-buffers.js';

/** Kafka-style file stem: the base offset as 20 zero-padded digits. */
export function segmentStem(baseOffset: bigint): string {
  return baseOffset.toString().padStart(20, '0');
}

/** A batch found by a scan: where it is and what its header says. */
export interface ScannedBatch {
  position: number;
  size: number;
  baseOffset: bigint;
  /** Offset after the batch. */
  endOffset: bigint;
  maxTimestamp: number;
  /** The whole batch (a view into the scan's read buffer). */
  bytes: Buffer;
}

const SCAN_CHUNK_BYTES = 1024 * 1024;

/**
 * Checks the framing of the batch at `pos` in `buf` (which must hold at least its header).
 * Returns null when fine, else the reason. CRC is checked only if `verifyCrc` and the whole batch is present.
 */
export function batchFramingProblem(buf: Buffer, pos: number, maxSize: number, verifyCrc: boolean): string | null {
  const size = buf.readInt32BE(pos + BatchField.BatchLength) + BATCH_LOG_OVERHEAD;
  if (size < BATCH_HEADER_BYTES) return `batch length ${size - BATCH_LOG_OVERHEAD} too small`;
  if (size > maxSize) return `batch length ${size - BATCH_LOG_OVERHEAD} runs past the end of the data`;
  if (buf[pos + BatchField.Magic] !== 2) return `bad magic ${buf[pos + BatchField.Magic]}`;
  if (buf.readInt32BE(pos + BatchField.LastOffsetDelta) < 0) return 'negative last offset delta';
  if (verifyCrc && pos + size <= buf.length) {
    const stored = buf.readUInt32BE(pos + BatchField.Crc);
    if (crc32c(buf.subarray(pos + BatchField.Attributes, pos + size)) !== stored) return 'crc mismatch';
  }
  return null;
}

/**
 * Reads exactly `length` bytes at `position` into one buffer (fewer only at end of file), taken
 * from `pool` when given (the result is then a view of a pooled buffer).
 */
export async function readAt(fh: FileHandle, position: number, length: number, pool?: ReadBufferPool): Promise<Buffer> {
  const buf = pool === undefined ? Buffer.allocUnsafe(length) : pool.take(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === buf.length ? buf : buf.subarray(0, done);
}

/**
 * Walks the batches of a log file in [start, end), reading in chunks. Stops at the end, at the
 * first bad batch (framing; CRC if `verifyCrc`; base offsets must follow on exactly if
 * `contiguous`, else only increase), or when `visit` returns false. Returns the position after
 * the last good batch and the problem that stopped the walk, if any.
 */
export async function scanBatches(
  fh: FileHandle,
  start: number,
  end: number,
  opts: { verifyCrc: boolean; contiguous: boolean },
  visit: (b: ScannedBatch) => boolean | undefined,
): Promise<{ validEnd: number; problem: string | null }> {
  let pos = start;
  let expected: bigint | null = null;
  let chunk: Buffer = Buffer.alloc(0);
  let chunkPos = start;
  while (pos < end) {
    let off = pos - chunkPos;
    if (off + BATCH_HEADER_BYTES > chunk.length) {
      chunk = await readAt(fh, pos, Math.min(end - pos, SCAN_CHUNK_BYTES));
      chunkPos = pos;
      off = 0;
      if (chunk.length < BATCH_HEADER_BYTES) return { validEnd: pos, problem: 'truncated batch header' };
    }
    const problem = batchFramingProblem(chunk, off, end - pos, false);
    if (problem) return { validEnd: pos, problem };
    const size = chunk.readInt32BE(off + BatchField.BatchLength) + BATCH_LOG_OVERHEAD;
    if (off + size > chunk.length) {
      chunk = await readAt(fh, pos, Math.min(end - pos, Math.max(SCAN_CHUNK_BYTES, size)));
      chunkPos = pos;
      off = 0;
      if (chunk.length < size) return { validEnd: pos, problem: 'truncated batch' };
    }
    if (opts.verifyCrc && batchFramingProblem(chunk, off, end - pos, true)) return { validEnd: pos, problem: 'crc mismatch' };
    const baseOffset = chunk.readBigInt64BE(off);
    if (expected !== null && (opts.contiguous ? baseOffset !== expected : baseOffset < expected)) {
      return { validEnd: pos, problem: `base offset ${baseOffset} where ${expected} was expected` };
    }
    const endOffset = baseOffset + BigInt(chunk.readInt32BE(off + BatchField.LastOffsetDelta) + 1);
    expected = endOffset;
    const maxTimestamp = Number(chunk.readBigInt64BE(off + BatchField.MaxTimestamp));
    const keepGoing = visit({ position: pos, size, baseOffset, endOffset, maxTimestamp, bytes: chunk.subarray(off, off + size) });
    pos += size;
    if (keepGoing === false) break;
  }
  return { validEnd: pos, problem: null };
}

/**
 * One segment: `<base>.log` plus its sparse indexes. Only the last segment of a shard is active
 * (appended to); `size` is the number of bytes readers may see. A deleted segment's handle is
 * closed once its last reader is done.
 */
export class Segment {
  readonly baseOffset: bigint;
  readonly dir: string;
  readonly logPath: string;
  readonly fh: FileHandle;
  /** Readable (committed) bytes. */
  size: number;
  /** Offset after the last batch. */
  nextOffset: bigint;
  maxTimestamp = Number.NEGATIVE_INFINITY;
  index = new OffsetIndex();
  timeIndex = new TimeIndex();
  /** Bytes appended since the last index entry. */
  bytesSinceIndex = 0;
  /** When the segment was created (or opened), for age-based rolling. */
  createdMs = Date.now();
  sealed = false;
  /**
   * Bytes [0, verifiedEnd) passed a CRC check in this process — on append (the journal checks
   * every batch before writing it) or on an earlier read — so reads need not check them again.
   */
  verifiedEnd = 0;
  /** Set while a rolled segment's indexes and data are written and synced in the background. */
  sealing: Promise<void> | undefined;
  private readers = 0;
  private deleted = false;

  private constructor(dir: string, baseOffset: bigint, fh: FileHandle, size: number) {
    this.dir = dir;
    this.baseOffset = baseOffset;
    this.logPath = join(dir, `${segmentStem(baseOffset)}.log`);
    this.fh = fh;
    this.size = size;
    this.nextOffset = baseOffset;
  }

  get indexPath(): string {
    return join(this.dir, `${segmentStem(this.baseOffset)}.index`);
  }

  get timeIndexPath(): string {
    return join(this.dir, `${segmentStem(this.baseOffset)}.timeindex`);
  }

  static async create(dir: string, baseOffset: bigint): Promise<Segment> {
    const path = join(dir, `${segmentStem(baseOffset)}.log`);
    try {
      const fh = await open(path, 'w+');
      return new Segment(dir, baseOffset, fh, 0);
    } catch (err) {
      throw wrapFsError(err, `create ${path}`);
    }
  }

  static async open(dir: string, baseOffset: bigint): Promise<Segment> {
    const path = join(dir, `${segmentStem(baseOffset)}.log`);
    try {
      const fh = await open(path, 'r+');
      const st = await fh.stat();
      return new Segment(dir, baseOffset, fh, st.size);
    } catch (err) {
      throw wrapFsError(err, `open ${path}`);
    }
  }

  /** Reads exactly `length` bytes at `position` (fewer only at end of file), into a buffer of `pool` if given. */
  readAt(position: number, length: number, pool?: ReadBufferPool): Promise<Buffer> {
    return readAt(this.fh, position, length, pool);
  }

  /** Runs `fn` as a reader: the file handle stays open until it finishes, even if the segment is deleted. */
  async withReader<T>(fn: () => Promise<T>): Promise<T> {
    this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      if (this.deleted && this.readers === 0) await this.fh.close().catch(() => {});
    }
  }

  /** Walks the batches in [start, end) of the log; see scanBatches. */
  scan(
    start: number,
    end: number,
    verifyCrc: boolean,
    visit: (b: ScannedBatch) => boolean | undefined,
  ): Promise<{ validEnd: number; problem: string | null }> {
    return scanBatches(this.fh, start, end, { verifyCrc, contiguous: true }, visit);
  }

  /**
   * Rebuilds indexes, nextOffset and maxTimestamp from the log. Returns where valid data ends and
   * why the scan stopped early (null if the whole file is valid).
   */
  async rebuild(indexIntervalBytes: number, fileSize: number): Promise<{ validEnd: number; problem: string | null }> {
    this.index = new OffsetIndex();
    this.timeIndex = new TimeIndex();
    this.bytesSinceIndex = 0;
    this.nextOffset = this.baseOffset;
    this.maxTimestamp = Number.NEGATIVE_INFINITY;
    const r = await this.scan(0, fileSize, true, (b) => {
      if (b.position === 0 && b.baseOffset !== this.baseOffset) return false;
      this.noteBatch(b.position, b.size, b.baseOffset, b.endOffset, b.maxTimestamp, indexIntervalBytes);
      return true;
    });
    if (r.problem === null && r.validEnd < fileSize) {
      return { validEnd: r.validEnd, problem: `first batch does not start at base offset ${this.baseOffset}` };
    }
    return r;
  }

  /** Updates in-memory indexes and counters for a batch written at `position`. */
  noteBatch(position: number, size: number, baseOffset: bigint, endOffset: bigint, maxTimestamp: number, indexIntervalBytes: number): void {
    if (this.bytesSinceIndex >= indexIntervalBytes) {
      const rel = Number(baseOffset - this.baseOffset);
      this.index.append(rel, position);
      if (Number.isFinite(this.maxTimestamp)) this.timeIndex.maybeAppend(this.maxTimestamp, rel);
      this.bytesSinceIndex = 0;
    }
    this.bytesSinceIndex += size;
    this.nextOffset = endOffset;
    if (maxTimestamp > this.maxTimestamp) this.maxTimestamp = maxTimestamp;
  }

  /** Adds the closing time-index entry (max timestamp, end offset) so the maximum survives a restart. */
  private closeTimeIndex(): void {
    if (Number.isFinite(this.maxTimestamp)) this.timeIndex.seal(this.maxTimestamp, Number(this.nextOffset - this.baseOffset));
  }

  /** Writes both index files (and fsyncs them with the log when `sync`). */
  async writeIndexes(sync: boolean): Promise<void> {
    this.closeTimeIndex();
    for (const [path, bytes] of [
      [this.indexPath, this.index.toBytes()],
      [this.timeIndexPath, this.timeIndex.toBytes()],
    ] as const) {
      try {
        const fh = await open(path, 'w');
        try {
          await fh.writeFile(bytes);
          if (sync) await fh.sync();
        } finally {
          await fh.close();
        }
      } catch (err) {
        throw wrapFsError(err, `write ${path}`);
      }
    }
    if (sync) await this.fh.datasync();
  }

  /**
   * Loads stored indexes if they are present and consistent with the log; returns false if they
   * must be rebuilt. `endOffset` is the known end (next segment's base) for sealed segments.
   */
  async loadIndexes(endOffset: bigint | null): Promise<boolean> {
    let indexBytes: Buffer;
    let timeBytes: Buffer;
    try {
      indexBytes = await readFile(this.indexPath);
      timeBytes = await readFile(this.timeIndexPath);
    } catch {
      return false;
    }
    const index = OffsetIndex.fromBytes(indexBytes, this.size);
    const timeIndex = TimeIndex.fromBytes(timeBytes);
    if (!index || !timeIndex) return false;
    if (this.size > 0 && timeIndex.length === 0) return false;
    // The last entry must point at a batch with the offset it claims (catches stale indexes).
    if (index.length > 0) {
      const head = await this.readAt(index.lastPosition(), BATCH_HEADER_BYTES);
      if (head.length < BATCH_HEADER_BYTES || head.readBigInt64BE(0) !== this.baseOffset + BigInt(index.lastRelOffset())) return false;
    }
    if (endOffset !== null && timeIndex.lastRelOffset() !== Number(endOffset - this.baseOffset) && this.size > 0) return false;
    this.index = index;
    this.timeIndex = timeIndex;
    this.maxTimestamp = timeIndex.lastTimestamp();
    if (endOffset !== null) this.nextOffset = endOffset;
    return true;
  }

  async truncate(size: number): Promise<void> {
    await this.fh.truncate(size);
    this.size = size;
  }

  /** Closes the file (after in-flight reads) and removes the segment's files. */
  async destroy(): Promise<void> {
    this.deleted = true;
    for (const p of [this.logPath, this.indexPath, this.timeIndexPath]) await unlink(p).catch(() => {});
    if (this.readers === 0) await this.fh.close().catch(() => {});
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => {});
  }
}
