import { LogCompactedError, LogUnavailableError, SnapshotOutOfDateError, invariant } from './errors.js';
import { EntryType, EMPTY_HARD_STATE, type ConfState, type Entry, type HardState, type Snapshot } from './types.js';

/**
 * What the core reads from stable storage. Entries the core hands out in a Ready become visible
 * here once the application has persisted them; the core never writes through this interface.
 *
 * The log is [firstIndex(), lastIndex()]; index firstIndex() - 1 is the last index covered by
 * snapshot(), and term(firstIndex() - 1) must still answer (the snapshot's term).
 */
export interface Storage {
  /** The persisted hard state and the membership as of the snapshot. */
  initialState(): { hardState: HardState; confState: ConfState };
  /** Entries [lo, hi), cut to about maxSizeBytes but never empty when lo < hi. */
  entries(lo: number, hi: number, maxSizeBytes: number): Entry[];
  /** Term of the entry at index; throws LogCompactedError / LogUnavailableError outside the range. */
  term(index: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

/** Approximate encoded size of an entry (payload plus fixed header), used for batching limits. */
export function entrySize(e: Entry): number {
  return e.data.byteLength + 16;
}

/** Keeps a prefix of entries whose total size is at most maxSizeBytes, but at least one entry. */
export function limitSize(entries: Entry[], maxSizeBytes: number): Entry[] {
  if (entries.length === 0) return entries;
  let size = entrySize(entries[0] as Entry);
  let n = 1;
  for (; n < entries.length; n++) {
    size += entrySize(entries[n] as Entry);
    if (size > maxSizeBytes) break;
  }
  return n === entries.length ? entries : entries.slice(0, n);
}

export const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/**
 * The founding state of a group: every founding member starts from this same snapshot at index
 * 1, term 1, naming the initial membership (and the hard state below). Because it is a real
 * snapshot, a member added later with an empty log receives the initial membership from the
 * leader with it (or from a later snapshot) and then replays every change since.
 */
export function bootstrapSnapshot(confState: ConfState, data: Uint8Array = new Uint8Array()): Snapshot {
  return { data, metadata: { index: 1, term: 1, confState } };
}

export const BOOTSTRAP_HARD_STATE: HardState = Object.freeze({ term: 1, vote: 0, commit: 1 });

/**
 * Storage kept in memory, like etcd's MemoryStorage: a dummy entry at position 0 carries the
 * snapshot's index and term. Used by the core's tests and by the simulation (where it plays the
 * disk that survives a crash), and as the write side's cache in a real node.
 *
 * A member joining an existing group starts empty (`new MemoryStorage()`); the founding
 * members of a new group start with `new MemoryStorage(initialMembership)` (same as
 * `MemoryStorage.bootstrap()`), which installs bootstrapSnapshot() and its hard state.
 */
export class MemoryStorage implements Storage {
  private hardState: HardState = EMPTY_HARD_STATE;
  private snap: Snapshot;
  private ents: Entry[];

  /** With a non-empty `initial` membership: a founding member (see bootstrapSnapshot()). */
  constructor(initial?: ConfState) {
    this.snap = { data: new Uint8Array(), metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } } };
    this.ents = [dummy(0, 0)];
    if (initial !== undefined && initial.voters.length + initial.learners.length > 0) {
      this.applySnapshot(bootstrapSnapshot(initial));
      this.setHardState(BOOTSTRAP_HARD_STATE);
    }
  }

  /** Storage of a founding member of a new group: see bootstrapSnapshot(). */
  static bootstrap(confState: ConfState): MemoryStorage {
    return new MemoryStorage(confState);
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.snap.metadata.confState };
  }

  setHardState(hs: HardState): void {
    this.hardState = hs;
  }

  entries(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    const offset = this.offset();
    if (lo <= offset) throw new LogCompactedError(lo, offset + 1);
    invariant(hi <= this.lastIndex() + 1, `entries(${lo}, ${hi}) past last index ${this.lastIndex()}`);
    if (this.ents.length === 1) throw new LogUnavailableError(lo, this.lastIndex());
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSizeBytes);
  }

  term(index: number): number {
    const offset = this.offset();
    if (index < offset) throw new LogCompactedError(index, offset + 1);
    const e = this.ents[index - offset];
    if (e === undefined) throw new LogUnavailableError(index, this.lastIndex());
    return e.term;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole log with the snapshot (a follower installing the leader's snapshot). */
  applySnapshot(snap: Snapshot): void {
    if (this.snap.metadata.index >= snap.metadata.index) {
      throw new SnapshotOutOfDateError(snap.metadata.index, this.snap.metadata.index);
    }
    this.snap = snap;
    this.ents = [dummy(snap.metadata.index, snap.metadata.term)];
  }

  /**
   * Records a snapshot of the state machine as of `index` (which must be applied, hence in the
   * log). The log is not compacted; call compact() for that.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.metadata.index) throw new SnapshotOutOfDateError(index, this.snap.metadata.index);
    invariant(index <= this.lastIndex(), `snapshot index ${index} past last index ${this.lastIndex()}`);
    const term = this.term(index);
    this.snap = { data, metadata: { index, term, confState } };
    return this.snap;
  }

  /** Discards entries before compactIndex; compactIndex itself becomes the dummy entry. */
  compact(compactIndex: number): void {
    const offset = this.offset();
    if (compactIndex <= offset) throw new LogCompactedError(compactIndex, offset + 1);
    invariant(compactIndex <= this.lastIndex(), `compact ${compactIndex} past last index ${this.lastIndex()}`);
    const i = compactIndex - offset;
    const head = this.ents[i] as Entry;
    this.ents = [dummy(head.index, head.term), ...this.ents.slice(i + 1)];
  }

  /**
   * Appends entries, replacing any existing suffix from the first new index on (a new leader's
   * log wins over an uncommitted tail). Entries at or below the snapshot are ignored.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const start = (entries[0] as Entry).index;
    const last = start + entries.length - 1;
    if (last < first) return;
    const fresh = first > start ? entries.slice(first - start) : entries;
    const at = (fresh[0] as Entry).index - this.offset();
    invariant(at <= this.ents.length, `missing log entry: last ${this.lastIndex()}, appending at ${(fresh[0] as Entry).index}`);
    this.ents.length = at;
    for (const e of fresh) this.ents.push(e);
  }

  private offset(): number {
    return (this.ents[0] as Entry).index;
  }
}

function dummy(index: number, term: number): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array() };
}
