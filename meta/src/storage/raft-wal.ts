import { fdatasync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { open, readdir, readFile, rename, unlink, mkdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c, ErrorCode, RobustError, isErrno, type Logger } from '@robustmq/common';
import { MemoryStorage } from '../raft/storage.js';
import { EntryType, type ConfState, type Entry, type HardState, type Snapshot } from '../raft/types.js';

/**
 * Durable storage of one Raft group: a write-ahead log of entries and hard states, and the
 * latest snapshot, under one directory.
 *
 * How this works: `wal-<seq>.log` files hold records `[u32 length][u32 crc32c][body]`. A body
 * is an entry, a hard state, or a snapshot marker (entries up to its index are covered by the
 * snapshot file). Replay applies records in order; an entry at index i discards any replayed
 * entries ≥ i first, which is how a Raft log truncation is persisted without rewriting files.
 * A record that is short or fails its CRC ends replay: the file is truncated there (a torn tail
 * from a crash) with a warning. `save()` writes one buffer and fsyncs before it resolves.
 * After a snapshot, a new WAL file is started with what the snapshot does not cover and the old
 * files are deleted.
 *
 * Preallocation (`preallocateBytes`): the file is kept filled with zeros ahead of the write
 * position, in the background, so a record overwrites blocks that already exist and its fdatasync
 * flushes only data. An append that grows the file also needs the filesystem's journal committed
 * (the new size and blocks), which is slower and queues behind every other file's commit on the
 * same disk. A zero length ends replay like the end of the file: zeros after the last record are
 * padding, not a torn tail.
 */

/** The callback API: FileHandle.datasync costs ~25 µs more CPU per call here. */
const fdatasyncAsync = promisify(fdatasync);

const REC_ENTRY = 1;
const REC_HARD_STATE = 2;
const REC_SNAPSHOT = 3;
const HEADER = 8;
const SNAPSHOT_FILE = 'snapshot.bin';

export interface RaftWalRecovery {
  hardState: HardState | undefined;
  snapshot: Snapshot | undefined;
  entries: Entry[];
  truncatedBytes: number;
}

export class RaftWal {
  readonly dir: string;
  readonly #log: Logger;
  #file: FileHandle | undefined;
  #seq = 0;
  /** Where the next record goes. */
  #size = 0;
  /** Bytes of the current file known to exist (zeros beyond #size). */
  #allocated = 0;
  readonly #preallocateBytes: number;
  /** The background zero fill in progress, if any, and the range it writes. */
  #extending: Promise<void> | undefined;
  #fill = { from: 0, to: 0 };
  #closed = false;

  private constructor(dir: string, log: Logger, preallocateBytes: number) {
    this.dir = dir;
    this.#log = log;
    this.#preallocateBytes = preallocateBytes;
  }

  /**
   * Opens (creating if needed) the WAL in `dir` and returns it with a MemoryStorage holding the
   * recovered state, ready for a RawNode. `initial` is the membership of a brand-new group.
   */
  static async open(
    dir: string,
    log: Logger,
    initial?: ConfState,
    opts: { preallocateBytes?: number } = {},
  ): Promise<{ wal: RaftWal; storage: MemoryStorage; recovery: RaftWalRecovery }> {
    await mkdir(dir, { recursive: true });
    const wal = new RaftWal(dir, log, opts.preallocateBytes ?? 0);
    const recovery = await wal.#replay();
    const fresh = recovery.snapshot === undefined && recovery.entries.length === 0 && recovery.hardState === undefined;
    const storage = new MemoryStorage(fresh ? initial : undefined);
    if (fresh && initial !== undefined) {
      // A founding member starts from the bootstrap snapshot; it must be on disk before any
      // entry after it, or a crash would leave a log that starts in the middle.
      await wal.saveSnapshot(storage.snapshot(), storage.initialState().hardState, []);
    }
    if (recovery.snapshot !== undefined) storage.applySnapshot(recovery.snapshot);
    const after = recovery.entries.filter((e) => e.index > (recovery.snapshot?.metadata.index ?? 0));
    if (after.length > 0) storage.append(after);
    if (recovery.hardState !== undefined) storage.setHardState(recovery.hardState);
    return { wal, storage, recovery };
  }

  /** True when nothing was ever persisted here (a node that must bootstrap or join). */
  static async isEmpty(dir: string): Promise<boolean> {
    try {
      const files = await readdir(dir);
      return !files.some((f) => f.startsWith('wal-') || f === SNAPSHOT_FILE);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return true;
      throw err;
    }
  }

  async #replay(): Promise<RaftWalRecovery> {
    const files = (await readdir(this.dir)).filter((f) => /^wal-\d{16}\.log$/.test(f)).sort();
    const snapshot = await this.#readSnapshot();
    let hardState: HardState | undefined;
    let entries: Entry[] = [];
    let truncatedBytes = 0;
    for (const [fi, name] of files.entries()) {
      const path = join(this.dir, name);
      const buf = await readFile(path);
      let pos = 0;
      while (pos < buf.length) {
        if (pos + HEADER > buf.length) break;
        const len = buf.readUInt32LE(pos);
        const end = pos + HEADER + len;
        if (len === 0 || end > buf.length || crc32c(buf.subarray(pos + HEADER, end)) !== buf.readUInt32LE(pos + 4)) break;
        const body = buf.subarray(pos + HEADER, end);
        switch (body[0]) {
          case REC_ENTRY: {
            const e: Entry = {
              index: body.readUIntLE(1, 6),
              term: body.readUIntLE(7, 6),
              type: body[13] === 1 ? EntryType.ConfChange : EntryType.Normal,
              data: new Uint8Array(body.subarray(14)),
            };
            const first = entries[0]?.index;
            if (first !== undefined && e.index <= (entries.at(-1) as Entry).index) entries = entries.slice(0, Math.max(0, e.index - first));
            entries.push(e);
            break;
          }
          case REC_HARD_STATE:
            hardState = { term: body.readUIntLE(1, 6), vote: body.readUIntLE(7, 6), commit: body.readUIntLE(13, 6) };
            break;
          case REC_SNAPSHOT: {
            const index = body.readUIntLE(1, 6);
            entries = entries.filter((e) => e.index > index);
            break;
          }
          default:
            throw new RobustError(ErrorCode.CorruptSegment, `${path}: unknown record type ${body[0]} at position ${pos}`);
        }
        pos = end;
      }
      if (pos < buf.length && isZero(buf, pos)) {
        // Preallocated space: nothing was written there. The last file keeps it for new records.
        if (fi === files.length - 1) this.#allocated = buf.length;
      } else if (pos < buf.length) {
        const lost = buf.length - pos;
        truncatedBytes += lost;
        if (fi !== files.length - 1) {
          this.#log.error({ file: path, position: pos, bytes: lost }, 'meta wal corrupt before its last file; later files still replayed');
        } else {
          this.#log.warn({ file: path, position: pos, bytes: lost }, 'meta wal torn tail truncated');
        }
        const fh = await open(path, 'r+');
        await fh.truncate(pos);
        await fh.sync();
        await fh.close();
      }
      if (fi === files.length - 1) this.#size = pos;
    }
    this.#seq = files.length > 0 ? Number((files.at(-1) as string).slice(4, 20)) : 0;
    if (files.length === 0) await this.#startFile(this.#seq + 1);
    else {
      this.#file = await open(join(this.dir, files.at(-1) as string), 'r+');
      this.#allocated = Math.max(this.#allocated, this.#size);
    }
    if (snapshot !== undefined) entries = entries.filter((e) => e.index > snapshot.metadata.index);
    return { hardState, snapshot, entries, truncatedBytes };
  }

  async #startFile(seq: number): Promise<void> {
    await this.#extending;
    await this.#file?.close();
    this.#seq = seq;
    this.#file = await open(join(this.dir, `wal-${String(seq).padStart(16, '0')}.log`), 'w');
    this.#size = 0;
    this.#allocated = 0;
    await syncDir(this.dir);
  }

  /**
   * Zero-fills the next `preallocateBytes` of the file in the background once the write position
   * is within half of that of the allocated end. Records never go where the fill writes: until it
   * is done they go past the old end (an ordinary append), which is correct, only slower.
   */
  #maybeExtend(): void {
    const step = this.#preallocateBytes;
    if (step === 0 || this.#extending !== undefined || this.#closed || this.#allocated - this.#size > step / 2) return;
    const file = this.#file as FileHandle;
    const from = Math.max(this.#allocated, this.#size);
    this.#fill = { from, to: from + step };
    this.#extending = (async () => {
      const zeros = Buffer.alloc(Math.min(step, 1 << 20));
      for (let at = 0; at < step; at += zeros.length) await file.write(zeros, 0, Math.min(zeros.length, step - at), from + at);
      await file.datasync();
      this.#allocated = from + step;
    })()
      .catch((err: unknown) => {
        if (!this.#closed) this.#log.warn({ err, dir: this.dir }, 'meta wal preallocation failed; appending instead');
      })
      .finally(() => {
        this.#extending = undefined;
      });
  }

  /**
   * Persists what a Ready asks for, in one write, fsynced when `mustSync`. Entries may overwrite
   * a suffix of the log (replay handles that).
   */
  async save(entries: readonly Entry[], hardState: HardState | undefined, mustSync: boolean): Promise<void> {
    if (this.#closed) throw new RobustError(ErrorCode.EngineClosed, 'meta wal is closed');
    if (entries.length === 0 && hardState === undefined) return;
    // One buffer for the lot, each record framed in place (no per-record allocations).
    let size = hardState === undefined ? 0 : HEADER + HARD_STATE_BODY;
    for (const e of entries) size += HEADER + ENTRY_HEAD + e.data.byteLength;
    const buf = Buffer.allocUnsafe(size);
    let o = 0;
    for (const e of entries) o = writeEntry(buf, o, e);
    if (hardState !== undefined) writeHardState(buf, o, hardState);
    await this.#write(buf, mustSync);
  }

  async #write(buf: Buffer, sync: boolean): Promise<void> {
    const file = this.#file as FileHandle;
    try {
      // The write itself only copies into the page cache: done synchronously it costs a few µs,
      // while each trip through libuv's thread pool costs tens of µs of CPU. Only the fsync,
      // which waits for the disk, goes to the pool.
      // A record must not land where a background fill is still writing zeros.
      if (this.#extending !== undefined && this.#size < this.#fill.to && this.#size + buf.length > this.#fill.from) await this.#extending;
      let done = 0;
      while (done < buf.length) done += writeSync(file.fd, buf, done, buf.length - done, this.#size + done);
      if (sync) await fdatasyncAsync(file.fd);
    } catch (err) {
      if (isErrno(err, 'ENOSPC')) throw new RobustError(ErrorCode.StorageFull, 'meta wal: disk full', { cause: err });
      throw new RobustError(ErrorCode.StorageIo, `meta wal: write failed: ${(err as Error).message}`, { cause: err });
    }
    this.#size += buf.length;
    this.#maybeExtend();
  }

  get sizeBytes(): number {
    return this.#size;
  }

  /**
   * Stores `snap` durably (write to a temp file, fsync, rename) and starts a new WAL file with the
   * hard state and the entries after the snapshot; older WAL files are then deleted.
   */
  async saveSnapshot(snap: Snapshot, hardState: HardState, entriesAfter: readonly Entry[]): Promise<void> {
    const meta = Buffer.from(JSON.stringify({ index: snap.metadata.index, term: snap.metadata.term, confState: snap.metadata.confState }));
    const body = Buffer.concat([u32(meta.length), meta, Buffer.from(snap.data)]);
    const tmp = join(this.dir, `${SNAPSHOT_FILE}.tmp`);
    const fh = await open(tmp, 'w');
    await fh.write(Buffer.concat([u32(crc32c(body)), body]));
    await fh.sync();
    await fh.close();
    await rename(tmp, join(this.dir, SNAPSHOT_FILE));
    await syncDir(this.dir);
    const old = (await readdir(this.dir)).filter((f) => /^wal-\d{16}\.log$/.test(f));
    await this.#startFile(this.#seq + 1);
    const marker = Buffer.alloc(13);
    marker[0] = REC_SNAPSHOT;
    marker.writeUIntLE(snap.metadata.index, 1, 6);
    marker.writeUIntLE(snap.metadata.term, 7, 6);
    await this.#write(Buffer.concat([frame(marker), ...entriesAfter.map(encodeEntry), encodeHardState(hardState)]), true);
    for (const f of old) {
      await unlink(join(this.dir, f)).catch((err: unknown) => {
        if (!isErrno(err, 'ENOENT')) throw err;
      });
    }
  }

  async #readSnapshot(): Promise<Snapshot | undefined> {
    let buf: Buffer;
    try {
      buf = await readFile(join(this.dir, SNAPSHOT_FILE));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    if (buf.length < 8 || crc32c(buf.subarray(4)) !== buf.readUInt32LE(0)) {
      throw new RobustError(
        ErrorCode.CorruptSegment,
        `${join(this.dir, SNAPSHOT_FILE)}: snapshot fails its CRC; restore this node from a peer`,
      );
    }
    const metaLen = buf.readUInt32LE(4);
    const meta = JSON.parse(buf.subarray(8, 8 + metaLen).toString()) as { index: number; term: number; confState: ConfState };
    return { data: new Uint8Array(buf.subarray(8 + metaLen)), metadata: meta };
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#extending;
    await this.#file?.close();
    this.#file = undefined;
  }
}

function isZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function frame(body: Buffer): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt32LE(body.length, 0);
  h.writeUInt32LE(crc32c(body), 4);
  return Buffer.concat([h, body]);
}

const ENTRY_HEAD = 14;
const HARD_STATE_BODY = 19;

/** Frames the body written at [start + HEADER, end): length and CRC go in the header. */
function seal(buf: Buffer, start: number, end: number): number {
  buf.writeUInt32LE(end - start - HEADER, start);
  buf.writeUInt32LE(crc32c(buf.subarray(start + HEADER, end)), start + 4);
  return end;
}

function writeEntry(buf: Buffer, start: number, e: Entry): number {
  const b = start + HEADER;
  buf[b] = REC_ENTRY;
  buf.writeUIntLE(e.index, b + 1, 6);
  buf.writeUIntLE(e.term, b + 7, 6);
  buf[b + 13] = e.type === EntryType.ConfChange ? 1 : 0;
  buf.set(e.data, b + ENTRY_HEAD);
  return seal(buf, start, b + ENTRY_HEAD + e.data.byteLength);
}

function writeHardState(buf: Buffer, start: number, hs: HardState): number {
  const b = start + HEADER;
  buf[b] = REC_HARD_STATE;
  buf.writeUIntLE(hs.term, b + 1, 6);
  buf.writeUIntLE(hs.vote, b + 7, 6);
  buf.writeUIntLE(hs.commit, b + 13, 6);
  return seal(buf, start, b + HARD_STATE_BODY);
}

function encodeEntry(e: Entry): Buffer {
  const buf = Buffer.allocUnsafe(HEADER + ENTRY_HEAD + e.data.byteLength);
  writeEntry(buf, 0, e);
  return buf;
}

function encodeHardState(hs: HardState): Buffer {
  const buf = Buffer.allocUnsafe(HEADER + HARD_STATE_BODY);
  writeHardState(buf, 0, hs);
  return buf;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
