import { EntryType, MessageType, type Entry, type Message, type Snapshot } from '../raft/types.js';

/**
 * Raft messages on the wire between meta nodes, in a compact binary layout (little-endian):
 *
 *   u8 version (1) · u8 type · u32 to · u32 from · f64 term · f64 logTerm · f64 index · f64 commit
 *   · f64 rejectHint · u8 reject · u32 contextLength · context (UTF-8)
 *   · u32 entryCount · entries { f64 index · f64 term · u8 type · u32 length · data }
 *   · u8 hasSnapshot · [f64 index · f64 term · u32 n · voters (u32 each) · u32 n · learners
 *     · u32 length · data]
 *
 * Indexes and terms are integers below 2^53, exact in a double. Decoding checks every length
 * against the buffer and every number's range, so a malformed message from a peer is refused
 * (an Error), never stepped. Entry and snapshot data are views of one copy of the frame, so the
 * log does not keep network buffers alive.
 */
const VERSION = 1;
const TYPES: readonly MessageType[] = Object.values(MessageType);
const TYPE_CODE = new Map<MessageType, number>(TYPES.map((t, i) => [t, i]));
const ENTRY_TYPES: readonly EntryType[] = [EntryType.Normal, EntryType.ConfChange];
const HEAD = 2 + 4 + 4 + 8 * 5 + 1 + 4;

/** The encoded size of `m` in bytes. */
export function messageSize(m: Message): number {
  let size = HEAD + Buffer.byteLength(m.context, 'utf8') + 4 + 1;
  for (const e of m.entries) size += 8 + 8 + 1 + 4 + e.data.byteLength;
  const snap = m.snapshot;
  if (snap !== undefined)
    size +=
      8 + 8 + 4 + 4 * snap.metadata.confState.voters.length + 4 + 4 * snap.metadata.confState.learners.length + 4 + snap.data.byteLength;
  return size;
}

export function encodeMessage(m: Message): Buffer {
  const b = Buffer.allocUnsafe(messageSize(m));
  encodeMessageInto(m, b, 0);
  return b;
}

/** Writes `m` at `o` in `b`, which must have messageSize(m) bytes there; returns the end offset. */
export function encodeMessageInto(m: Message, b: Buffer, o: number): number {
  b[o++] = VERSION;
  const code = TYPE_CODE.get(m.type);
  if (code === undefined) throw new Error(`raft message: cannot encode type ${m.type}`);
  b[o++] = code;
  o = b.writeUInt32LE(m.to, o);
  o = b.writeUInt32LE(m.from, o);
  o = b.writeDoubleLE(m.term, o);
  o = b.writeDoubleLE(m.logTerm, o);
  o = b.writeDoubleLE(m.index, o);
  o = b.writeDoubleLE(m.commit, o);
  o = b.writeDoubleLE(m.rejectHint, o);
  b[o++] = m.reject ? 1 : 0;
  const contextAt = o;
  o += 4;
  const contextLength = m.context === '' ? 0 : b.write(m.context, o, 'utf8');
  b.writeUInt32LE(contextLength, contextAt);
  o += contextLength;
  o = b.writeUInt32LE(m.entries.length, o);
  for (const e of m.entries) {
    o = b.writeDoubleLE(e.index, o);
    o = b.writeDoubleLE(e.term, o);
    b[o++] = e.type === EntryType.ConfChange ? 1 : 0;
    o = b.writeUInt32LE(e.data.byteLength, o);
    b.set(e.data, o);
    o += e.data.byteLength;
  }
  const snap = m.snapshot;
  if (snap === undefined) {
    b[o++] = 0;
  } else {
    b[o++] = 1;
    o = b.writeDoubleLE(snap.metadata.index, o);
    o = b.writeDoubleLE(snap.metadata.term, o);
    for (const ids of [snap.metadata.confState.voters, snap.metadata.confState.learners]) {
      o = b.writeUInt32LE(ids.length, o);
      for (const id of ids) o = b.writeUInt32LE(id, o);
    }
    o = b.writeUInt32LE(snap.data.byteLength, o);
    b.set(snap.data, o);
    o += snap.data.byteLength;
  }
  return o;
}

class Reader {
  #o = 0;
  readonly #b: Buffer;
  constructor(b: Buffer) {
    this.#b = b;
  }
  #need(n: number, what: string): void {
    if (this.#o + n > this.#b.length) throw new Error(`raft message: truncated at ${what}`);
  }
  u8(what: string): number {
    this.#need(1, what);
    return this.#b[this.#o++] as number;
  }
  u32(what: string): number {
    this.#need(4, what);
    const v = this.#b.readUInt32LE(this.#o);
    this.#o += 4;
    return v;
  }
  num(what: string): number {
    this.#need(8, what);
    const v = this.#b.readDoubleLE(this.#o);
    this.#o += 8;
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`raft message: bad ${what}`);
    return v;
  }
  bytes(n: number, what: string): Buffer {
    this.#need(n, what);
    const v = this.#b.subarray(this.#o, this.#o + n);
    this.#o += n;
    return v;
  }
  /** A plain Uint8Array view (not a Buffer), as entries and snapshots hold their data. */
  view(n: number, what: string): Uint8Array {
    this.#need(n, what);
    const v = new Uint8Array(this.#b.buffer, this.#b.byteOffset + this.#o, n);
    this.#o += n;
    return v;
  }
  get rest(): number {
    return this.#b.length - this.#o;
  }
}

export function decodeMessage(buf: Uint8Array): Message {
  // One copy of the whole frame, which the entries (nearly all of its bytes) then share: the log
  // keeps them without pinning the network buffer, and without an ArrayBuffer per entry (each
  // one costs an allocation and work for the garbage collector).
  const own = Buffer.allocUnsafeSlow(buf.byteLength);
  own.set(buf);
  const r = new Reader(own);
  const version = r.u8('version');
  if (version !== VERSION) throw new Error(`raft message: unknown version ${version}`);
  const type = TYPES[r.u8('type')];
  if (type === undefined) throw new Error('raft message: unknown type');
  const to = r.u32('to');
  const from = r.u32('from');
  const term = r.num('term');
  const logTerm = r.num('logTerm');
  const index = r.num('index');
  const commit = r.num('commit');
  const rejectHint = r.num('rejectHint');
  const reject = r.u8('reject') === 1;
  const context = r.bytes(r.u32('context length'), 'context').toString('utf8');
  const count = r.u32('entry count');
  // Each entry takes at least 21 bytes: a count the buffer cannot hold is refused before allocating.
  if (count * 21 > r.rest) throw new Error('raft message: truncated at entries');
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const eIndex = r.num('entry index');
    const eTerm = r.num('entry term');
    const eType = ENTRY_TYPES[r.u8('entry type')];
    if (eType === undefined) throw new Error('raft message: bad entry type');
    const data = r.view(r.u32('entry length'), 'entry data');
    entries.push({ index: eIndex, term: eTerm, type: eType, data });
  }
  let snapshot: Snapshot | undefined;
  if (r.u8('snapshot flag') === 1) {
    const sIndex = r.num('snapshot index');
    const sTerm = r.num('snapshot term');
    const ids = (what: string): number[] => {
      const n = r.u32(what);
      if (n * 4 > r.rest) throw new Error(`raft message: truncated at ${what}`);
      return Array.from({ length: n }, () => r.u32(what));
    };
    const voters = ids('voters');
    const learners = ids('learners');
    const data = r.view(r.u32('snapshot length'), 'snapshot data');
    snapshot = { data, metadata: { index: sIndex, term: sTerm, confState: { voters, learners } } };
  }
  if (r.rest !== 0) throw new Error('raft message: trailing bytes');
  return { type, to, from, term, logTerm, index, entries, commit, snapshot, reject, rejectHint, context };
}
