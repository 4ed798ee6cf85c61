import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { METRIC_PREFIX } from '@robustmq/common';

/** The operator's metrics (robustmq_operator_*); the chart's dashboard and alerts use these names. */
export class OperatorMetrics {
  readonly reconciles: Counter<'result'>;
  readonly reconcileDuration: Histogram;
  readonly queueDepth: Gauge;
  readonly membershipChanges: Counter<'op' | 'result'>;
  readonly resourceState: Gauge<'namespace' | 'name' | 'condition'>;
  readonly informerLastEvent: Gauge<'resource'>;
  readonly informerRestarts: Counter<'resource'>;
  readonly isLeader: Gauge;

  constructor(registry: Registry) {
    const p = `${METRIC_PREFIX}operator_`;
    this.reconciles = new Counter({
      name: `${p}reconciles_total`,
      help: 'Reconciles by result (ok, requeue, error)',
      labelNames: ['result'],
      registers: [registry],
    });
    this.reconcileDuration = new Histogram({
      name: `${p}reconcile_duration_seconds`,
      help: 'Duration of one reconcile',
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.queueDepth = new Gauge({ name: `${p}queue_depth`, help: 'Keys waiting in the work queue', registers: [registry] });
    this.membershipChanges = new Counter({
      name: `${p}raft_membership_changes_total`,
      help: 'Meta Raft membership changes by operation and result',
      labelNames: ['op', 'result'],
      registers: [registry],
    });
    this.resourceState = new Gauge({
      name: `${p}resource_state`,
      help: '1 when the condition of a RobustMQCluster is True',
      labelNames: ['namespace', 'name', 'condition'],
      registers: [registry],
    });
    this.informerLastEvent = new Gauge({
      name: `${p}informer_last_event_timestamp_seconds`,
      help: 'Time of the last event or relist an informer saw',
      labelNames: ['resource'],
      registers: [registry],
    });
    this.informerRestarts = new Counter({
      name: `${p}informer_restarts_total`,
      help: 'Informer restarts after an error',
      labelNames: ['resource'],
      registers: [registry],
    });
    this.isLeader = new Gauge({ name: `${p}leader`, help: '1 while this replica holds the leader Lease', registers: [registry] });
  }
}
