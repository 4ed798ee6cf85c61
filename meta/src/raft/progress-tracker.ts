import { Progress } from './progress.js';
import type { ConfState } from './types.js';

export const VoteResult = { Pending: 'pending', Lost: 'lost', Won: 'won' } as const;
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

/**
 * The membership (voters, learners), a Progress per member (meaningful on the leader), and the
 * votes of the current election. Quorum is a majority of voters; learners never count.
 */
export class ProgressTracker {
  readonly maxInflight: number;
  voters = new Set<number>();
  learners = new Set<number>();
  progress = new Map<number, Progress>();
  votes = new Map<number, boolean>();

  constructor(maxInflight: number) {
    this.maxInflight = maxInflight;
  }

  isVoter(id: number): boolean {
    return this.voters.has(id);
  }

  isSingleton(): boolean {
    return this.voters.size === 1;
  }

  quorum(): number {
    return Math.floor(this.voters.size / 2) + 1;
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort((a, b) => a - b), learners: [...this.learners].sort((a, b) => a - b) };
  }

  /** Highest index replicated on a quorum of voters (Infinity for an empty membership). */
  committed(): number {
    if (this.voters.size === 0) return Infinity;
    const matches: number[] = [];
    for (const id of this.voters) matches.push(this.progress.get(id)?.match ?? 0);
    matches.sort((a, b) => b - a);
    return matches[this.quorum() - 1] as number;
  }

  voteResult(votes: ReadonlyMap<number, boolean>): VoteResult {
    if (this.voters.size === 0) return VoteResult.Won; // etcd's convention for an empty config
    let yes = 0;
    let missing = 0;
    for (const id of this.voters) {
      const v = votes.get(id);
      if (v === undefined) missing++;
      else if (v) yes++;
    }
    const q = this.quorum();
    if (yes >= q) return VoteResult.Won;
    if (yes + missing >= q) return VoteResult.Pending;
    return VoteResult.Lost;
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  recordVote(id: number, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voters) {
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    return { granted, rejected, result: this.voteResult(this.votes) };
  }

  /** Did a quorum of voters (counting `self`) talk to us since the last check? */
  quorumActive(self: number): boolean {
    const active = new Map<number, boolean>();
    for (const id of this.voters) active.set(id, id === self || (this.progress.get(id)?.recentActive ?? false));
    return this.voteResult(active) === VoteResult.Won;
  }
}
