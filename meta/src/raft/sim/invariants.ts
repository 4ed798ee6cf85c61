import type { RaftLog } from '../raft-log.js';
import type { MemoryStorage } from '../storage.js';
import { NO_LIMIT } from '../storage.js';
import type { Entry } from '../types.js';
import { entryDigest } from './kv.js';

/** A Raft safety property was violated (always a bug). */
export class SafetyViolation extends Error {
  override readonly name = 'SafetyViolation';
}

/**
 * The Raft safety properties (Raft paper, Figure 3), checked incrementally as a simulation runs:
 * - election safety: at most one leader per term;
 * - log matching: entries with the same index and term have the same content and the same
 *   predecessor term (so, by induction, identical logs up to there);
 * - leader completeness: a leader's log holds every entry committed in an earlier term (the
 *   commit term is bounded from above by the term of the first node seen holding it committed);
 * - state-machine safety: every replica applies the same entry at each index (checked on a
 *   rolling digest of everything applied, so snapshots are covered too).
 */
export class InvariantChecker {
  private readonly leaderOfTerm = new Map<number, number>();
  private readonly identity = new Map<string, { digest: number; prevTerm: number }>();
  /**
   * Committed entries with an upper bound of the term in which they were committed (the lowest
   * term of a node seen holding them committed): only leaders of later terms must have them.
   */
  private readonly committed = new Map<number, { term: number; digest: number; commitTerm: number }>();
  private readonly rollingAt = new Map<number, number>();
  private maxCommitted = 0;
  checks = 0;

  /** `id` is leader of `term` with `log`. */
  onLeader(id: number, term: number, log: RaftLog): void {
    this.checks++;
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== id) throw new SafetyViolation(`election safety: ${other} and ${id} both lead term ${term}`);
    this.leaderOfTerm.set(term, id);
    for (const [index, c] of this.committed) if (term > c.commitTerm) this.checkLeaderHas(id, log, index, c.term);
  }

  private checkLeaderHas(id: number, log: RaftLog, index: number, term: number): void {
    if (index < log.firstIndex() - 1) return; // compacted into its snapshot, which is committed state
    const t = log.term(index);
    if (t !== term) {
      throw new SafetyViolation(`leader completeness: leader ${id} has term ${t} at committed index ${index} (term ${term})`);
    }
  }

  /** `entries` were just persisted by `id` into `storage`. */
  onPersisted(id: number, entries: readonly Entry[], storage: MemoryStorage): void {
    for (const e of entries) {
      this.checks++;
      let prevTerm: number;
      try {
        prevTerm = storage.term(e.index - 1);
      } catch {
        continue; // predecessor compacted
      }
      const key = `${e.index}:${e.term}`;
      const digest = entryDigest(e);
      const seen = this.identity.get(key);
      if (seen === undefined) this.identity.set(key, { digest, prevTerm });
      else if (seen.digest !== digest || seen.prevTerm !== prevTerm) {
        throw new SafetyViolation(
          `log matching: node ${id} holds a different entry ${key} (or predecessor term ${prevTerm} vs ${seen.prevTerm})`,
        );
      }
    }
  }

  /**
   * `id`, at `nodeTerm`, persisted commit index `to` (was `from`); `leaders` are the nodes
   * currently leading, each with its term and log.
   */
  onCommit(
    id: number,
    nodeTerm: number,
    from: number,
    to: number,
    storage: MemoryStorage,
    leaders: readonly { id: number; term: number; log: RaftLog }[],
  ): void {
    if (to < from) throw new SafetyViolation(`node ${id} commit index went back from ${from} to ${to}`);
    const lo = Math.max(from + 1, storage.firstIndex());
    if (lo > to) return;
    const ents = storage.entries(lo, to + 1, NO_LIMIT);
    for (const e of ents) {
      this.checks++;
      const c = this.committed.get(e.index);
      const digest = entryDigest(e);
      if (c === undefined) {
        this.committed.set(e.index, { term: e.term, digest, commitTerm: nodeTerm });
        for (const l of leaders) if (l.term > nodeTerm) this.checkLeaderHas(l.id, l.log, e.index, e.term);
      } else if (c.digest !== digest) {
        throw new SafetyViolation(`node ${id} committed a different entry at index ${e.index} (term ${e.term} vs ${c.term})`);
      } else if (nodeTerm < c.commitTerm) {
        c.commitTerm = nodeTerm;
      }
      this.maxCommitted = Math.max(this.maxCommitted, e.index);
    }
  }

  /** `id`'s state machine reached `index` with `rolling` digest (by applying entries or a snapshot). */
  onApplied(id: number, index: number, rolling: number): void {
    this.checks++;
    const seen = this.rollingAt.get(index);
    if (seen === undefined) this.rollingAt.set(index, rolling);
    else if (seen !== rolling) throw new SafetyViolation(`state-machine safety: node ${id} applied different entries up to index ${index}`);
  }

  highestCommitted(): number {
    return this.maxCommitted;
  }

  terms(): number {
    return this.leaderOfTerm.size;
  }
}
