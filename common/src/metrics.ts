import { Registry, collectDefaultMetrics } from 'prom-client';

/** Prefix of every metric name RobustMQ registers. */
export const METRIC_PREFIX = 'robustmq_';

/**
 * The one metrics registry of a process, with the process and Node.js runtime metrics
 * (CPU, memory, event-loop lag, GC, handles) under the same prefix.
 */
export function createMetricsRegistry(labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}

export { Registry };
