import { ConfChangeRejectedError, ProposalDroppedError, invariant } from './errors.js';
import { changeConfState, decodeConfChange, type ConfChange } from './conf-change.js';
import { Progress, ProgressState } from './progress.js';
import { ProgressTracker, VoteResult } from './progress-tracker.js';
import { RaftLog } from './raft-log.js';
import { ReadOnly } from './read-only.js';
import { SeededRandom } from './random.js';
import { NO_LIMIT, type Storage } from './storage.js';
import {
  EntryType,
  MessageType,
  NONE,
  Role,
  isEmptyHardState,
  makeMessage,
  voteResponseType,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type ReadState,
  type Snapshot,
  type SoftState,
} from './types.js';

export interface RaftConfig {
  /** This node's id; never 0. */
  readonly id: number;
  readonly storage: Storage;
  /** Ticks without hearing from a leader before campaigning (randomised in [n, 2n)). Default 10. */
  readonly electionTick?: number;
  /** Ticks between leader heartbeats; must be well below electionTick. Default 1. */
  readonly heartbeatTick?: number;
  /**
   * The last index the state machine has applied, when it kept its state across a restart
   * (committed entries up to here are not handed out again, and membership changes up to here
   * are replayed from the log). Default: the index of storage.snapshot(), whose membership
   * initialState() returns.
   */
  readonly applied?: number;
  /** Byte limit of entries in one MsgApp (at least one entry is always sent). Default 1 MiB. */
  readonly maxSizePerMsg?: number;
  /** Byte limit of committed entries in one Ready. Default 8 MiB. */
  readonly maxCommittedSizePerReady?: number;
  /** MsgApp batches in flight to one follower while pipelining. Default 256. */
  readonly maxInflightMsgs?: number;
  /** The leader steps down when it has not heard from a quorum for an election timeout. Default true. */
  readonly checkQuorum?: boolean;
  /** Run a PreVote round (no term change) before a real election. Default true. */
  readonly preVote?: boolean;
  /** Followers drop proposals instead of forwarding them to the leader. Default false. */
  readonly disableProposalForwarding?: boolean;
  /** Source of election-timeout jitter; the only randomness in the core. Default: seeded by id. */
  readonly random?: { int(n: number): number };
}

/** A follower's replication state as the leader sees it. */
export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  readonly recentActive: boolean;
  readonly pendingSnapshot: number;
  readonly inflight: number;
}

export interface Status {
  readonly id: number;
  readonly term: number;
  readonly vote: number;
  readonly leader: number;
  readonly role: Role;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  readonly leadTransferee: number;
  /** Per member, on the leader only (empty elsewhere). */
  readonly progress: ReadonlyMap<number, ProgressStatus>;
}

const CampaignType = { PreElection: 'preElection', Election: 'election', Transfer: 'transfer' } as const;
type CampaignType = (typeof CampaignType)[keyof typeof CampaignType];

/** Context of a vote request sent because of MsgTimeoutNow: it bypasses leader leases. */
const CAMPAIGN_TRANSFER = 'CampaignTransfer';

/**
 * How this works: the Raft protocol as a deterministic state machine, ported from etcd's
 * raft.go (v3.5 semantics, without joint consensus and without async storage writes).
 *
 * - `step(m)` feeds one message (network or local); `tick()` advances logical time. Output
 *   accumulates in `msgs`, `readStates`, the log's unstable part and its commit index, and is
 *   collected by RawNode into a Ready.
 * - The leader counts its own unstable entries as replicated: that is safe only because the
 *   application persists every Ready before sending its messages or applying its entries.
 * - Membership changes take effect when applied (RawNode applies conf-change entries when the
 *   application advances past them); at most one is unapplied on the leader at a time, and a
 *   new leader accepts none until it has applied everything up to its election.
 */
export class Raft {
  readonly id: number;
  term = 0;
  vote = NONE;
  lead = NONE;
  role: Role = Role.Follower;
  isLearner = false;
  readonly raftLog: RaftLog;
  prs: ProgressTracker;
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  leadTransferee = NONE;
  /** Index of the last conf change appended by this leader; none may be proposed until applied. */
  pendingConfIndex = 0;
  readOnly = new ReadOnly();
  /** ReadIndex requests held until this leader has committed an entry of its own term. */
  private pendingReadIndexMessages: Message[] = [];

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  readonly electionTimeout: number;
  readonly heartbeatTimeout: number;
  private readonly maxMsgSize: number;
  private readonly checkQuorum: boolean;
  private readonly preVote: boolean;
  private readonly disableProposalForwarding: boolean;
  private readonly random: { int(n: number): number };

  constructor(c: RaftConfig) {
    invariant(c.id !== NONE, 'cannot use 0 as a node id');
    this.id = c.id;
    this.electionTimeout = c.electionTick ?? 10;
    this.heartbeatTimeout = c.heartbeatTick ?? 1;
    invariant(this.heartbeatTimeout > 0, 'heartbeatTick must be > 0');
    invariant(this.electionTimeout > this.heartbeatTimeout, 'electionTick must be > heartbeatTick');
    this.maxMsgSize = c.maxSizePerMsg ?? 1024 * 1024;
    this.checkQuorum = c.checkQuorum ?? true;
    this.preVote = c.preVote ?? true;
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;
    this.random = c.random ?? new SeededRandom(c.id);
    this.raftLog = new RaftLog(c.storage, c.maxCommittedSizePerReady ?? 8 * 1024 * 1024);
    this.prs = new ProgressTracker(c.maxInflightMsgs ?? 256);

    const { hardState, confState } = c.storage.initialState();
    // The membership from initialState() is as of the snapshot, which may be past the
    // compaction point (storage can keep a tail of entries before it): start applying there.
    const snapshotIndex = c.storage.snapshot().metadata.index;
    if (snapshotIndex > this.raftLog.applied) {
      this.raftLog.committed = snapshotIndex;
      this.raftLog.applied = snapshotIndex;
    }
    this.restoreConfig(confState);
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (c.applied !== undefined && c.applied > this.raftLog.applied) {
      // The state machine kept its state past the snapshot: replay the membership changes it
      // already applied, so the configuration matches what it has applied.
      const ents = this.raftLog.slice(this.raftLog.applied + 1, c.applied + 1, NO_LIMIT);
      invariant(ents !== undefined, `entries up to applied ${c.applied} are compacted`);
      for (const e of ents) if (e.type === EntryType.ConfChange) this.applyConfChange(decodeConfChange(e.data));
      this.raftLog.appliedTo(c.applied);
    }
    this.becomeFollower(this.term, NONE);
  }

  // ---- state accessors ------------------------------------------------------------------

  softState(): SoftState {
    return { leader: this.lead, role: this.role };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  confState(): ConfState {
    return this.prs.confState();
  }

  status(): Status {
    const progress = new Map<number, ProgressStatus>();
    if (this.role === Role.Leader) {
      for (const [id, pr] of this.prs.progress) {
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          isLearner: pr.isLearner,
          recentActive: pr.recentActive,
          pendingSnapshot: pr.pendingSnapshot,
          inflight: pr.inflights.count(),
        });
      }
    }
    const cs = this.prs.confState();
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      leader: this.lead,
      role: this.role,
      commit: this.raftLog.committed,
      applied: this.raftLog.applied,
      lastIndex: this.raftLog.lastIndex(),
      voters: cs.voters,
      learners: cs.learners,
      leadTransferee: this.leadTransferee,
      progress,
    };
  }

  private loadState(hs: HardState): void {
    invariant(
      hs.commit >= this.raftLog.committed && hs.commit <= this.raftLog.lastIndex(),
      `hard state commit ${hs.commit} outside [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
    );
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---- role transitions -----------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTimeout + this.random.int(this.electionTimeout);
    this.abortLeaderTransfer();
    this.prs.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, pr] of this.prs.progress) {
      const fresh = new Progress(0, last + 1, this.prs.maxInflight, pr.isLearner);
      if (id === this.id) fresh.match = last;
      this.prs.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
  }

  becomeFollower(term: number, lead: number): void {
    this.reset(term);
    this.lead = lead;
    this.role = Role.Follower;
  }

  private becomeCandidate(): void {
    invariant(this.role !== Role.Leader, 'invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
  }

  private becomePreCandidate(): void {
    invariant(this.role !== Role.Leader, 'invalid transition [leader -> pre-candidate]');
    // A pre-candidate changes neither term nor vote, so a lost PreVote disturbs nobody.
    this.prs.resetVotes();
    this.lead = NONE;
    this.role = Role.PreCandidate;
  }

  private becomeLeader(): void {
    invariant(this.role !== Role.Follower, 'invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.role = Role.Leader;
    const self = this.prs.progress.get(this.id);
    if (self !== undefined) {
      self.becomeReplicate();
      self.recentActive = true;
    }
    // Conservatively treat the whole log as possibly holding a conf change: none may be
    // proposed until everything up to here is applied (the fix for single-server changes
    // across leader changes, Raft thesis §4.1 / etcd).
    this.pendingConfIndex = this.raftLog.lastIndex();
    // An empty entry of the new term: committing it commits everything before it (§5.4.2)
    // and enables ReadIndex.
    this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array() }]);
  }

  // ---- ticks ------------------------------------------------------------------------------

  tick(): void {
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.step(makeMessage({ type: MessageType.Hup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(makeMessage({ type: MessageType.CheckQuorum, from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.role === Role.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.role !== Role.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(makeMessage({ type: MessageType.Beat, from: this.id }));
    }
  }

  /** Can this node campaign? Voters only, and not while a snapshot is waiting to be persisted. */
  promotable(): boolean {
    const pr = this.prs.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasPendingSnapshot();
  }

  // ---- elections --------------------------------------------------------------------------

  private hup(t: CampaignType): void {
    if (this.role === Role.Leader) return;
    if (!this.promotable()) return;
    if (this.raftLog.committed > this.raftLog.applied) {
      // A committed but unapplied membership change could make our view of the voters stale.
      const ents = this.raftLog.slice(this.raftLog.applied + 1, this.raftLog.committed + 1, NO_LIMIT) ?? [];
      if (ents.some((e) => e.type === EntryType.ConfChange)) return;
    }
    this.campaign(t);
  }

  private campaign(t: CampaignType): void {
    if (!this.promotable()) return;
    let term: number;
    let voteType: MessageType;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteType = MessageType.PreVote;
      // PreVote asks about the term we would use, without moving to it yet.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteType = MessageType.Vote;
      term = this.term;
    }
    if (this.poll(this.id, true) === VoteResult.Won) {
      // A single-voter group wins at once.
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election);
      else {
        this.becomeLeader();
        this.bcastAppend();
      }
      return;
    }
    const ids = [...this.prs.voters].sort((a, b) => a - b);
    for (const id of ids) {
      if (id === this.id) continue;
      this.send({
        type: voteType,
        to: id,
        term,
        index: this.raftLog.lastIndex(),
        logTerm: this.raftLog.lastTerm(),
        context: t === CampaignType.Transfer ? CAMPAIGN_TRANSFER : '',
      });
    }
  }

  private poll(id: number, granted: boolean): VoteResult {
    this.prs.recordVote(id, granted);
    return this.prs.tallyVotes().result;
  }

  // ---- step ---------------------------------------------------------------------------------

  /**
   * Processes one message. With `local` (a proposal made on this node) it throws
   * ProposalDroppedError / ConfChangeRejectedError when the proposal cannot be taken; a
   * proposal from the network that cannot be taken is dropped silently.
   */
  step(m: Message, local = false): void {
    if (m.term === 0) {
      // local message, or a forwarded proposal / read request
    } else if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context === CAMPAIGN_TRANSFER;
        const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        // Within an election timeout of hearing from a live leader, neither update the term
        // nor grant a vote: a partitioned or removed node cannot depose a healthy leader.
        if (!force && inLease) return;
      }
      if (m.type === MessageType.PreVote) {
        // Never change our term in response to a PreVote.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // The term in a granted PreVote response is the one we would campaign at; we move to
        // it once a quorum grants.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.Heartbeat || m.type === MessageType.App)) {
        // A leader of an older term: we may have moved on during a partition and can neither
        // win nor rejoin at our term (peers in lease ignore our votes). Telling it our term
        // makes it step down, freeing the group to elect a leader at a term that includes us.
        this.send({ type: MessageType.AppResp, to: m.from });
      } else if (m.type === MessageType.PreVote) {
        // A pre-candidate at a lower term must hear it lost, or it would wait forever.
        this.send({ type: MessageType.PreVoteResp, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    switch (m.type) {
      case MessageType.Hup:
        this.hup(this.preVote ? CampaignType.PreElection : CampaignType.Election);
        return;
      case MessageType.Vote:
      case MessageType.PreVote: {
        const canVote =
          // a repeat of a vote we already cast,
          this.vote === m.from ||
          // or no vote cast and no leader known in this term,
          (this.vote === NONE && this.lead === NONE) ||
          // or a PreVote for a future term;
          (m.type === MessageType.PreVote && m.term > this.term);
        // and the candidate's log is at least as up to date as ours (§5.4.1).
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          // We reply at the request's term: for a PreVote our own term may be older, and the
          // pre-candidate ignores responses below its (future) term.
          this.send({ type: voteResponseType(m.type), to: m.from, term: m.term });
          if (m.type === MessageType.Vote) {
            // Only real votes are recorded (and persisted through the hard state).
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send({ type: voteResponseType(m.type), to: m.from, term: this.term, reject: true });
        }
        return;
      }
      default:
        switch (this.role) {
          case Role.Leader:
            this.stepLeader(m, local);
            return;
          case Role.Candidate:
          case Role.PreCandidate:
            this.stepCandidate(m, local);
            return;
          case Role.Follower:
            this.stepFollower(m, local);
            return;
        }
    }
  }

  private stepLeader(m: Message, local: boolean): void {
    switch (m.type) {
      case MessageType.Beat:
        this.bcastHeartbeat();
        return;
      case MessageType.CheckQuorum:
        if (!this.prs.quorumActive(this.id)) this.becomeFollower(this.term, NONE);
        for (const [id, pr] of this.prs.progress) if (id !== this.id) pr.recentActive = false;
        return;
      case MessageType.Prop:
        this.leaderPropose(m, local);
        return;
      case MessageType.ReadIndex:
        if (this.prs.isSingleton()) {
          this.respondToReadIndex(m, this.raftLog.committed);
          return;
        }
        // A new leader's commit index may lag what its predecessor committed; it is a valid
        // read point only once an entry of this term is committed.
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m);
          return;
        }
        this.startReadIndex(m);
        return;
      default:
        break;
    }

    const pr = this.prs.progress.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp: {
        pr.recentActive = true;
        pr.probeSent = false;
        // Free one slot of a full window so a lost MsgApp cannot stall the follower forever.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);
        if (m.context === '') return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (acks === undefined || this.prs.voteResult(acks) !== VoteResult.Won) return;
        for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
        return;
      }
      case MessageType.SnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // After a snapshot wait for the follower's MsgAppResp; after a failure, for a
        // heartbeat response, before probing again.
        pr.probeSent = true;
        return;
      case MessageType.Unreachable:
        // While pipelining, an unreachable peer has probably lost a MsgApp: probe again.
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
      case MessageType.TransferLeader: {
        if (pr.isLearner) return;
        const transferee = m.from;
        if (this.leadTransferee !== NONE) {
          if (this.leadTransferee === transferee) return;
          this.abortLeaderTransfer();
        }
        if (transferee === this.id) return;
        // The transfer must finish within an election timeout.
        this.electionElapsed = 0;
        this.leadTransferee = transferee;
        if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
        else this.sendAppend(transferee);
        return;
      }
      default:
        return;
    }
  }

  private leaderPropose(m: Message, local: boolean): void {
    invariant(m.entries.length > 0, `${this.id} stepped an empty MsgProp`);
    if (!this.prs.progress.has(this.id)) {
      // Removed from the membership while leading: take nothing new.
      if (local) throw new ProposalDroppedError('this leader was removed from the group', NONE);
      return;
    }
    if (this.leadTransferee !== NONE) {
      if (local) throw new ProposalDroppedError(`leadership is moving to ${this.leadTransferee}`, this.leadTransferee);
      return;
    }
    const ents: Entry[] = [];
    let confIndex = this.pendingConfIndex;
    for (const [i, e] of m.entries.entries()) {
      let refused: ConfChangeRejectedError | undefined;
      if (e.type === EntryType.ConfChange) {
        let cc: ConfChange | undefined;
        try {
          cc = decodeConfChange(e.data);
        } catch {
          refused = new ConfChangeRejectedError('malformed change', false);
        }
        if (cc !== undefined) {
          if (confIndex > this.raftLog.applied) {
            refused = new ConfChangeRejectedError(
              `a membership change (index ${confIndex}) is not applied yet (applied ${this.raftLog.applied})`,
              true,
            );
          } else {
            const r = changeConfState(this.prs.confState(), cc);
            if ('refused' in r) refused = new ConfChangeRejectedError(r.refused, false);
          }
        }
        if (refused === undefined) confIndex = this.raftLog.lastIndex() + i + 1;
      }
      if (refused !== undefined) {
        if (local) throw refused;
        // A forwarded change we refuse becomes an empty entry, as in etcd: the proposer learns
        // the outcome by watching what gets applied.
        ents.push({ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array() });
      } else ents.push(e);
    }
    this.pendingConfIndex = confIndex;
    this.appendEntries(ents);
    this.bcastAppend();
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      // The follower told us the largest index at which our logs may agree (rejectHint) and its
      // term there (logTerm); skip every index of ours with a larger term in one go.
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm)[0];
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === ProgressState.Probe) pr.becomeReplicate();
    else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(m.index);

    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else if (oldPaused) {
      // It was paused, so it may be missing the latest commit index.
      this.sendAppend(m.from);
    }
    // The window may have room for several batches now.
    while (this.maybeSendAppend(m.from, false)) {
      // keep sending
    }
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private stepCandidate(m: Message, local: boolean): void {
    const myVoteResp = this.role === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Prop:
        if (local) throw new ProposalDroppedError('no leader (election in progress)', NONE);
        return;
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.TimeoutNow:
        return;
      default:
        if (m.type !== myVoteResp) return;
        switch (this.poll(m.from, !m.reject)) {
          case VoteResult.Won:
            if (this.role === Role.PreCandidate) this.campaign(CampaignType.Election);
            else {
              this.becomeLeader();
              this.bcastAppend();
            }
            return;
          case VoteResult.Lost:
            // A PreVoteResp carries a future term; stay at ours.
            this.becomeFollower(this.term, NONE);
            return;
          case VoteResult.Pending:
            return;
        }
    }
  }

  private stepFollower(m: Message, local: boolean): void {
    switch (m.type) {
      case MessageType.Prop: {
        if (this.lead === NONE) {
          if (local) throw new ProposalDroppedError('no leader', NONE);
          return;
        }
        if (this.disableProposalForwarding) {
          if (local) throw new ProposalDroppedError('proposal forwarding is disabled', this.lead);
          return;
        }
        this.msgs.push({ ...m, to: this.lead, from: m.from === NONE ? this.id : m.from });
        return;
      }
      case MessageType.App:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TransferLeader:
        if (this.lead === NONE) return;
        this.msgs.push({ ...m, to: this.lead, term: this.term });
        return;
      case MessageType.TimeoutNow:
        // Campaign at once, skipping PreVote; the context lets voters ignore their lease.
        this.hup(CampaignType.Transfer);
        return;
      case MessageType.ReadIndex:
        if (this.lead === NONE) return;
        this.msgs.push({ ...m, to: this.lead, from: m.from === NONE ? this.id : m.from });
        return;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
        return;
    }
  }

  // ---- follower handlers --------------------------------------------------------------------

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      this.send({ type: MessageType.AppResp, to: m.from, index: this.raftLog.committed });
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send({ type: MessageType.AppResp, to: m.from, index: lastNew });
      return;
    }
    // Tell the leader the largest index at which our logs may still agree, and our term
    // there, so it can skip a whole diverging term instead of one index per round trip.
    const [hintIndex, hintTerm] = this.raftLog.findConflictByTerm(Math.min(m.index, this.raftLog.lastIndex()), m.logTerm);
    this.send({ type: MessageType.AppResp, to: m.from, index: m.index, reject: true, rejectHint: hintIndex, logTerm: hintTerm });
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    this.send({ type: MessageType.HeartbeatResp, to: m.from, context: m.context });
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (s === undefined) return;
    if (this.restore(s)) this.send({ type: MessageType.AppResp, to: m.from, index: this.raftLog.lastIndex() });
    else this.send({ type: MessageType.AppResp, to: m.from, index: this.raftLog.committed });
  }

  /** Installs a snapshot from the leader; false if it brings nothing new. */
  private restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.role !== Role.Follower) {
      // Defence in depth: only a follower installs snapshots.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = s.metadata.confState;
    const inSnapshot = cs.voters.includes(this.id) || cs.learners.includes(this.id);
    const fresh = this.prs.voters.size === 0 && this.prs.learners.size === 0;
    // A node that is not a member as of the snapshot should not get it, unless it is brand new
    // (a learner being added; a later entry will add it).
    if (!inSnapshot && !fresh) return false;
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the log up to the snapshot: just move commit forward.
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    this.restoreConfig(cs);
    return true;
  }

  // ---- leader helpers ---------------------------------------------------------------------

  private appendEntries(ents: readonly Entry[]): void {
    let li = this.raftLog.lastIndex();
    const stamped = ents.map((e) => ({ term: this.term, index: ++li, type: e.type, data: e.data }));
    li = this.raftLog.append(stamped);
    this.prs.progress.get(this.id)?.maybeUpdate(li);
    this.maybeCommit();
  }

  private maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.prs.committed(), this.term);
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.term(this.raftLog.committed) === this.term;
  }

  private bcastAppend(): void {
    for (const id of this.prs.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private sendAppend(to: number): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends a MsgApp (or a snapshot when the needed entries are compacted) to `to`, unless its
   * progress is paused. With sendIfEmpty false, nothing is sent when there are no new entries.
   */
  private maybeSendAppend(to: number, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevTerm = this.raftLog.term(pr.next - 1);
    const ents = this.raftLog.entriesFrom(pr.next, this.maxMsgSize);
    if (ents !== undefined && ents.length === 0 && !sendIfEmpty) return false;
    if (prevTerm === undefined || ents === undefined) {
      // The entries are compacted: send the snapshot instead.
      if (!pr.recentActive) return false;
      const snapshot = this.raftLog.snapshot();
      invariant(snapshot.metadata.index > 0, 'need a non-empty snapshot');
      pr.becomeSnapshot(snapshot.metadata.index);
      this.send({ type: MessageType.Snap, to, snapshot });
      return true;
    }
    this.send({ type: MessageType.App, to, index: pr.next - 1, logTerm: prevTerm, entries: ents, commit: this.raftLog.committed });
    const n = ents.length;
    if (n > 0) {
      if (pr.state === ProgressState.Replicate) {
        const last = (ents[n - 1] as Entry).index;
        pr.optimisticUpdate(last);
        pr.inflights.add(last);
      } else if (pr.state === ProgressState.Probe) pr.probeSent = true;
      else invariant(false, `sending append in unhandled state ${pr.state}`);
    }
    return true;
  }

  private bcastHeartbeat(context = this.readOnly.lastPendingContext()): void {
    for (const [id, pr] of this.prs.progress) {
      if (id === this.id) continue;
      // Never tell a follower a commit index beyond what it is known to hold.
      const commit = Math.min(pr.match, this.raftLog.committed);
      this.send({ type: MessageType.Heartbeat, to: id, commit, context });
    }
  }

  private sendTimeoutNow(to: number): void {
    this.send({ type: MessageType.TimeoutNow, to });
  }

  private abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  private startReadIndex(m: Message): void {
    this.readOnly.addRequest(this.raftLog.committed, m);
    this.readOnly.recvAck(this.id, m.context);
    this.bcastHeartbeat(m.context);
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.startReadIndex(m);
  }

  private respondToReadIndex(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, context: req.context });
      return;
    }
    this.send({ type: MessageType.ReadIndexResp, to: req.from, index, context: req.context });
  }

  // ---- membership -----------------------------------------------------------------------------

  private restoreConfig(cs: ConfState): void {
    this.prs = new ProgressTracker(this.prs.maxInflight);
    const last = this.raftLog.lastIndex();
    for (const id of cs.voters) {
      this.prs.voters.add(id);
      this.prs.progress.set(id, new Progress(0, last + 1, this.prs.maxInflight, false));
    }
    for (const id of cs.learners) {
      this.prs.learners.add(id);
      this.prs.progress.set(id, new Progress(0, last + 1, this.prs.maxInflight, true));
    }
    const self = this.prs.progress.get(this.id);
    if (self !== undefined) self.match = last;
    this.isLearner = self?.isLearner ?? false;
  }

  /**
   * Applies a committed membership change (called by RawNode as the application advances past
   * it). An invalid change is a no-op, identically on every member.
   */
  applyConfChange(cc: ConfChange): ConfState {
    const r = changeConfState(this.prs.confState(), cc);
    if ('refused' in r) return this.prs.confState();
    const { voters, learners } = r.confState;
    const last = this.raftLog.lastIndex();
    for (const id of [...this.prs.progress.keys()]) {
      if (!voters.includes(id) && !learners.includes(id)) this.prs.progress.delete(id);
    }
    this.prs.voters = new Set(voters);
    this.prs.learners = new Set(learners);
    for (const id of [...voters, ...learners]) {
      const isLearner = learners.includes(id);
      const pr = this.prs.progress.get(id);
      if (pr === undefined) {
        const fresh = new Progress(0, Math.max(last, 1), this.prs.maxInflight, isLearner);
        // A new member starts as active so it can be sent a snapshot at once.
        fresh.recentActive = true;
        this.prs.progress.set(id, fresh);
      } else pr.isLearner = isLearner;
    }
    const self = this.prs.progress.get(this.id);
    this.isLearner = self?.isLearner ?? false;

    if (this.role === Role.Leader) {
      if (self === undefined || self.isLearner) {
        // This leader was removed: step down (the rest elect a new leader).
        this.becomeFollower(this.term, NONE);
      } else {
        if (this.maybeCommit()) this.bcastAppend();
        else for (const id of this.prs.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, false);
        if (this.leadTransferee !== NONE && !this.prs.voters.has(this.leadTransferee)) this.abortLeaderTransfer();
      }
    }
    return this.prs.confState();
  }

  // ---- output -----------------------------------------------------------------------------------

  private send(fields: Partial<Message> & { type: MessageType; to: number }): void {
    const t = fields.type;
    let term = fields.term ?? 0;
    if (t === MessageType.Vote || t === MessageType.VoteResp || t === MessageType.PreVote || t === MessageType.PreVoteResp) {
      invariant(term !== 0, `term should be set when sending ${t}`);
    } else {
      invariant(term === 0, `term should not be set when sending ${t} (was ${term})`);
      // Proposals and read requests are forwarded as local messages, without a term.
      if (t !== MessageType.Prop && t !== MessageType.ReadIndex) term = this.term;
    }
    this.msgs.push(makeMessage({ ...fields, from: fields.from ?? this.id, term }));
  }
}
