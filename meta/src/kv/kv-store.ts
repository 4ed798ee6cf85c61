import { ErrorCode, RobustError } from '@robustmq/common';
import { SortedKeys, prefixEnd } from './sorted-keys.js';

/**
 * The state machine of one meta Raft group: a revisioned key-value store like etcd's MVCC store
 * (current values only; history is kept as an event log for watches). Every replica applies the
 * same commands in the same order and reaches the same state: nothing here reads a clock or
 * draws a random number. Keys are strings ordered by UTF-16 code units (the same as byte order
 * for ASCII keys, which is what RobustMQ's keyspaces use); values are Buffers.
 */

export interface KeyValue {
  key: string;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: number;
}

export type CompareTarget = 'value' | 'version' | 'createRevision' | 'modRevision' | 'lease';
export interface Compare {
  key: string;
  target: CompareTarget;
  result: '=' | '!=' | '<' | '>';
  /** A Buffer for `value`, a number otherwise. A missing key has version/revisions/lease 0. */
  value: Buffer | number;
}

export type RequestOp =
  | { op: 'put'; key: string; value: Buffer; lease?: number; prevKv?: boolean }
  | { op: 'delete'; key: string; rangeEnd?: string; prevKv?: boolean }
  | { op: 'range'; key: string; rangeEnd?: string; limit?: number };

/** Everything that changes the store goes through Raft as one of these. */
export type KvCommand =
  | RequestOp
  | { op: 'txn'; compare: Compare[]; success: RequestOp[]; failure: RequestOp[] }
  | { op: 'leaseGrant'; ttlMs: number; id?: number }
  | { op: 'leaseRevoke'; id: number }
  /** Replicated so that whichever node leads next knows the lease was alive (no state change). */
  | { op: 'leaseKeepAlive'; id: number }
  | { op: 'compact'; revision: number };

export interface PutResult {
  op: 'put';
  revision: number;
  prevKv?: KeyValue;
}
export interface DeleteResult {
  op: 'delete';
  revision: number;
  deleted: number;
  prevKvs?: KeyValue[];
}
export interface RangeResult {
  op: 'range';
  revision: number;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}
export interface TxnResult {
  op: 'txn';
  revision: number;
  succeeded: boolean;
  responses: (PutResult | DeleteResult | RangeResult)[];
}
export interface LeaseResult {
  op: 'leaseGrant' | 'leaseRevoke' | 'leaseKeepAlive';
  revision: number;
  id: number;
  ttlMs: number;
  /** Keys deleted by a revoke. */
  deleted?: number;
}
export interface CompactResult {
  op: 'compact';
  revision: number;
}
export type KvResult = PutResult | DeleteResult | RangeResult | TxnResult | LeaseResult | CompactResult;

export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
  prevKv?: KeyValue;
}

export interface Lease {
  id: number;
  ttlMs: number;
  keys: Set<string>;
}

/** A watch asked for a revision older than the kept history; re-list and watch from `compactRevision` + 1. */
export class CompactedError extends RobustError {
  readonly compactRevision: number;
  constructor(compactRevision: number) {
    super(ErrorCode.Compacted, `revision has been compacted; history starts after ${compactRevision}`);
    this.compactRevision = compactRevision;
  }
}

interface Watcher {
  from: string;
  to: string | undefined;
  prevKv: boolean;
  onEvents: (events: WatchEvent[], revision: number) => void;
}

export interface KvStoreOptions {
  /** Events kept for watches that start in the past; older history is compacted automatically. */
  maxHistoryEvents?: number;
}

export class KvStore {
  #revision = 0;
  #compactRevision = 0;
  #lastLeaseId = 0;
  readonly #kvs = new Map<string, KeyValue>();
  readonly #keys = new SortedKeys();
  readonly #leases = new Map<number, Lease>();
  /** Events by revision, oldest first; each revision's events are contiguous. */
  #history: { revision: number; event: WatchEvent }[] = [];
  readonly #maxHistory: number;
  readonly #watchers = new Set<Watcher>();
  /** Events of the command being applied, delivered to watchers when it completes. */
  #pending: WatchEvent[] = [];

  constructor(opts: KvStoreOptions = {}) {
    this.#maxHistory = opts.maxHistoryEvents ?? 100_000;
  }

  get revision(): number {
    return this.#revision;
  }
  get compactRevision(): number {
    return this.#compactRevision;
  }
  get size(): number {
    return this.#kvs.size;
  }
  leases(): Lease[] {
    return [...this.#leases.values()];
  }
  lease(id: number): Lease | undefined {
    return this.#leases.get(id);
  }

  /** Applies one committed command. Throws only for commands that are invalid on every replica alike. */
  apply(cmd: KvCommand): KvResult {
    let result: KvResult;
    switch (cmd.op) {
      case 'put':
      case 'delete':
        result = this.#mutate(cmd, this.#revision + 1);
        break;
      case 'range':
        result = this.range(cmd.key, cmd.rangeEnd, cmd.limit);
        break;
      case 'txn':
        result = this.#txn(cmd);
        break;
      case 'leaseGrant': {
        const id = cmd.id !== undefined && cmd.id > 0 ? cmd.id : this.#lastLeaseId + 1;
        if (this.#leases.has(id)) throw new RobustError(ErrorCode.LeaseExists, `lease ${id} already exists`);
        if (!(cmd.ttlMs > 0)) throw new RobustError(ErrorCode.ConfigInvalid, 'lease ttlMs must be positive');
        this.#lastLeaseId = Math.max(this.#lastLeaseId, id);
        this.#leases.set(id, { id, ttlMs: cmd.ttlMs, keys: new Set() });
        result = { op: 'leaseGrant', revision: this.#revision, id, ttlMs: cmd.ttlMs };
        break;
      }
      case 'leaseRevoke': {
        const lease = this.#leases.get(cmd.id);
        if (lease === undefined) throw new LeaseNotFoundError(cmd.id);
        const rev = this.#revision + 1;
        let deleted = 0;
        for (const key of [...lease.keys]) deleted += this.#deleteKey(key, rev, false) ? 1 : 0;
        this.#leases.delete(cmd.id);
        if (deleted > 0) this.#revision = rev;
        result = { op: 'leaseRevoke', revision: this.#revision, id: cmd.id, ttlMs: lease.ttlMs, deleted };
        break;
      }
      case 'leaseKeepAlive': {
        const lease = this.#leases.get(cmd.id);
        if (lease === undefined) throw new LeaseNotFoundError(cmd.id);
        result = { op: 'leaseKeepAlive', revision: this.#revision, id: cmd.id, ttlMs: lease.ttlMs };
        break;
      }
      case 'compact':
        this.#compact(Math.min(cmd.revision, this.#revision));
        result = { op: 'compact', revision: this.#revision };
        break;
    }
    this.#flushEvents();
    return result;
  }

  #mutate(cmd: RequestOp, rev: number): PutResult | DeleteResult | RangeResult {
    if (cmd.op === 'range') return this.range(cmd.key, cmd.rangeEnd, cmd.limit);
    if (cmd.op === 'put') {
      if (cmd.lease !== undefined && cmd.lease !== 0 && !this.#leases.has(cmd.lease)) throw new LeaseNotFoundError(cmd.lease);
      const prev = this.#kvs.get(cmd.key);
      const kv: KeyValue = {
        key: cmd.key,
        value: cmd.value,
        createRevision: prev?.createRevision ?? rev,
        modRevision: rev,
        version: (prev?.version ?? 0) + 1,
        lease: cmd.lease ?? 0,
      };
      if (prev !== undefined && prev.lease !== kv.lease) this.#leases.get(prev.lease)?.keys.delete(cmd.key);
      if (kv.lease !== 0) this.#leases.get(kv.lease)?.keys.add(cmd.key);
      this.#kvs.set(cmd.key, kv);
      if (prev === undefined) this.#keys.add(cmd.key);
      this.#revision = rev;
      const event: WatchEvent = { type: 'put', kv };
      if (prev !== undefined) event.prevKv = prev;
      this.#record(event, rev);
      const result: PutResult = { op: 'put', revision: rev };
      if (cmd.prevKv === true && prev !== undefined) result.prevKv = prev;
      return result;
    }
    const keys =
      cmd.rangeEnd === undefined ? (this.#kvs.has(cmd.key) ? [cmd.key] : []) : [...this.#keys.range(cmd.key, rangeTo(cmd.rangeEnd))];
    const prevKvs: KeyValue[] = [];
    for (const key of keys) {
      if (cmd.prevKv === true) prevKvs.push(this.#kvs.get(key) as KeyValue);
      this.#deleteKey(key, rev, true);
    }
    if (keys.length > 0) this.#revision = rev;
    return { op: 'delete', revision: this.#revision, deleted: keys.length, ...(cmd.prevKv === true ? { prevKvs } : {}) };
  }

  #deleteKey(key: string, rev: number, detachLease: boolean): boolean {
    const prev = this.#kvs.get(key);
    if (prev === undefined) return false;
    this.#kvs.delete(key);
    this.#keys.delete(key);
    if (detachLease && prev.lease !== 0) this.#leases.get(prev.lease)?.keys.delete(key);
    this.#record(
      { type: 'delete', kv: { key, value: Buffer.alloc(0), createRevision: 0, modRevision: rev, version: 0, lease: 0 }, prevKv: prev },
      rev,
    );
    return true;
  }

  #txn(cmd: Extract<KvCommand, { op: 'txn' }>): TxnResult {
    const succeeded = cmd.compare.every((c) => this.#compare(c));
    const ops = succeeded ? cmd.success : cmd.failure;
    // Validate before changing anything, so a txn applies entirely or not at all.
    for (const op of ops)
      if (op.op === 'put' && op.lease !== undefined && op.lease !== 0 && !this.#leases.has(op.lease))
        throw new LeaseNotFoundError(op.lease);
    const rev = this.#revision + 1;
    const responses = ops.map((op) => this.#mutate(op, rev));
    return { op: 'txn', revision: this.#revision, succeeded, responses };
  }

  #compare(c: Compare): boolean {
    const kv = this.#kvs.get(c.key);
    let cmp: number;
    if (c.target === 'value') {
      if (kv === undefined) return false;
      cmp = Buffer.compare(kv.value, c.value as Buffer);
    } else {
      const actual = kv === undefined ? 0 : kv[c.target];
      cmp = Math.sign(actual - (c.value as number));
    }
    switch (c.result) {
      case '=':
        return cmp === 0;
      case '!=':
        return cmp !== 0;
      case '<':
        return cmp < 0;
      case '>':
        return cmp > 0;
    }
  }

  /** Current values: one key, or [key, rangeEnd) when rangeEnd is given ("\0" = every key ≥ key). */
  range(key: string, rangeEnd?: string, limit = 0): RangeResult {
    if (rangeEnd === undefined) {
      const kv = this.#kvs.get(key);
      return { op: 'range', revision: this.#revision, kvs: kv ? [kv] : [], more: false, count: kv ? 1 : 0 };
    }
    const kvs: KeyValue[] = [];
    let count = 0;
    for (const k of this.#keys.range(key, rangeTo(rangeEnd))) {
      count++;
      if (limit === 0 || kvs.length < limit) kvs.push(this.#kvs.get(k) as KeyValue);
    }
    return { op: 'range', revision: this.#revision, kvs, more: count > kvs.length, count };
  }

  #record(event: WatchEvent, revision: number): void {
    this.#history.push({ revision, event });
    this.#pending.push(event);
    // Trimmed in steps of an eighth, so the copy is amortised instead of one per write.
    if (this.#history.length > this.#maxHistory + Math.max(1, this.#maxHistory >> 3)) {
      // Drop whole revisions from the front.
      const drop = this.#history.length - this.#maxHistory;
      const lastDropped = (this.#history[drop - 1] as { revision: number }).revision;
      let cut = drop;
      while (cut < this.#history.length && (this.#history[cut] as { revision: number }).revision === lastDropped) cut++;
      this.#history = this.#history.slice(cut);
      this.#compactRevision = Math.max(this.#compactRevision, lastDropped);
    }
  }

  #compact(revision: number): void {
    if (revision <= this.#compactRevision) return;
    let cut = 0;
    while (cut < this.#history.length && (this.#history[cut] as { revision: number }).revision <= revision) cut++;
    this.#history = this.#history.slice(cut);
    this.#compactRevision = revision;
  }

  #flushEvents(): void {
    if (this.#pending.length === 0) return;
    const events = this.#pending;
    this.#pending = [];
    for (const w of this.#watchers) {
      const mine = events.filter((e) => inRange(e.kv.key, w.from, w.to));
      if (mine.length > 0) w.onEvents(w.prevKv ? mine : mine.map(({ type, kv }) => ({ type, kv })), this.#revision);
    }
  }

  /**
   * Watches [key, rangeEnd) (a single key when rangeEnd is undefined) from `startRevision`
   * (0 = from now). Past events up to now are delivered before this returns. Throws
   * CompactedError when the history no longer reaches back to startRevision.
   */
  watch(
    key: string,
    rangeEnd: string | undefined,
    startRevision: number,
    onEvents: (events: WatchEvent[], revision: number) => void,
    opts: { prevKv?: boolean } = {},
  ): () => void {
    const w: Watcher = { from: key, to: rangeEnd === undefined ? key + '\0' : rangeTo(rangeEnd), prevKv: opts.prevKv === true, onEvents };
    if (startRevision > 0 && startRevision <= this.#revision) {
      if (startRevision <= this.#compactRevision) throw new CompactedError(this.#compactRevision);
      const past = this.#history.filter((h) => h.revision >= startRevision && inRange(h.event.kv.key, w.from, w.to));
      // Deliver revision by revision, as they happened.
      let i = 0;
      while (i < past.length) {
        const rev = (past[i] as { revision: number }).revision;
        const batch: WatchEvent[] = [];
        for (; i < past.length && (past[i] as { revision: number }).revision === rev; i++) {
          const e = (past[i] as { event: WatchEvent }).event;
          batch.push(w.prevKv ? e : { type: e.type, kv: e.kv });
        }
        onEvents(batch, rev);
      }
    }
    this.#watchers.add(w);
    return () => this.#watchers.delete(w);
  }

  get watcherCount(): number {
    return this.#watchers.size;
  }

  /** The whole state as bytes, for Raft snapshots. History is not included. */
  snapshot(): Buffer {
    const kvs = [...this.#keys.range('', undefined)].map((k) => {
      const kv = this.#kvs.get(k) as KeyValue;
      return [kv.key, kv.value.toString('base64'), kv.createRevision, kv.modRevision, kv.version, kv.lease];
    });
    const leases = [...this.#leases.values()].map((l) => [l.id, l.ttlMs]);
    return Buffer.from(JSON.stringify({ v: 1, revision: this.#revision, lastLeaseId: this.#lastLeaseId, kvs, leases }));
  }

  /** Replaces the state with a snapshot. Watchers stay registered and see no events for it. */
  restore(data: Uint8Array): void {
    // The bootstrap snapshot of a new group carries no state.
    const text = data.byteLength === 0 ? '{"v":1,"revision":0,"lastLeaseId":0,"kvs":[],"leases":[]}' : Buffer.from(data).toString('utf8');
    const s = JSON.parse(text) as {
      v: number;
      revision: number;
      lastLeaseId: number;
      kvs: [string, string, number, number, number, number][];
      leases: [number, number][];
    };
    this.#kvs.clear();
    this.#keys.clear();
    this.#leases.clear();
    this.#history = [];
    this.#revision = s.revision;
    this.#compactRevision = s.revision;
    this.#lastLeaseId = s.lastLeaseId;
    for (const [id, ttlMs] of s.leases) this.#leases.set(id, { id, ttlMs, keys: new Set() });
    for (const [key, v, createRevision, modRevision, version, lease] of s.kvs) {
      this.#kvs.set(key, { key, value: Buffer.from(v, 'base64'), createRevision, modRevision, version, lease });
      this.#keys.add(key);
      if (lease !== 0) this.#leases.get(lease)?.keys.add(key);
    }
  }
}

export class LeaseNotFoundError extends RobustError {
  readonly leaseId: number;
  constructor(id: number) {
    super(ErrorCode.LeaseNotFound, `lease ${id} not found`);
    this.leaseId = id;
  }
}

/** "\0" as range end means "no upper bound", as in etcd. */
function rangeTo(rangeEnd: string): string | undefined {
  return rangeEnd === '\0' ? undefined : rangeEnd;
}

function inRange(key: string, from: string, to: string | undefined): boolean {
  return key >= from && (to === undefined || key < to);
}

export { prefixEnd };
