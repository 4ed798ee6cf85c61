import { randomUUID } from 'node:crypto';
import type { Logger } from '@robustmq/common';
import { KafkaError } from './errors.js';
import { Reader } from './wire/reader.js';

export const GroupState = {
  Empty: 'Empty',
  PreparingRebalance: 'PreparingRebalance',
  CompletingRebalance: 'CompletingRebalance',
  Stable: 'Stable',
} as const;
export type GroupState = (typeof GroupState)[keyof typeof GroupState];

export interface GroupProtocol {
  name: string;
  metadata: Buffer;
}

export interface JoinRequest {
  groupId: string;
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: GroupProtocol[];
  /** JoinGroup v4+ (KIP-394): a join without member id gets MEMBER_ID_REQUIRED and an id to rejoin with. */
  requireKnownMemberId: boolean;
}

export interface JoinResult {
  errorCode: number;
  generationId: number;
  protocolType: string | null;
  protocolName: string | null;
  leader: string;
  memberId: string;
  /** Every member's metadata for the leader, empty for the others. */
  members: { memberId: string; groupInstanceId: string | null; metadata: Buffer }[];
  /** A static leader re-joined a Stable group: it must not compute a new assignment. */
  skipAssignment?: boolean;
}

export interface SyncResult {
  errorCode: number;
  protocolType: string | null;
  protocolName: string | null;
  assignment: Buffer;
}

interface Member {
  memberId: string;
  groupInstanceId: string | null;
  clientId: string;
  clientHost: string;
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  protocolType: string;
  protocols: GroupProtocol[];
  assignment: Buffer;
  joinWaiter: ((r: JoinResult) => void) | undefined;
  syncWaiter: ((r: SyncResult) => void) | undefined;
  sessionTimer: NodeJS.Timeout | undefined;
}

interface Group {
  id: string;
  state: GroupState;
  generation: number;
  protocolType: string | null;
  protocol: string | null;
  leader: string | null;
  members: Map<string, Member>;
  /** Member ids handed out with MEMBER_ID_REQUIRED, not yet used (expire after the session timeout). */
  pending: Map<string, NodeJS.Timeout>;
  /** Static members (KIP-345): group.instance.id → the member id that holds it now. */
  statics: Map<string, string>;
  rebalanceTimer: NodeJS.Timeout | undefined;
  /** While the initial delay of an empty group runs, the join does not complete early. */
  initialDelay: boolean;
}

export interface GroupCoordinatorOptions {
  log: Logger;
  initialRebalanceDelayMs: number;
  minSessionTimeoutMs: number;
  maxSessionTimeoutMs: number;
}

const EMPTY = Buffer.alloc(0);

/**
 * Topics of a ConsumerProtocolSubscription (`version int16, topics [string], …`, the same prefix
 * in every version); unreadable metadata names no topic.
 */
export function subscribedTopics(metadata: Buffer): string[] {
  try {
    const r = new Reader(metadata);
    r.int16();
    return r.array((x) => x.string());
  } catch {
    return [];
  }
}

/**
 * The classic consumer-group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) for the
 * groups this broker coordinates. State is in memory; committed offsets are not (OffsetStore).
 *
 * How this works: a group moves Empty → PreparingRebalance (a join arrived; joins are parked) →
 * CompletingRebalance (every known member re-joined, or the rebalance timeout dropped those that
 * did not; the generation is bumped, one protocol all members support is chosen and every
 * parked join is answered, the leader with all members' metadata) → Stable (the leader's
 * SyncGroup brought the assignment; parked SyncGroups are answered). A new join, a leave or a
 * session expiry sends it back to PreparingRebalance; heartbeats then answer
 * REBALANCE_IN_PROGRESS so members re-join. A new, empty group waits `initialRebalanceDelayMs`
 * before the first generation so members that start together land in one generation.
 */
export class GroupCoordinator {
  readonly #opts: GroupCoordinatorOptions;
  readonly #groups = new Map<string, Group>();

  constructor(opts: GroupCoordinatorOptions) {
    this.#opts = opts;
  }

  #group(id: string, create: boolean): Group | undefined {
    let g = this.#groups.get(id);
    if (g === undefined && create) {
      g = {
        id,
        state: GroupState.Empty,
        generation: 0,
        protocolType: null,
        protocol: null,
        leader: null,
        members: new Map(),
        pending: new Map(),
        statics: new Map(),
        rebalanceTimer: undefined,
        initialDelay: false,
      };
      this.#groups.set(id, g);
    }
    return g;
  }

  #fail(memberId: string, errorCode: number): JoinResult {
    return { errorCode, generationId: -1, protocolType: null, protocolName: null, leader: '', memberId, members: [] };
  }

  join(req: JoinRequest): Promise<JoinResult> {
    const { minSessionTimeoutMs, maxSessionTimeoutMs } = this.#opts;
    if (req.groupId === '') return Promise.resolve(this.#fail(req.memberId, KafkaError.INVALID_GROUP_ID));
    if (req.sessionTimeoutMs < minSessionTimeoutMs || req.sessionTimeoutMs > maxSessionTimeoutMs) {
      return Promise.resolve(this.#fail(req.memberId, KafkaError.INVALID_SESSION_TIMEOUT));
    }
    const g = this.#group(req.groupId, true)!;
    if (g.members.size > 0 || g.state !== GroupState.Empty) {
      // every member must speak the group's protocol type and share a protocol with the others
      const names = new Set(req.protocols.map((p) => p.name));
      const others = [...g.members.values()].filter((m) => m.memberId !== req.memberId);
      const common = others.length === 0 || this.#candidates(others).some((c) => names.has(c));
      if ((g.protocolType !== null && req.protocolType !== g.protocolType && others.length > 0) || !common) {
        return Promise.resolve(this.#fail(req.memberId, KafkaError.INCONSISTENT_GROUP_PROTOCOL));
      }
    }
    if (req.groupInstanceId !== null) {
      const held = g.statics.get(req.groupInstanceId);
      if (req.memberId === '' && held !== undefined) return this.#replaceStatic(g, held, req);
      // a known member id that is not the one holding the instance id was fenced by a newer one
      if (req.memberId !== '' && held !== undefined && held !== req.memberId) {
        return Promise.resolve(this.#fail(req.memberId, KafkaError.FENCED_INSTANCE_ID));
      }
    }
    let memberId = req.memberId;
    if (memberId === '' && req.groupInstanceId !== null) {
      // a new static member joins at once: its instance id is its identity (no MEMBER_ID_REQUIRED)
      memberId = `${req.groupInstanceId}-${randomUUID()}`;
    } else if (memberId === '') {
      memberId = `${req.clientId}-${randomUUID()}`;
      if (req.requireKnownMemberId) {
        const timer = setTimeout(() => g.pending.delete(memberId), req.sessionTimeoutMs).unref();
        g.pending.set(memberId, timer);
        return Promise.resolve(this.#fail(memberId, KafkaError.MEMBER_ID_REQUIRED));
      }
    } else if (!g.members.has(memberId) && !g.pending.has(memberId)) {
      return Promise.resolve(this.#fail(memberId, KafkaError.UNKNOWN_MEMBER_ID));
    }
    const pendingTimer = g.pending.get(memberId);
    if (pendingTimer !== undefined) {
      clearTimeout(pendingTimer);
      g.pending.delete(memberId);
    }
    let m = g.members.get(memberId);
    if (m === undefined) {
      m = {
        memberId,
        groupInstanceId: req.groupInstanceId,
        clientId: req.clientId,
        clientHost: req.clientHost,
        sessionTimeoutMs: req.sessionTimeoutMs,
        rebalanceTimeoutMs: req.rebalanceTimeoutMs,
        protocolType: req.protocolType,
        protocols: req.protocols,
        assignment: EMPTY,
        joinWaiter: undefined,
        syncWaiter: undefined,
        sessionTimer: undefined,
      };
      g.members.set(memberId, m);
      if (req.groupInstanceId !== null) g.statics.set(req.groupInstanceId, memberId);
    } else {
      m.sessionTimeoutMs = req.sessionTimeoutMs;
      m.rebalanceTimeoutMs = req.rebalanceTimeoutMs;
      m.protocols = req.protocols;
      m.protocolType = req.protocolType;
      // a join that replaces a parked one: the old request is answered as superseded
      m.joinWaiter?.(this.#fail(memberId, KafkaError.UNKNOWN_MEMBER_ID));
    }
    if (g.protocolType === null) g.protocolType = req.protocolType;
    // a member waiting for its join is not expired (its session restarts with the answer)
    if (m.sessionTimer !== undefined) clearTimeout(m.sessionTimer);
    m.sessionTimer = undefined;
    const member = m;
    const result = new Promise<JoinResult>((resolve) => (member.joinWaiter = resolve));
    if (g.state !== GroupState.PreparingRebalance) this.#prepareRebalance(g);
    else this.#maybeCompleteJoin(g);
    return result;
  }

  /**
   * A static member re-joins without its member id (it restarted): it takes over the member that
   * holds its instance id under a new member id, and the old id is fenced (its parked requests
   * and any later ones get FENCED_INSTANCE_ID). In a Stable group whose protocols it still
   * speaks unchanged there is no rebalance: it gets the current generation back and its old
   * assignment from SyncGroup, as Kafka does; otherwise the group rebalances.
   */
  #replaceStatic(g: Group, oldId: string, req: JoinRequest): Promise<JoinResult> {
    const old = g.members.get(oldId)!;
    const memberId = `${req.groupInstanceId!}-${randomUUID()}`;
    old.joinWaiter?.(this.#fail(oldId, KafkaError.FENCED_INSTANCE_ID));
    old.joinWaiter = undefined;
    this.#answerSync(old, KafkaError.FENCED_INSTANCE_ID, g);
    if (old.sessionTimer !== undefined) clearTimeout(old.sessionTimer);
    old.sessionTimer = undefined;
    const unchanged =
      g.protocol !== null &&
      req.protocolType === old.protocolType &&
      old.protocols
        .find((p) => p.name === g.protocol)
        ?.metadata.equals(req.protocols.find((p) => p.name === g.protocol)?.metadata ?? EMPTY) === true;
    const m: Member = {
      ...old,
      memberId,
      clientId: req.clientId,
      clientHost: req.clientHost,
      sessionTimeoutMs: req.sessionTimeoutMs,
      rebalanceTimeoutMs: req.rebalanceTimeoutMs,
      protocolType: req.protocolType,
      protocols: req.protocols,
      joinWaiter: undefined,
      syncWaiter: undefined,
      sessionTimer: undefined,
    };
    // the new id takes the old one's place (Map order is join order: the leader choice stays)
    const entries = [...g.members.entries()].map(([id, x]): [string, Member] => (id === oldId ? [memberId, m] : [id, x]));
    g.members.clear();
    for (const [id, x] of entries) g.members.set(id, x);
    g.statics.set(req.groupInstanceId!, memberId);
    if (g.leader === oldId) g.leader = memberId;
    this.#opts.log.debug(
      { groupId: g.id, groupInstanceId: req.groupInstanceId, memberId, replaced: oldId },
      'static group member replaced',
    );
    if (g.state === GroupState.Stable && unchanged) {
      this.#touch(g, m);
      return Promise.resolve({
        errorCode: KafkaError.NONE,
        generationId: g.generation,
        protocolType: g.protocolType,
        protocolName: g.protocol,
        leader: g.leader ?? '',
        memberId,
        // a returning leader sees the members but must not assign (KIP-814; the handler drops
        // the list for JoinGroup < v9, which has no skip flag): the group keeps its assignment
        members: g.leader === memberId ? this.#memberList(g) : [],
        skipAssignment: g.leader === memberId,
      });
    }
    const result = new Promise<JoinResult>((resolve) => (m.joinWaiter = resolve));
    if (g.state !== GroupState.PreparingRebalance) this.#prepareRebalance(g);
    else this.#maybeCompleteJoin(g);
    return result;
  }

  /**
   * FENCED_INSTANCE_ID when the request names a group.instance.id that another member id holds
   * now; 0 otherwise (no instance id, or the right one).
   */
  #fenced(g: Group | undefined, memberId: string, groupInstanceId: string | null | undefined): number {
    if (g === undefined || groupInstanceId === null || groupInstanceId === undefined) return KafkaError.NONE;
    const held = g.statics.get(groupInstanceId);
    return held !== undefined && held !== memberId ? KafkaError.FENCED_INSTANCE_ID : KafkaError.NONE;
  }

  #candidates(members: Member[]): string[] {
    const first = members[0];
    if (first === undefined) return [];
    return first.protocols.map((p) => p.name).filter((name) => members.every((m) => m.protocols.some((p) => p.name === name)));
  }

  #prepareRebalance(g: Group): void {
    if (g.state === GroupState.CompletingRebalance) {
      for (const m of g.members.values()) this.#answerSync(m, KafkaError.REBALANCE_IN_PROGRESS, g);
    }
    const wasEmpty = g.state === GroupState.Empty;
    g.state = GroupState.PreparingRebalance;
    if (g.rebalanceTimer !== undefined) clearTimeout(g.rebalanceTimer);
    const maxRebalanceMs = Math.max(0, ...[...g.members.values()].map((m) => m.rebalanceTimeoutMs));
    if (wasEmpty && this.#opts.initialRebalanceDelayMs > 0) {
      g.initialDelay = true;
      g.rebalanceTimer = setTimeout(
        () => {
          g.initialDelay = false;
          g.rebalanceTimer = undefined;
          if (!this.#maybeCompleteJoin(g)) {
            g.rebalanceTimer = setTimeout(() => this.#completeJoin(g, true), maxRebalanceMs).unref();
          }
        },
        Math.min(this.#opts.initialRebalanceDelayMs, maxRebalanceMs),
      ).unref();
      return;
    }
    g.initialDelay = false;
    g.rebalanceTimer = setTimeout(() => this.#completeJoin(g, true), maxRebalanceMs).unref();
    this.#maybeCompleteJoin(g);
  }

  /** Completes the join phase when every member (and every issued id) has joined. */
  #maybeCompleteJoin(g: Group): boolean {
    if (g.state !== GroupState.PreparingRebalance || g.initialDelay) return false;
    for (const m of g.members.values()) if (m.joinWaiter === undefined) return false;
    if (g.pending.size > 0) return false;
    this.#completeJoin(g, false);
    return true;
  }

  #completeJoin(g: Group, timedOut: boolean): void {
    if (g.state !== GroupState.PreparingRebalance) return;
    if (g.rebalanceTimer !== undefined) clearTimeout(g.rebalanceTimer);
    g.rebalanceTimer = undefined;
    g.initialDelay = false;
    if (timedOut) {
      for (const m of [...g.members.values()]) if (m.joinWaiter === undefined) this.#dropMember(g, m);
    }
    g.generation++;
    if (g.members.size === 0) {
      g.state = GroupState.Empty;
      g.protocol = null;
      g.protocolType = null;
      g.leader = null;
      return;
    }
    const members = [...g.members.values()];
    g.protocol = this.#vote(members);
    if (g.leader === null || !g.members.has(g.leader)) g.leader = members[0]!.memberId;
    g.state = GroupState.CompletingRebalance;
    for (const m of members) {
      const waiter = m.joinWaiter;
      m.joinWaiter = undefined;
      this.#touch(g, m);
      waiter?.({
        errorCode: KafkaError.NONE,
        generationId: g.generation,
        protocolType: g.protocolType,
        protocolName: g.protocol,
        leader: g.leader,
        memberId: m.memberId,
        members: m.memberId === g.leader ? this.#memberList(g) : [],
      });
    }
    this.#opts.log.debug({ groupId: g.id, generation: g.generation, members: members.length, protocol: g.protocol }, 'group rebalanced');
  }

  #memberList(g: Group): JoinResult['members'] {
    return [...g.members.values()].map((x) => ({
      memberId: x.memberId,
      groupInstanceId: x.groupInstanceId,
      metadata: x.protocols.find((p) => p.name === g.protocol)?.metadata ?? EMPTY,
    }));
  }

  /** Each member votes for its most preferred protocol among those all support (Kafka's rule). */
  #vote(members: Member[]): string | null {
    const candidates = new Set(this.#candidates(members));
    const votes = new Map<string, number>();
    for (const m of members) {
      const choice = m.protocols.find((p) => candidates.has(p.name))?.name;
      if (choice !== undefined) votes.set(choice, (votes.get(choice) ?? 0) + 1);
    }
    let best: string | null = null;
    let bestVotes = -1;
    for (const [name, n] of votes) if (n > bestVotes) [best, bestVotes] = [name, n];
    return best;
  }

  /** Restarts a member's session timer. */
  #touch(g: Group, m: Member): void {
    if (m.sessionTimer !== undefined) clearTimeout(m.sessionTimer);
    m.sessionTimer = setTimeout(() => {
      m.sessionTimer = undefined;
      if (g.members.get(m.memberId) !== m) return;
      this.#opts.log.debug({ groupId: g.id, memberId: m.memberId }, 'group member session expired');
      this.#removeMember(g, m);
    }, m.sessionTimeoutMs).unref();
  }

  #answerSync(m: Member, errorCode: number, g: Group): void {
    const w = m.syncWaiter;
    m.syncWaiter = undefined;
    w?.({ errorCode, protocolType: g.protocolType, protocolName: g.protocol, assignment: errorCode === 0 ? m.assignment : EMPTY });
  }

  #dropMember(g: Group, m: Member): void {
    if (m.sessionTimer !== undefined) clearTimeout(m.sessionTimer);
    m.sessionTimer = undefined;
    g.members.delete(m.memberId);
    if (m.groupInstanceId !== null && g.statics.get(m.groupInstanceId) === m.memberId) g.statics.delete(m.groupInstanceId);
    m.joinWaiter?.(this.#fail(m.memberId, KafkaError.UNKNOWN_MEMBER_ID));
    m.joinWaiter = undefined;
    this.#answerSync(m, KafkaError.UNKNOWN_MEMBER_ID, g);
  }

  /** A member left or expired: the others rebalance (or the group becomes Empty). */
  #removeMember(g: Group, m: Member): void {
    this.#dropMember(g, m);
    if (g.state === GroupState.PreparingRebalance) {
      if (g.members.size === 0) this.#completeJoin(g, false);
      else this.#maybeCompleteJoin(g);
    } else if (g.members.size === 0) {
      g.generation++;
      g.state = GroupState.Empty;
      g.protocol = null;
      g.protocolType = null;
      g.leader = null;
    } else this.#prepareRebalance(g);
  }

  sync(
    groupId: string,
    generationId: number,
    memberId: string,
    assignments: { memberId: string; assignment: Buffer }[],
    groupInstanceId: string | null = null,
  ): Promise<SyncResult> {
    const g = this.#groups.get(groupId);
    const fail = (errorCode: number): Promise<SyncResult> =>
      Promise.resolve({ errorCode, protocolType: g?.protocolType ?? null, protocolName: g?.protocol ?? null, assignment: EMPTY });
    const fenced = this.#fenced(g, memberId, groupInstanceId);
    if (fenced !== 0) return fail(fenced);
    const m = g?.members.get(memberId);
    if (g === undefined || m === undefined) return fail(KafkaError.UNKNOWN_MEMBER_ID);
    if (generationId !== g.generation) return fail(KafkaError.ILLEGAL_GENERATION);
    if (g.state === GroupState.PreparingRebalance) return fail(KafkaError.REBALANCE_IN_PROGRESS);
    this.#touch(g, m);
    if (g.state === GroupState.Stable)
      return Promise.resolve({ errorCode: 0, protocolType: g.protocolType, protocolName: g.protocol, assignment: m.assignment });
    // CompletingRebalance: followers wait for the leader's assignment
    const result = new Promise<SyncResult>((resolve) => {
      m.syncWaiter?.({ errorCode: KafkaError.REBALANCE_IN_PROGRESS, protocolType: null, protocolName: null, assignment: EMPTY });
      m.syncWaiter = resolve;
    });
    if (memberId === g.leader) {
      const byId = new Map(assignments.map((a) => [a.memberId, a.assignment]));
      for (const x of g.members.values()) x.assignment = byId.get(x.memberId) ?? EMPTY;
      g.state = GroupState.Stable;
      for (const x of g.members.values()) this.#answerSync(x, KafkaError.NONE, g);
    }
    return result;
  }

  heartbeat(groupId: string, generationId: number, memberId: string, groupInstanceId: string | null = null): number {
    const g = this.#groups.get(groupId);
    const fenced = this.#fenced(g, memberId, groupInstanceId);
    if (fenced !== 0) return fenced;
    const m = g?.members.get(memberId);
    if (g === undefined || m === undefined) return KafkaError.UNKNOWN_MEMBER_ID;
    if (generationId !== g.generation) return KafkaError.ILLEGAL_GENERATION;
    if (m.joinWaiter === undefined) this.#touch(g, m);
    if (g.state === GroupState.PreparingRebalance) return KafkaError.REBALANCE_IN_PROGRESS;
    return KafkaError.NONE;
  }

  /** LeaveGroup for one member (v3+ sends a list; the handler calls this per entry). */
  leave(groupId: string, memberId: string, groupInstanceId: string | null): number {
    const g = this.#groups.get(groupId);
    if (g === undefined) return KafkaError.UNKNOWN_MEMBER_ID;
    let m = g.members.get(memberId);
    if (groupInstanceId !== null) {
      // by instance id alone (KIP-345 admin removal) or checked against it: a stale id is fenced
      const held = g.statics.get(groupInstanceId);
      if (held === undefined) return KafkaError.UNKNOWN_MEMBER_ID;
      if (memberId !== '' && held !== memberId) return KafkaError.FENCED_INSTANCE_ID;
      m = g.members.get(held);
    }
    if (m === undefined) return KafkaError.UNKNOWN_MEMBER_ID;
    this.#opts.log.debug({ groupId, memberId: m.memberId }, 'group member left');
    this.#removeMember(g, m);
    return KafkaError.NONE;
  }

  /**
   * May this member commit offsets for this generation? Simple consumers (generation −1, no
   * member id) may when the group has no members.
   */
  checkCommit(groupId: string, generationId: number, memberId: string, groupInstanceId: string | null = null): number {
    const g = this.#groups.get(groupId);
    const fenced = this.#fenced(g, memberId, groupInstanceId);
    if (fenced !== 0) return fenced;
    if (generationId < 0 && memberId === '') {
      return g === undefined || g.members.size === 0 ? KafkaError.NONE : KafkaError.UNKNOWN_MEMBER_ID;
    }
    const m = g?.members.get(memberId);
    if (g === undefined || m === undefined) return KafkaError.UNKNOWN_MEMBER_ID;
    if (generationId !== g.generation) return KafkaError.ILLEGAL_GENERATION;
    if (g.state === GroupState.CompletingRebalance) return KafkaError.REBALANCE_IN_PROGRESS;
    this.#touch(g, m);
    return KafkaError.NONE;
  }

  /** Groups this coordinator knows (ListGroups). */
  list(): { groupId: string; protocolType: string; state: GroupState }[] {
    return [...this.#groups.values()].map((g) => ({ groupId: g.id, protocolType: g.protocolType ?? '', state: g.state }));
  }

  describe(groupId: string):
    | {
        state: GroupState;
        protocolType: string;
        protocol: string;
        members: {
          memberId: string;
          groupInstanceId: string | null;
          clientId: string;
          clientHost: string;
          metadata: Buffer;
          assignment: Buffer;
        }[];
      }
    | undefined {
    const g = this.#groups.get(groupId);
    if (g === undefined) return undefined;
    return {
      state: g.state,
      protocolType: g.protocolType ?? '',
      protocol: g.protocol ?? '',
      members: [...g.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        metadata: m.protocols.find((p) => p.name === g.protocol)?.metadata ?? EMPTY,
        assignment: m.assignment,
      })),
    };
  }

  /**
   * Keeps only the groups `keep` accepts (the ones this broker still coordinates after the live
   * brokers changed). A dropped group's parked joins and syncs are answered NOT_COORDINATOR and
   * its timers stop; its members' next request gets NOT_COORDINATOR from the handlers, so they
   * find the new coordinator and re-join there (committed offsets are in meta). Returns how many
   * groups were dropped.
   */
  retain(keep: (groupId: string) => boolean): number {
    let dropped = 0;
    for (const g of [...this.#groups.values()]) {
      if (keep(g.id)) continue;
      this.#discard(g, KafkaError.NOT_COORDINATOR);
      this.#groups.delete(g.id);
      dropped++;
    }
    return dropped;
  }

  #discard(g: Group, errorCode: number): void {
    if (g.rebalanceTimer !== undefined) clearTimeout(g.rebalanceTimer);
    g.rebalanceTimer = undefined;
    for (const t of g.pending.values()) clearTimeout(t);
    g.pending.clear();
    g.statics.clear();
    for (const m of g.members.values()) {
      if (m.sessionTimer !== undefined) clearTimeout(m.sessionTimer);
      m.sessionTimer = undefined;
      const w = m.joinWaiter;
      m.joinWaiter = undefined;
      w?.(this.#fail(m.memberId, errorCode));
      this.#answerSync(m, errorCode, g);
    }
  }

  /**
   * Forgets a group without members (DeleteGroups): `non_empty` while it has members,
   * `unknown` when this coordinator has no state for it, `deleted` otherwise.
   */
  deleteGroup(groupId: string): 'deleted' | 'non_empty' | 'unknown' {
    const g = this.#groups.get(groupId);
    if (g === undefined) return 'unknown';
    if (g.members.size > 0) return 'non_empty';
    if (g.rebalanceTimer !== undefined) clearTimeout(g.rebalanceTimer);
    for (const t of g.pending.values()) clearTimeout(t);
    this.#groups.delete(groupId);
    return 'deleted';
  }

  /**
   * Whether the group has members, and for a `consumer` group the topics its members subscribe
   * to (from their ConsumerProtocolSubscription metadata of the chosen protocol; OffsetDelete).
   * `topics` is undefined for a group with members of another protocol type.
   */
  subscriptions(groupId: string): { members: number; topics: Set<string> | undefined } {
    const g = this.#groups.get(groupId);
    if (g === undefined || g.members.size === 0) return { members: 0, topics: new Set() };
    if (g.protocolType !== 'consumer') return { members: g.members.size, topics: undefined };
    const topics = new Set<string>();
    for (const m of g.members.values()) {
      // before the first generation no protocol is chosen yet: every offered subscription counts
      const offered = g.protocol === null ? m.protocols : m.protocols.filter((p) => p.name === g.protocol);
      for (const p of offered) for (const t of subscribedTopics(p.metadata)) topics.add(t);
    }
    return { members: g.members.size, topics };
  }

  /** Stops every timer and answers parked requests (shutdown). */
  close(): void {
    for (const g of this.#groups.values()) {
      if (g.rebalanceTimer !== undefined) clearTimeout(g.rebalanceTimer);
      for (const t of g.pending.values()) clearTimeout(t);
      for (const m of g.members.values()) {
        if (m.sessionTimer !== undefined) clearTimeout(m.sessionTimer);
        m.joinWaiter?.(this.#fail(m.memberId, KafkaError.COORDINATOR_NOT_AVAILABLE));
        this.#answerSync(m, KafkaError.COORDINATOR_NOT_AVAILABLE, g);
      }
    }
    this.#groups.clear();
  }
}
