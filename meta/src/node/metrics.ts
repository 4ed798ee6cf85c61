import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface MetaMetrics {
  /**
   * Commit and applied index of each group on this node, read when the gauges are scraped
   * instead of set on every Ready.
   */
  groupIndexes: Map<number, () => { commit: number; applied: number }>;
  commitIndex: Gauge<'group'>;
  appliedIndex: Gauge<'group'>;
  leaderChanges: Counter<'group'>;
  proposals: Counter<'group'>;
  walSyncSeconds: Histogram;
  isLeader: Gauge<'group'>;
}

export function createMetaMetrics(registry: Registry): MetaMetrics {
  const groupIndexes = new Map<number, () => { commit: number; applied: number }>();
  return {
    groupIndexes,
    commitIndex: new Gauge({
      name: 'robustmq_meta_raft_commit_index',
      help: 'Raft commit index per meta group',
      labelNames: ['group'],
      registers: [registry],
      collect() {
        for (const [group, read] of groupIndexes) this.set({ group: String(group) }, read().commit);
      },
    }),
    appliedIndex: new Gauge({
      name: 'robustmq_meta_raft_applied_index',
      help: 'Raft applied index per meta group',
      labelNames: ['group'],
      registers: [registry],
      collect() {
        for (const [group, read] of groupIndexes) this.set({ group: String(group) }, read().applied);
      },
    }),
    leaderChanges: new Counter({
      name: 'robustmq_meta_raft_leader_changes_total',
      help: 'Leader changes seen per meta group',
      labelNames: ['group'],
      registers: [registry],
    }),
    proposals: new Counter({
      name: 'robustmq_meta_proposals_total',
      help: 'Proposals made by this node per meta group',
      labelNames: ['group'],
      registers: [registry],
    }),
    walSyncSeconds: new Histogram({
      name: 'robustmq_meta_wal_write_seconds',
      help: 'Time to write and fsync one Raft Ready to the meta WAL',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
      registers: [registry],
    }),
    isLeader: new Gauge({
      name: 'robustmq_meta_is_leader',
      help: '1 when this node leads the meta group',
      labelNames: ['group'],
      registers: [registry],
    }),
  };
}
