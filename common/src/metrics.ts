import { Registry, collectDefaultMetrics, type Counter } from 'prom-client';

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

/** A counter increment for hot paths: a plain number add, handed to Prometheus on scrape. */
export interface HotCounter {
  inc(v?: number): void;
}

/**
 * Children of `counter` for hot paths. prom-client checks and hashes the labels on every `inc`
 * (~0.4 µs, several per append or message); these only add to a number, and `counter`'s collect
 * hook moves the sums into it before each scrape, so the exposed values are the same.
 * Several calls for one counter share one hook.
 */
export function hotCounter(counter: Counter<string>, labels: Record<string, string | number> = {}): HotCounter {
  let pending = hotCounters.get(counter);
  if (!pending) {
    const list: { labels: Record<string, string | number>; child: { value: number } }[] = [];
    pending = list;
    hotCounters.set(counter, list);
    const previous = (counter as unknown as { collect?: () => unknown }).collect;
    (counter as unknown as { collect: () => unknown }).collect = function (this: Counter<string>) {
      for (const p of list) {
        if (p.child.value > 0) {
          this.inc(p.labels, p.child.value);
          p.child.value = 0;
        }
      }
      return previous?.call(this);
    };
  }
  const child = {
    value: 0,
    inc(v = 1): void {
      this.value += v;
    },
  };
  pending.push({ labels, child });
  return child;
}
const hotCounters = new WeakMap<Counter<string>, { labels: Record<string, string | number>; child: { value: number } }[]>();

/**
 * Hot children of a labelled counter, one per label combination, made on first use: for
 * counters bumped per connection (`labelNames` in the counter's order; values in that order).
 */
export function hotCounterFamily(counter: Counter<string>, labelNames: readonly string[]): (...values: string[]) => HotCounter {
  const root = new Map<string, unknown>();
  return (...values: string[]): HotCounter => {
    let m = root;
    for (let i = 0; i < values.length - 1; i++) {
      const v = values[i] as string;
      let next = m.get(v) as Map<string, unknown> | undefined;
      if (next === undefined) m.set(v, (next = new Map()));
      m = next;
    }
    const last = values[values.length - 1] ?? '';
    let child = m.get(last) as HotCounter | undefined;
    if (child === undefined) {
      const labels: Record<string, string> = {};
      labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''));
      m.set(last, (child = hotCounter(counter, labels)));
    }
    return child;
  };
}
