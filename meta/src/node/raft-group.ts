import { ErrorCode, RobustError, type Logger } from '@robustmq/common';
import { RawNode } from '../raft/raw-node.js';
import { ProposalDroppedError } from '../raft/errors.js';
import { ConfChangeType, type ConfChange } from '../raft/conf-change.js';
import { EntryType, MessageType, Role, type Entry, type HardState, type Message, type Ready, type Snapshot } from '../raft/types.js';
import type { Status } from '../raft/raft.js';
import type { MemoryStorage } from '../raft/storage.js';
import { RaftWal } from '../storage/raft-wal.js';
import { KvStore, type KvCommand, type KvResult, type WatchEvent } from '../kv/kv-store.js';
import { decodeProposal, encodeProposal } from '../kv/command-codec.js';
import type { MetaMetrics } from './metrics.js';

/** Message types that may be sent before the Ready that carries them is persisted. */
const EARLY: ReadonlySet<string> = new Set([MessageType.App, MessageType.Heartbeat, MessageType.Snap]);

/** An append carrying new entries (not a heartbeat or a commit-only append). */
function carriesEntries(m: Message): boolean {
  return m.type === MessageType.App && m.entries.length > 0;
}

/** The request reached a node that is not the group's leader, and none is known to forward to. */
export class NotLeaderError extends RobustError {
  readonly leaderHint: number;
  constructor(groupId: number, leaderHint: number) {
    super(
      ErrorCode.NotLeader,
      `meta group ${groupId}: ${leaderHint === 0 ? 'no leader elected yet' : `not the leader; leader is node ${leaderHint}`}`,
      {
        retriable: true,
      },
    );
    this.leaderHint = leaderHint;
  }
}

export interface RaftGroupOptions {
  groupId: number;
  nodeId: number;
  dir: string;
  log: Logger;
  metrics: MetaMetrics;
  /**
   * Hands this group's outgoing messages to the transport; `now` asks for them to leave at once
   * instead of with the rest of this event-loop turn's messages.
   */
  send: (messages: readonly Message[], now?: boolean) => void;
  /** Voters of a brand-new group (bootstrap). Omit to join an existing group as an empty member. */
  bootstrapVoters?: readonly number[];
  electionTick?: number;
  heartbeatTick?: number;
  /** A snapshot is taken and the log compacted after this many applied entries. */
  snapshotEntries?: number;
  proposalTimeoutMs?: number;
  /** WAL space kept zero-filled ahead of the write position (see RaftWal); 0 = plain appends. */
  walPreallocateBytes?: number;
  /** Reports leader changes (leader id, 0 = none). */
  onLeaderChange?: (leader: number) => void;
}

interface Pending {
  resolve: (r: KvResult) => void;
  reject: (e: Error) => void;
  /** performance.now() after which the caller is told it timed out. */
  deadline: number;
  timeoutMs: number;
}

/**
 * One Raft group on this node: the pure RawNode, its write-ahead log, and the KV state machine.
 *
 * How this works: inputs (ticks, peer messages, proposals, read requests) are stepped into the
 * RawNode synchronously; `#kick()` schedules one drain loop that takes each Ready and handles it
 * in Raft's order — persist (fsync) the snapshot, entries and hard state; only then send its
 * responses and votes; apply the snapshot and committed entries to the KV store, answering the
 * proposals and reads of this node; `advance()`. Appends and heartbeats go out before the write
 * (see #drain), and a leader applies entries that are already on its disk before it too. Inputs
 * that arrive while a Ready is being persisted are stepped at once and land in the next Ready,
 * which is how proposals batch under load.
 * Leases expire on the leader only: it tracks deadlines with its own clock (renewed to a full
 * TTL when it becomes leader) and proposes a revoke for each expired lease.
 */
export class RaftGroup {
  readonly groupId: number;
  readonly kv = new KvStore();
  readonly #opts: RaftGroupOptions;
  readonly #log: Logger;
  readonly #node: RawNode;
  readonly #storage: MemoryStorage;
  readonly #wal: RaftWal;
  readonly #pending = new Map<string, Pending>();
  /** One timer for every proposal's deadline (see propose); armed while any is pending. */
  #deadlineTimer: NodeJS.Timeout | undefined;
  /** When #deadlineTimer fires (performance.now() time). */
  #deadlineAt = Number.POSITIVE_INFINITY;
  readonly #reads = new Map<string, { resolve: () => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  /** Reads whose read index is known, waiting for the state machine to catch up. */
  #readWaiters: { index: number; resolve: () => void }[] = [];
  readonly #confWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  readonly #leaseDeadlines = new Map<number, number>();
  readonly #revoking = new Set<number>();
  #seq = 0;
  /** Proposals not yet stepped into Raft (see propose). */
  #proposals: { id: string; data: Uint8Array }[] = [];
  #flushScheduled = false;
  /** A hard state whose only change is the commit index, not yet written (see #persist). */
  #unsavedHardState: HardState | undefined;
  readonly #incarnation = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  #applied = 0;
  #snapshotIndex = 0;
  #leader = 0;
  #draining = false;
  #closed = false;
  #failed: Error | undefined;

  private constructor(opts: RaftGroupOptions, node: RawNode, storage: MemoryStorage, wal: RaftWal) {
    this.groupId = opts.groupId;
    this.#opts = opts;
    this.#log = opts.log;
    this.#node = node;
    this.#storage = storage;
    this.#wal = wal;
  }

  static async open(opts: RaftGroupOptions): Promise<RaftGroup> {
    const fresh = await RaftWal.isEmpty(opts.dir);
    const initial = fresh && opts.bootstrapVoters !== undefined ? { voters: [...opts.bootstrapVoters], learners: [] } : undefined;
    const { wal, storage, recovery } = await RaftWal.open(opts.dir, opts.log, initial, { preallocateBytes: opts.walPreallocateBytes ?? 0 });
    const node = new RawNode({
      id: opts.nodeId,
      storage,
      electionTick: opts.electionTick ?? 10,
      heartbeatTick: opts.heartbeatTick ?? 1,
      checkQuorum: true,
      preVote: true,
    });
    const g = new RaftGroup(opts, node, storage, wal);
    opts.metrics.groupIndexes.set(opts.groupId, () => ({ commit: node.raft.raftLog.committed, applied: g.#applied }));
    if (recovery.snapshot !== undefined) {
      g.kv.restore(recovery.snapshot.data);
      g.#applied = recovery.snapshot.metadata.index;
      g.#snapshotIndex = recovery.snapshot.metadata.index;
    }
    // A single-voter group need not wait for an election timeout.
    const voters = node.confState().voters;
    if (voters.length === 1 && voters[0] === opts.nodeId) node.campaign();
    opts.log.info(
      { group: opts.groupId, fresh, bootstrap: initial !== undefined, snapshotIndex: g.#snapshotIndex, lastIndex: storage.lastIndex() },
      'meta group opened',
    );
    g.#kick();
    return g;
  }

  get leader(): number {
    return this.#leader;
  }
  get isLeader(): boolean {
    return this.#node.isLeader();
  }
  get applied(): number {
    return this.#applied;
  }

  status(): Status {
    return this.#node.status();
  }

  tick(): void {
    if (this.#closed) return;
    this.#node.tick();
    if (this.#node.isLeader()) this.#expireLeases();
    this.#kick();
  }

  /**
   * Steps a message received from a peer. With `kick` false the caller steps the rest of its
   * batch first and then calls `kick()`: a follower that gets a commit-only append and the next
   * entries in one batch then writes the new entries (and acknowledges them) before it applies
   * the committed ones, instead of applying first and keeping the leader waiting.
   */
  step(m: Message, kick = true): void {
    if (this.#closed) return;
    try {
      this.#node.step(m);
    } catch (err) {
      this.#log.warn({ err, type: m.type, from: m.from }, 'meta message refused');
      return;
    }
    if (kick) this.#kick();
  }

  /** Processes whatever Raft has ready (see `step`). */
  kick(): void {
    this.#kick();
  }

  reportUnreachable(id: number): void {
    if (!this.#closed) this.#node.reportUnreachable(id);
  }

  /**
   * Replicates a command and resolves with its result once this node has applied it. Proposals
   * made in one event-loop turn, or while a Ready is being persisted, go to Raft together as one
   * MsgProp, so the leader replicates them in one MsgApp per follower.
   */
  propose(cmd: KvCommand, timeoutMs = this.#opts.proposalTimeoutMs ?? 5000): Promise<KvResult> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.reject(new RobustError(ErrorCode.ShuttingDown, 'meta is shutting down', { retriable: true }));
    const id = `${this.#opts.nodeId}:${this.#incarnation}:${++this.#seq}`;
    return new Promise<KvResult>((resolve, reject) => {
      // No timer per proposal (a setTimeout and its clearTimeout cost more than the rest of
      // proposing): one timer, armed while proposals are pending, expires them in turn.
      const deadline = performance.now() + timeoutMs;
      this.#pending.set(id, { resolve, reject, deadline, timeoutMs });
      if (deadline < this.#deadlineAt) this.#armDeadline(deadline);
      this.#proposals.push({ id, data: encodeProposal({ id, cmd }) });
      if (!this.#draining && !this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => {
          this.#flushScheduled = false;
          this.#flushProposals();
          this.#kick();
        });
      }
    });
  }

  /** Steps the queued proposals into Raft as one batch; a refused batch rejects each of its callers. */
  #flushProposals(): void {
    if (this.#proposals.length === 0 || this.#closed) return;
    const batch = this.#proposals;
    this.#proposals = [];
    try {
      this.#node.proposeBatch(batch.map((p) => p.data));
    } catch (err) {
      const e = err instanceof ProposalDroppedError ? new NotLeaderError(this.groupId, this.#leader) : (err as Error);
      for (const { id } of batch) {
        const p = this.#pending.get(id);
        if (p === undefined) continue;
        this.#pending.delete(id);
        p.reject(e);
      }
      return;
    }
    this.#opts.metrics.proposals.inc({ group: String(this.groupId) }, batch.length);
  }

  /** Resolves once this node's state machine reflects every write committed before the call (ReadIndex). */
  linearizableBarrier(timeoutMs = this.#opts.proposalTimeoutMs ?? 5000): Promise<void> {
    if (this.#closed) return Promise.reject(new RobustError(ErrorCode.ShuttingDown, 'meta is shutting down', { retriable: true }));
    if (this.#leader === 0) return Promise.reject(new NotLeaderError(this.groupId, 0));
    const ctx = `${this.#opts.nodeId}:${this.#incarnation}:r${++this.#seq}`;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#reads.delete(ctx);
        reject(
          new RobustError(ErrorCode.Timeout, `meta group ${this.groupId}: read index not confirmed within ${timeoutMs} ms`, {
            retriable: true,
          }),
        );
      }, timeoutMs);
      this.#reads.set(ctx, { resolve, reject, timer });
      this.#node.readIndex(ctx);
      this.#kick();
    });
  }

  /** Watches keys of this group; see KvStore.watch. */
  watch(
    key: string,
    rangeEnd: string | undefined,
    startRevision: number,
    onEvents: (e: WatchEvent[], rev: number) => void,
    prevKv = false,
  ): () => void {
    return this.kv.watch(key, rangeEnd, startRevision, onEvents, { prevKv });
  }

  /** Proposes a membership change and resolves once it is applied on this node. */
  changeMembership(cc: ConfChange, timeoutMs = 10_000): Promise<void> {
    if (!this.#node.isLeader()) return Promise.reject(new NotLeaderError(this.groupId, this.#leader));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#confWaiters.indexOf(w);
        if (i >= 0) this.#confWaiters.splice(i, 1);
        reject(
          new RobustError(ErrorCode.Timeout, `meta group ${this.groupId}: membership change not applied within ${timeoutMs} ms`, {
            retriable: true,
          }),
        );
      }, timeoutMs);
      const w = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      try {
        this.#node.proposeConfChange(cc);
      } catch (err) {
        clearTimeout(timer);
        reject(err as Error);
        return;
      }
      this.#confWaiters.push(w);
      this.#kick();
    });
  }

  transferLeader(to: number): void {
    this.#node.transferLeader(to);
    this.#kick();
  }

  #kick(): void {
    if (this.#draining || this.#closed) return;
    if (!this.#node.hasReady() && this.#proposals.length === 0) return;
    this.#draining = true;
    void this.#drain().finally(() => {
      this.#draining = false;
      if (!this.#closed && (this.#node.hasReady() || this.#proposals.length > 0)) this.#kick();
    });
  }

  async #drain(): Promise<void> {
    for (;;) {
      this.#flushProposals();
      if (this.#closed || !this.#node.hasReady()) return;
      const rd = this.#node.ready();
      // A leader's appends and heartbeats may go out while its own disk write runs (Raft thesis
      // §10.2.1): they promise nothing about this node's disk, and the leader counts itself
      // only once the write is done. Responses and votes do promise it, so they wait.
      const sendNow = rd.messages.filter((m) => EARLY.has(m.type));
      const late = sendNow.length === rd.messages.length ? [] : rd.messages.filter((m) => !EARLY.has(m.type));
      // New entries leave at once, before this node's own write; anything else (heartbeats of
      // every group, commit-only appends) waits for the rest of this turn's messages to share a batch.
      if (sendNow.length > 0) this.#opts.send(sendNow, sendNow.some(carriesEntries));
      // Committed entries are durable on a quorum, so the leader applies them (answering its
      // callers) before this Ready's own write instead of after it: otherwise every commit would
      // wait for the fsync of the next batch. Only entries already on this node's disk qualify —
      // a single-voter group commits the entries of the very Ready that carries them, which must
      // not be acknowledged before they are written. A snapshot or a membership change keeps the
      // strict order, and followers (whom no caller waits on) apply after their write.
      const committed = rd.committedEntries;
      let early = 0;
      if (this.#node.isLeader() && rd.snapshot === undefined && !committed.some((e) => e.type === EntryType.ConfChange)) {
        const firstNew = rd.entries[0]?.index ?? Number.MAX_SAFE_INTEGER;
        while (early < committed.length && (committed[early] as Entry).index < firstNew) early++;
        for (let i = 0; i < early; i++) this.#applyEntry(committed[i] as Entry);
      }
      try {
        await this.#persist(rd);
      } catch (err) {
        // Nothing of this Ready may be acknowledged; the group stops serving.
        this.#fail(err as Error);
        return;
      }
      // Acknowledgements of appends leave before the apply below: the leader waits on them, nobody waits on this node's apply.
      if (late.length > 0) {
        const acks = late.some((m) => m.type === MessageType.AppResp);
        this.#opts.send(late, acks);
        // gRPC writes to the socket in the check phase of this loop turn, after the code that
        // runs now: applying a batch first would hold the acknowledgement back by its apply time.
        if (acks && committed.length > early) await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (rd.softState !== undefined) this.#onSoftState(rd.softState.leader, rd.softState.role);
      if (rd.snapshot !== undefined && rd.snapshot.metadata.index > this.#applied) this.#applySnapshot(rd.snapshot);
      for (let i = early; i < committed.length; i++) this.#applyEntry(committed[i] as Entry);
      const hadConfChange = rd.committedEntries.some((e) => e.type === EntryType.ConfChange);
      for (const rs of rd.readStates) {
        const r = this.#reads.get(rs.context);
        if (r === undefined) continue;
        this.#reads.delete(rs.context);
        clearTimeout(r.timer);
        this.#readWaiters.push({ index: rs.index, resolve: r.resolve });
      }
      this.#node.advance();
      if (hadConfChange) for (const w of this.#confWaiters.splice(0)) w.resolve();
      this.#releaseReads();
      // A failed snapshot is not fatal: the log still holds everything; a later one retries.
      await this.#maybeSnapshot().catch((err: unknown) => {
        if (!this.#closed) this.#log.warn({ err, group: this.groupId }, 'meta snapshot failed; will retry');
      });
    }
  }

  async #persist(rd: Ready): Promise<void> {
    if (rd.snapshot !== undefined) {
      await this.#wal.saveSnapshot(rd.snapshot, rd.hardState ?? this.#storage.initialState().hardState, rd.entries);
      this.#storage.applySnapshot(rd.snapshot);
      if (rd.entries.length > 0) this.#storage.append(rd.entries);
      if (rd.hardState !== undefined) this.#storage.setHardState(rd.hardState);
      return;
    }
    if (rd.entries.length === 0 && rd.hardState !== undefined && !rd.mustSync) {
      // Only the commit index moved. It need not be durable (a restarted node learns it from
      // the leader again), so it is written with the next entries or vote instead of costing a
      // write of its own on every commit.
      this.#unsavedHardState = rd.hardState;
    } else if (rd.entries.length > 0 || rd.hardState !== undefined) {
      const t0 = performance.now();
      await this.#wal.save(rd.entries, rd.hardState ?? this.#unsavedHardState, rd.mustSync);
      this.#unsavedHardState = undefined;
      this.#opts.metrics.walSyncSeconds.observe((performance.now() - t0) / 1000);
    }
    if (rd.entries.length > 0) this.#storage.append(rd.entries);
    if (rd.hardState !== undefined) this.#storage.setHardState(rd.hardState);
  }

  #onSoftState(leader: number, role: string): void {
    if (leader !== this.#leader) {
      const hadLeader = this.#leader !== 0;
      this.#leader = leader;
      if (hadLeader && this.#pending.size > 0) {
        // Proposals forwarded to a leader that is gone would otherwise wait for their timeout.
        // Their outcome is unknown (the old leader may have replicated them): the caller retries.
        const err = new RobustError(
          ErrorCode.NotLeader,
          `meta group ${this.groupId}: leader changed before the write was confirmed; it may or may not have been applied`,
          {
            retriable: true,
          },
        );
        for (const p of this.#pending.values()) p.reject(err);
        this.#pending.clear();
      }
      this.#log.info({ group: this.groupId, leader, role, term: this.#node.raft.term }, 'meta leader changed');
      this.#opts.metrics.leaderChanges.inc({ group: String(this.groupId) });
      this.#opts.onLeaderChange?.(leader);
    }
    if (role === Role.Leader) {
      // A new leader gives every lease a full TTL: it cannot know how long the old one waited.
      const now = Date.now();
      this.#leaseDeadlines.clear();
      this.#revoking.clear();
      for (const l of this.kv.leases()) this.#leaseDeadlines.set(l.id, now + l.ttlMs);
    }
  }

  #applySnapshot(snap: Snapshot): void {
    this.kv.restore(snap.data);
    this.#applied = snap.metadata.index;
    this.#snapshotIndex = snap.metadata.index;
    this.#log.info({ group: this.groupId, index: snap.metadata.index }, 'meta snapshot installed');
  }

  #applyEntry({ index, type, data }: Entry): void {
    if (index <= this.#applied) return;
    this.#applied = index;
    if (type !== EntryType.Normal || data.byteLength === 0) return;
    let id: string | undefined;
    try {
      const p = decodeProposal(data);
      id = p.id;
      const result = this.kv.apply(p.cmd);
      if (result.op === 'leaseGrant' || result.op === 'leaseKeepAlive') this.#leaseDeadlines.set(result.id, Date.now() + result.ttlMs);
      if (result.op === 'leaseRevoke') {
        this.#leaseDeadlines.delete(result.id);
        this.#revoking.delete(result.id);
      }
      const pend = this.#pending.get(p.id);
      if (pend !== undefined) {
        this.#pending.delete(p.id);
        pend.resolve(result);
      }
    } catch (err) {
      // The same command fails the same way on every replica: answer the proposer, move on.
      const pend = id === undefined ? undefined : this.#pending.get(id);
      if (pend !== undefined && id !== undefined) {
        this.#pending.delete(id);
        pend.reject(err as Error);
      } else if (!(err instanceof RobustError)) this.#log.error({ err, index }, 'meta entry could not be applied');
    }
  }

  #releaseReads(): void {
    if (this.#readWaiters.length === 0) return;
    const ready = this.#readWaiters.filter((w) => w.index <= this.#applied);
    this.#readWaiters = this.#readWaiters.filter((w) => w.index > this.#applied);
    for (const w of ready) w.resolve();
  }

  async #maybeSnapshot(): Promise<void> {
    const every = this.#opts.snapshotEntries ?? 10_000;
    // The first snapshot is taken early so members that join later receive the membership in it.
    if (this.#applied === 0 || (this.#snapshotIndex > 0 && this.#applied - this.#snapshotIndex < every)) return;
    if (this.#applied <= this.#snapshotIndex) return;
    const index = this.#applied;
    const snap = this.#storage.createSnapshot(index, this.#node.confState(), this.kv.snapshot());
    const after = this.#storage.entries(index + 1, this.#storage.lastIndex() + 1, Number.MAX_SAFE_INTEGER);
    await this.#wal.saveSnapshot(snap, this.#storage.initialState().hardState, after);
    // Keep some entries so slightly lagging followers catch up without a snapshot.
    const keep = Math.min(1000, Math.floor(every / 10));
    if (index - keep > this.#storage.firstIndex()) this.#storage.compact(index - keep);
    this.#snapshotIndex = index;
    this.#log.debug({ group: this.groupId, index }, 'meta snapshot taken');
  }

  #armDeadline(at: number): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineAt = at;
    this.#deadlineTimer = setTimeout(() => this.#expireProposals(), Math.max(1, at - performance.now()));
  }

  #expireProposals(): void {
    this.#deadlineTimer = undefined;
    this.#deadlineAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [id, p] of this.#pending) {
      if (p.deadline > now) {
        if (p.deadline < next) next = p.deadline;
        continue;
      }
      this.#pending.delete(id);
      p.reject(
        new RobustError(ErrorCode.Timeout, `meta group ${this.groupId}: proposal not committed within ${p.timeoutMs} ms`, {
          retriable: true,
        }),
      );
    }
    if (this.#pending.size > 0 && !this.#closed) this.#armDeadline(next);
  }

  #expireLeases(): void {
    const now = Date.now();
    for (const [id, deadline] of this.#leaseDeadlines) {
      if (deadline > now || this.#revoking.has(id)) continue;
      this.#revoking.add(id);
      this.#log.info({ group: this.groupId, lease: id }, 'meta lease expired');
      this.propose({ op: 'leaseRevoke', id }).catch((err: unknown) => {
        this.#revoking.delete(id);
        this.#log.debug({ err, lease: id }, 'meta lease revoke failed; retrying on a later tick');
      });
    }
  }

  #fail(err: Error): void {
    this.#failed = new RobustError(ErrorCode.StorageIo, `meta group ${this.groupId} stopped: ${err.message}`, { cause: err });
    this.#log.error({ err, group: this.groupId }, 'meta group failed to persist; it stops serving');
    this.#rejectAll(this.#failed);
  }

  #rejectAll(err: Error): void {
    this.#proposals = [];
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
    this.#deadlineAt = Number.POSITIVE_INFINITY;
    for (const r of this.#reads.values()) {
      clearTimeout(r.timer);
      r.reject(err);
    }
    this.#reads.clear();
    for (const w of this.#confWaiters.splice(0)) w.reject(err);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#opts.metrics.groupIndexes.delete(this.groupId);
    this.#rejectAll(new RobustError(ErrorCode.ShuttingDown, 'meta is shutting down', { retriable: true }));
    // Let a Ready being persisted finish before closing the file.
    while (this.#draining) await new Promise((r) => setImmediate(r));
    if (this.#unsavedHardState !== undefined && this.#failed === undefined)
      await this.#wal
        .save([], this.#unsavedHardState, true)
        .catch((err: unknown) => this.#log.warn({ err }, 'meta: last commit index not saved'));
    await this.#wal.close();
  }
}

export { ConfChangeType };
