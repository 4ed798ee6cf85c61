import type { ConfState } from './types.js';

/** Single-server membership changes; one may be pending (in the log, unapplied) at a time. */
export const ConfChangeType = {
  /** Add a non-voting member that receives the log. */
  AddLearner: 'addLearner',
  /** Make a learner a voter (after it caught up). */
  PromoteLearner: 'promoteLearner',
  /** Remove a voter or a learner. */
  RemoveNode: 'removeNode',
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: number;
  /** Opaque to the core (for example the new member's address). */
  readonly context?: string;
}

const TYPES = new Set<string>(Object.values(ConfChangeType));

export function encodeConfChange(cc: ConfChange): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ type: cc.type, nodeId: cc.nodeId, context: cc.context ?? '' }));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const v = JSON.parse(new TextDecoder().decode(data)) as { type?: unknown; nodeId?: unknown; context?: unknown };
  if (typeof v.type !== 'string' || !TYPES.has(v.type) || typeof v.nodeId !== 'number' || !Number.isInteger(v.nodeId) || v.nodeId <= 0) {
    throw new Error(`malformed conf change entry: ${new TextDecoder().decode(data)}`);
  }
  return { type: v.type as ConfChangeType, nodeId: v.nodeId, context: typeof v.context === 'string' ? v.context : '' };
}

/**
 * The membership after cc, or a reason it does not apply. Every member evaluates this on the
 * same committed entries, so an invalid change is a no-op everywhere (the leader refuses the
 * ones it can see are invalid before they reach the log).
 */
export function changeConfState(cs: ConfState, cc: ConfChange): { confState: ConfState } | { refused: string } {
  const voters = new Set(cs.voters);
  const learners = new Set(cs.learners);
  const id = cc.nodeId;
  switch (cc.type) {
    case ConfChangeType.AddLearner:
      if (voters.has(id)) return { refused: `node ${id} is already a voter` };
      if (learners.has(id)) return { refused: `node ${id} is already a learner` };
      learners.add(id);
      break;
    case ConfChangeType.PromoteLearner:
      if (!learners.has(id)) return { refused: `node ${id} is not a learner` };
      learners.delete(id);
      voters.add(id);
      break;
    case ConfChangeType.RemoveNode:
      if (!voters.has(id) && !learners.has(id)) return { refused: `node ${id} is not a member` };
      if (voters.has(id) && voters.size === 1) return { refused: `node ${id} is the last voter` };
      voters.delete(id);
      learners.delete(id);
      break;
  }
  const sort = (s: Set<number>) => [...s].sort((a, b) => a - b);
  return { confState: { voters: sort(voters), learners: sort(learners) } };
}
