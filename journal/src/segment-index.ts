/**
 * Sparse indexes of one segment, kept in memory and stored as flat files (big-endian):
 * - offset index (`.index`): entries of relativeOffset u32 | position u32, both strictly increasing;
 *   an entry says "the batch at `position` has base offset base + relativeOffset".
 * - time index (`.timeindex`): entries of timestamp i64 | relativeOffset u32, both strictly
 *   increasing; an entry says "every batch before relativeOffset has maxTimestamp ≤ timestamp".
 *   The last entry of a sealed segment is (segment max timestamp, end relative offset).
 */
export class OffsetIndex {
  static readonly ENTRY_BYTES = 8;
  private buf: Buffer;
  private n = 0;

  constructor(capacity = 64) {
    this.buf = Buffer.allocUnsafe(capacity * OffsetIndex.ENTRY_BYTES);
  }

  /** Parses stored entries; returns null if the file is not a valid index for a log of `logSize` bytes. */
  static fromBytes(bytes: Buffer, logSize: number): OffsetIndex | null {
    if (bytes.length % OffsetIndex.ENTRY_BYTES !== 0) return null;
    const idx = new OffsetIndex(Math.max(1, bytes.length / OffsetIndex.ENTRY_BYTES));
    for (let p = 0; p < bytes.length; p += OffsetIndex.ENTRY_BYTES) {
      const rel = bytes.readUInt32BE(p);
      const pos = bytes.readUInt32BE(p + 4);
      if (pos >= logSize || (idx.n > 0 && (rel <= idx.lastRelOffset() || pos <= idx.lastPosition()))) return null;
      idx.append(rel, pos);
    }
    return idx;
  }

  get length(): number {
    return this.n;
  }

  lastRelOffset(): number {
    return this.n === 0 ? 0 : this.buf.readUInt32BE((this.n - 1) * 8);
  }

  lastPosition(): number {
    return this.n === 0 ? 0 : this.buf.readUInt32BE((this.n - 1) * 8 + 4);
  }

  append(relOffset: number, position: number): void {
    if ((this.n + 1) * 8 > this.buf.length) {
      const next = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(next, 0, 0, this.n * 8);
      this.buf = next;
    }
    this.buf.writeUInt32BE(relOffset, this.n * 8);
    this.buf.writeUInt32BE(position, this.n * 8 + 4);
    this.n++;
  }

  /** The entry with the largest relOffset ≤ target ({0, 0} when none): where to start scanning. */
  lookup(relOffset: number): { relOffset: number; position: number } {
    let lo = 0;
    let hi = this.n - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.buf.readUInt32BE(mid * 8) <= relOffset) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return { relOffset: 0, position: 0 };
    return { relOffset: this.buf.readUInt32BE(found * 8), position: this.buf.readUInt32BE(found * 8 + 4) };
  }

  /** Drops entries at or after `position` (log truncation). */
  truncateToPosition(position: number): void {
    while (this.n > 0 && this.lastPosition() >= position) this.n--;
  }

  toBytes(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.n * 8));
  }
}

export class TimeIndex {
  static readonly ENTRY_BYTES = 12;
  private buf: Buffer;
  private n = 0;

  constructor(capacity = 64) {
    this.buf = Buffer.allocUnsafe(capacity * TimeIndex.ENTRY_BYTES);
  }

  static fromBytes(bytes: Buffer): TimeIndex | null {
    if (bytes.length % TimeIndex.ENTRY_BYTES !== 0) return null;
    const idx = new TimeIndex(Math.max(1, bytes.length / TimeIndex.ENTRY_BYTES));
    for (let p = 0; p < bytes.length; p += TimeIndex.ENTRY_BYTES) {
      const ts = Number(bytes.readBigInt64BE(p));
      const rel = bytes.readUInt32BE(p + 8);
      if (idx.n > 0 && (ts <= idx.lastTimestamp() || rel <= idx.lastRelOffset())) return null;
      idx.append(ts, rel);
    }
    return idx;
  }

  get length(): number {
    return this.n;
  }

  lastTimestamp(): number {
    return this.n === 0 ? Number.NEGATIVE_INFINITY : Number(this.buf.readBigInt64BE((this.n - 1) * 12));
  }

  lastRelOffset(): number {
    return this.n === 0 ? 0 : this.buf.readUInt32BE((this.n - 1) * 12 + 8);
  }

  /** Adds an entry if it moves both the timestamp and the offset forward; returns whether it did. */
  maybeAppend(timestamp: number, relOffset: number): boolean {
    if (this.n > 0 && (timestamp <= this.lastTimestamp() || relOffset <= this.lastRelOffset())) return false;
    this.append(timestamp, relOffset);
    return true;
  }

  /**
   * Records the end of the segment: every batch before `relOffset` has maxTimestamp ≤ `timestamp`.
   * When the timestamp did not grow, the last entry is moved to the end instead (still true).
   */
  seal(timestamp: number, relOffset: number): void {
    if (this.n > 0 && timestamp === this.lastTimestamp() && relOffset > this.lastRelOffset()) {
      this.buf.writeUInt32BE(relOffset, (this.n - 1) * 12 + 8);
    } else this.maybeAppend(timestamp, relOffset);
  }

  private append(timestamp: number, relOffset: number): void {
    if ((this.n + 1) * 12 > this.buf.length) {
      const next = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(next, 0, 0, this.n * 12);
      this.buf = next;
    }
    this.buf.writeBigInt64BE(BigInt(timestamp), this.n * 12);
    this.buf.writeUInt32BE(relOffset, this.n * 12 + 8);
    this.n++;
  }

  /** Relative offset to start scanning for the first record with timestamp ≥ target (0 when none). */
  lookup(timestamp: number): number {
    let lo = 0;
    let hi = this.n - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (Number(this.buf.readBigInt64BE(mid * 12)) < timestamp) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found < 0 ? 0 : this.buf.readUInt32BE(found * 12 + 8);
  }

  /** Drops entries at or after `relOffset` (log truncation). */
  truncateToRelOffset(relOffset: number): void {
    while (this.n > 0 && this.lastRelOffset() >= relOffset) this.n--;
  }

  toBytes(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.n * 12));
  }
}
