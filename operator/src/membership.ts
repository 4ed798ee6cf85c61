/**
 * The meta membership planner: a pure function from what is observed (Raft configuration and
 * replication lag, pods, PVC identities) and what is desired (spec.meta.replicas) to the next
 * single membership action. The reconciler executes at most one action per pass and re-reads the
 * live membership before the next, so a crash between two steps resumes from the truth.
 *
 * Rules (Strimzi proposal 132, openraft's learner-first contract):
 * - node ids are StatefulSet ordinals 1..n; membership follows the spec, not pod existence: a pod
 *   that restarts keeps its id and stays a voter;
 * - a node whose PVC was replaced (new UID, empty disk) is removed and then added back;
 * - scale-down removes the highest member first; a learner goes at once, a voter only if the
 *   caught-up voters that remain are a majority of the new configuration (else refused), and
 *   a leader hands over leadership first;
 * - scale-up: a learner is promoted once caught up before the next node is added; a new node is
 *   added as a learner once its pod's containers are ready;
 * - one change at a time, always.
 */

export interface RaftView {
  /** Leader node id of the metadata group (0 = none). */
  leader: number;
  voters: number[];
  learners: number[];
  /** Replication lag per member in entries (the worst over every group); missing = unknown. */
  lag: Map<number, number>;
}

export interface PodView {
  /** Containers ready (the readiness probe: process up), independent of the voter readiness gate. */
  containersReady: boolean;
  /** UID of the node's PVC, when it exists. */
  claimUid?: string;
}

export interface PlanInput {
  desired: number;
  raft: RaftView | undefined;
  pods: Map<number, PodView>;
  /** The PVC UID each member had when it joined (status.meta.voters/learners[].incarnation). */
  incarnations: Map<number, string>;
  maxLagEntries: number;
}

export type Action =
  | { op: 'None' }
  | { op: 'Wait'; reason: 'NoLeader' | 'PodNotReady' | 'CatchingUp'; nodeId?: number; message: string }
  | { op: 'Refuse'; reason: 'ScaleDownUnsafe' | 'ReplaceUnsafe'; nodeId: number; message: string }
  | { op: 'TransferLeader'; from: number; to: number }
  | { op: 'AddLearner'; nodeId: number }
  | { op: 'Promote'; nodeId: number }
  | { op: 'RemoveVoter'; nodeId: number; replaced: boolean }
  | { op: 'RemoveLearner'; nodeId: number; replaced: boolean };

/** A voter counts towards quorum when its pod runs and it is within maxLag of the leader. */
export function isCaughtUp(id: number, inp: PlanInput): boolean {
  const pod = inp.pods.get(id);
  const lag = inp.raft?.lag.get(id);
  if (id === inp.raft?.leader) return pod?.containersReady ?? false;
  return (pod?.containersReady ?? false) && lag !== undefined && lag <= inp.maxLagEntries;
}

/** True when removing `victim` leaves a caught-up majority of the remaining voters. */
export function safeToRemove(victim: number, inp: PlanInput): boolean {
  const rest = (inp.raft?.voters ?? []).filter((v) => v !== victim);
  if (rest.length === 0) return false;
  const caughtUp = rest.filter((v) => isCaughtUp(v, inp)).length;
  return caughtUp > rest.length / 2;
}

/** The most caught-up other voter, as the target of a leadership transfer. */
function transferTarget(from: number, inp: PlanInput): number | undefined {
  const candidates = (inp.raft?.voters ?? []).filter((v) => v !== from && isCaughtUp(v, inp));
  candidates.sort((a, b) => (inp.raft?.lag.get(a) ?? Infinity) - (inp.raft?.lag.get(b) ?? Infinity) || a - b);
  return candidates[0];
}

function removal(id: number, inp: PlanInput, replaced: boolean): Action {
  const raft = inp.raft!;
  if (raft.learners.includes(id)) return { op: 'RemoveLearner', nodeId: id, replaced };
  if (!safeToRemove(id, inp)) {
    const rest = raft.voters.filter((v) => v !== id);
    const ok = rest.filter((v) => isCaughtUp(v, inp));
    return {
      op: 'Refuse',
      reason: replaced ? 'ReplaceUnsafe' : 'ScaleDownUnsafe',
      nodeId: id,
      message:
        `removing voter ${id} would leave ${ok.length} caught-up of ${rest.length} voters (${ok.join(', ') || 'none'}), ` +
        `not a majority; waiting until the other voters are ready and caught up`,
    };
  }
  if (raft.leader === id) {
    const to = transferTarget(id, inp);
    if (to !== undefined) return { op: 'TransferLeader', from: id, to };
  }
  return { op: 'RemoveVoter', nodeId: id, replaced };
}

export function planMembership(inp: PlanInput): Action {
  const raft = inp.raft;
  if (raft === undefined || raft.leader === 0)
    return { op: 'Wait', reason: 'NoLeader', message: 'meta has no leader (or cannot be reached)' };
  const members = [...raft.voters, ...raft.learners];

  // 1. Replaced disks: same ordinal, different PVC → the old incarnation leaves first.
  for (const id of [...members].sort((a, b) => b - a)) {
    const was = inp.incarnations.get(id);
    const now = inp.pods.get(id)?.claimUid;
    if (was !== undefined && now !== undefined && was !== now) return removal(id, inp, true);
  }

  // 2. Scale-down: the highest member above the desired count goes first.
  // A removal that is unsafe now may become safe once missing ordinals have joined (e.g. the only
  // voter is above the desired count): then grow first and retry the removal afterwards.
  const surplus = members.filter((id) => id > inp.desired).sort((a, b) => b - a);
  let refused: Action | undefined;
  if (surplus.length > 0) {
    const r = removal(surplus[0]!, inp, false);
    const missing = Array.from({ length: inp.desired }, (_, i) => i + 1).some((id) => !raft.voters.includes(id));
    if (r.op !== 'Refuse' || !missing) return r;
    refused = r;
  }

  // 3. A learner is promoted before anything else is added (one change at a time).
  const learners = raft.learners.filter((id) => id <= inp.desired).sort((a, b) => a - b);
  for (const id of learners) {
    const lag = raft.lag.get(id);
    if ((inp.pods.get(id)?.containersReady ?? false) && lag !== undefined && lag <= inp.maxLagEntries) return { op: 'Promote', nodeId: id };
    return { op: 'Wait', reason: 'CatchingUp', nodeId: id, message: `learner ${id} is ${lag ?? 'an unknown number of'} entries behind` };
  }

  // 4. Scale-up: the lowest missing ordinal joins as a learner once its pod runs.
  for (let id = 1; id <= inp.desired; id++) {
    if (members.includes(id)) continue;
    if (inp.pods.get(id)?.containersReady ?? false) return { op: 'AddLearner', nodeId: id };
    return refused ?? { op: 'Wait', reason: 'PodNotReady', nodeId: id, message: `waiting for pod of node ${id} to start` };
  }
  return refused ?? { op: 'None' };
}

/** StatefulSet replicas: never below a node that is still a Raft member (removal before shrink). */
export function metaStatefulSetReplicas(desired: number, raft: RaftView | undefined, current: number): number {
  if (raft === undefined) return Math.max(desired, current);
  return Math.max(desired, ...raft.voters, ...raft.learners);
}
