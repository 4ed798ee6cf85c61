import { invariant } from './errors.js';
import { decodeConfChange, encodeConfChange, type ConfChange } from './conf-change.js';
import { Raft, type RaftConfig, type Status } from './raft.js';
import {
  EntryType,
  MessageType,
  Role,
  isEmptyHardState,
  isLocalMessage,
  isResponseMessage,
  makeMessage,
  type ConfState,
  type HardState,
  type Message,
  type Ready,
  type SoftState,
} from './types.js';

/**
 * The application's handle on one Raft group member (etcd's RawNode). Drive it with `tick()`,
 * `step()` and the proposal methods; collect work with `ready()`, do it (persist, send, apply —
 * see Ready), then call `advance()`. Single-threaded: no call may overlap another.
 *
 * Membership changes are applied by `advance()` for the conf-change entries of the Ready being
 * acknowledged, so the configuration always matches what the state machine has applied.
 */
export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private outstanding: Ready | undefined = undefined;

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  /** Advances logical time by one tick (election and heartbeat timeouts count ticks). */
  tick(): void {
    this.raft.tick();
  }

  /** Starts an election now (PreVote first when enabled), as if the election timeout fired. */
  campaign(): void {
    this.raft.step(makeMessage({ type: MessageType.Hup, from: this.raft.id }));
  }

  /**
   * Proposes data for the log. On a follower the proposal is forwarded to the leader. Throws
   * ProposalDroppedError when there is no leader to take it; acceptance does not mean commit —
   * watch committed entries for the outcome.
   */
  propose(data: Uint8Array): void {
    this.proposeBatch([data]);
  }

  /**
   * Proposes several entries as one MsgProp: the leader appends them together and replicates
   * them in one MsgApp per follower instead of one per entry. All or none are accepted.
   */
  proposeBatch(batch: readonly Uint8Array[]): void {
    if (batch.length === 0) return;
    this.raft.step(
      makeMessage({
        type: MessageType.Prop,
        from: this.raft.id,
        entries: batch.map((data) => ({ term: 0, index: 0, type: EntryType.Normal, data })),
      }),
      true,
    );
  }

  /**
   * Proposes a membership change. On the leader it throws ConfChangeRejectedError while another
   * change is unapplied or when the change is invalid; forwarded from a follower, a refused
   * change becomes an empty entry.
   */
  proposeConfChange(cc: ConfChange): void {
    this.raft.step(
      makeMessage({
        type: MessageType.Prop,
        from: this.raft.id,
        entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }],
      }),
      true,
    );
  }

  /** Feeds a message received from a peer. Local message types are refused. */
  step(m: Message): void {
    invariant(!isLocalMessage(m.type), `cannot step local message ${m.type} from the network`);
    // Responses from peers we do not track (removed, or not yet added) are ignored.
    if (isResponseMessage(m.type) && !this.raft.prs.progress.has(m.from)) return;
    this.raft.step(m);
  }

  /**
   * Requests a linearizable read point. `context` must be unique per request; the answer comes
   * back as a ReadState with the same context in a later Ready (or never, if leadership is lost:
   * time out and retry).
   */
  readIndex(context: string): void {
    this.raft.step(makeMessage({ type: MessageType.ReadIndex, context }));
  }

  /** Asks the leader to hand leadership to `transferee` (a voter). */
  transferLeader(transferee: number): void {
    this.raft.step(makeMessage({ type: MessageType.TransferLeader, from: transferee }));
  }

  /** The transport failed to deliver to `id` (lets the leader stop pipelining to it). */
  reportUnreachable(id: number): void {
    this.raft.step(makeMessage({ type: MessageType.Unreachable, from: id }));
  }

  /** The transport finished sending a snapshot to `id` (ok) or gave up (not ok). */
  reportSnapshot(id: number, ok: boolean): void {
    this.raft.step(makeMessage({ type: MessageType.SnapStatus, from: id, reject: !ok }));
  }

  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    const r = this.raft;
    const ss = r.softState();
    if (ss.leader !== this.prevSoftState.leader || ss.role !== this.prevSoftState.role) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !sameHardState(hs, this.prevHardState)) return true;
    if (r.raftLog.hasPendingSnapshot()) return true;
    return r.msgs.length > 0 || r.raftLog.unstableEntries().length > 0 || r.raftLog.hasNextCommittedEntries() || r.readStates.length > 0;
  }

  /** Collects the pending work. Call advance() before the next ready(). */
  ready(): Ready {
    invariant(this.outstanding === undefined, 'ready() called again before advance()');
    const r = this.raft;
    const ss = r.softState();
    const hs = r.hardState();
    const entries = [...r.raftLog.unstableEntries()];
    const softChanged = ss.leader !== this.prevSoftState.leader || ss.role !== this.prevSoftState.role;
    const hardChanged = !isEmptyHardState(hs) && !sameHardState(hs, this.prevHardState);
    const rd: Ready = {
      softState: softChanged ? ss : undefined,
      hardState: hardChanged ? hs : undefined,
      readStates: r.readStates,
      entries,
      snapshot: r.raftLog.unstable.snapshot,
      committedEntries: r.raftLog.nextCommittedEntries(),
      messages: r.msgs,
      mustSync: entries.length > 0 || hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote,
    };
    if (softChanged) this.prevSoftState = ss;
    r.readStates = [];
    r.msgs = [];
    this.outstanding = rd;
    return rd;
  }

  /** Acknowledges the last Ready: it is persisted, its messages sent, its entries applied. */
  advance(): void {
    const rd = this.outstanding;
    invariant(rd !== undefined, 'advance() without a ready()');
    this.outstanding = undefined;
    const r = this.raft;
    if (rd.hardState !== undefined) this.prevHardState = rd.hardState;
    for (const e of rd.committedEntries) if (e.type === EntryType.ConfChange) r.applyConfChange(decodeConfChange(e.data));
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    const newApplied = lastCommitted?.index ?? rd.snapshot?.metadata.index ?? 0;
    if (newApplied > 0) r.raftLog.appliedTo(newApplied);
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined) r.raftLog.stableTo(lastEntry.index, lastEntry.term);
    if (rd.snapshot !== undefined) r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
  }

  status(): Status {
    return this.raft.status();
  }

  /** The membership as of the last applied entry (what a snapshot taken now must record). */
  confState(): ConfState {
    return this.raft.confState();
  }

  get id(): number {
    return this.raft.id;
  }

  isLeader(): boolean {
    return this.raft.role === Role.Leader;
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
