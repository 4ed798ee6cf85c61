/**
 * Plain data types of the Raft core: log entries, messages, hard state, snapshots, Ready.
 * Everything here is serialisable as it is (numbers, strings, Uint8Array) so a transport or a
 * write-ahead log can encode it without help from the core.
 */

/** Node id 0 means "nobody" (no leader, no vote). */
export const NONE = 0;

export const EntryType = { Normal: 'normal', ConfChange: 'confChange' } as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What must be on disk before any message of the same Ready is sent. */
export interface HardState {
  readonly term: number;
  readonly vote: number;
  readonly commit: number;
}

/** The membership: voters count in quorums; learners only receive the log. */
export interface ConfState {
  readonly voters: readonly number[];
  readonly learners: readonly number[];
}

export interface SnapshotMetadata {
  readonly index: number;
  readonly term: number;
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly data: Uint8Array;
  readonly metadata: SnapshotMetadata;
}

export const MessageType = {
  /** Local: start an election (PreVote first when enabled). */
  Hup: 'MsgHup',
  /** Local: the leader should broadcast heartbeats. */
  Beat: 'MsgBeat',
  /** A proposal; local, or forwarded from a follower to the leader. */
  Prop: 'MsgProp',
  App: 'MsgApp',
  AppResp: 'MsgAppResp',
  Vote: 'MsgVote',
  VoteResp: 'MsgVoteResp',
  PreVote: 'MsgPreVote',
  PreVoteResp: 'MsgPreVoteResp',
  Snap: 'MsgSnap',
  Heartbeat: 'MsgHeartbeat',
  HeartbeatResp: 'MsgHeartbeatResp',
  /** Local: the transport could not reach `from`. */
  Unreachable: 'MsgUnreachable',
  /** Local: the transport finished (or failed) sending a snapshot to `from`. */
  SnapStatus: 'MsgSnapStatus',
  /** Local: the leader checks it heard from a quorum during the last election timeout. */
  CheckQuorum: 'MsgCheckQuorum',
  /** Local or forwarded: make `from` the leader. */
  TransferLeader: 'MsgTransferLeader',
  /** Leader → transferee: campaign now, ignoring the election timeout and leader leases. */
  TimeoutNow: 'MsgTimeoutNow',
  ReadIndex: 'MsgReadIndex',
  ReadIndexResp: 'MsgReadIndexResp',
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export interface Message {
  readonly type: MessageType;
  readonly to: number;
  readonly from: number;
  /** 0 for local messages and for forwarded proposals / read requests. */
  readonly term: number;
  /** Term of the entry at `index` (MsgApp), candidate's last term (votes), hint term (rejections). */
  readonly logTerm: number;
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly snapshot: Snapshot | undefined;
  readonly reject: boolean;
  readonly rejectHint: number;
  /** ReadIndex request context, or the campaign-transfer marker on votes. */
  readonly context: string;
}

/** Builds a message with every field not given set to its zero value. */
export function makeMessage(fields: Partial<Message> & { type: MessageType }): Message {
  return {
    to: NONE,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: undefined,
    reject: false,
    rejectHint: 0,
    context: '',
    ...fields,
  };
}

export const Role = {
  Follower: 'follower',
  PreCandidate: 'preCandidate',
  Candidate: 'candidate',
  Leader: 'leader',
} as const;
export type Role = (typeof Role)[keyof typeof Role];

/** Volatile state worth telling the application about (not persisted). */
export interface SoftState {
  readonly leader: number;
  readonly role: Role;
}

/** A linearizable read point: once `index` is applied locally, the read named `context` may be served. */
export interface ReadState {
  readonly index: number;
  readonly context: string;
}

/**
 * One batch of work for the application. Handle it in this order, then call `advance()`:
 * 1. persist `snapshot` (if any), `entries` (appending, truncating any conflicting suffix) and
 *    `hardState` (if any) — durably when `mustSync`;
 * 2. send `messages` (only now: a vote or an acknowledgement must never outrun the disk);
 * 3. apply `snapshot` then `committedEntries` to the state machine; serve `readStates` once applied.
 */
export interface Ready {
  readonly softState: SoftState | undefined;
  readonly hardState: HardState | undefined;
  readonly readStates: readonly ReadState[];
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | undefined;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly mustSync: boolean;
}

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NONE, commit: 0 });

export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}

export function isEmptySnapshot(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

/** Messages produced and consumed inside one node (never sent over the network). */
export function isLocalMessage(t: MessageType): boolean {
  return (
    t === MessageType.Hup ||
    t === MessageType.Beat ||
    t === MessageType.Unreachable ||
    t === MessageType.SnapStatus ||
    t === MessageType.CheckQuorum
  );
}

export function isResponseMessage(t: MessageType): boolean {
  return (
    t === MessageType.AppResp ||
    t === MessageType.VoteResp ||
    t === MessageType.HeartbeatResp ||
    t === MessageType.Unreachable ||
    t === MessageType.PreVoteResp
  );
}

export function voteResponseType(t: MessageType): MessageType {
  if (t === MessageType.Vote) return MessageType.VoteResp;
  if (t === MessageType.PreVote) return MessageType.PreVoteResp;
  throw new Error(`not a vote message: ${t}`);
}
