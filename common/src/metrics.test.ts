import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter } from 'prom-client';
import { createMetricsRegistry, hotCounter, hotCounterFamily } from './metrics.js';

test('hot counters add up per label and appear in the scrape exactly like inc() would', async () => {
  const registry = createMetricsRegistry();
  const c = new Counter({ name: 'robustmq_test_hot_total', help: 'test', labelNames: ['engine'], registers: [registry] });
  const a = hotCounter(c, { engine: 'a' });
  const b = hotCounter(c, { engine: 'b' });
  a.inc(3);
  a.inc();
  b.inc(10);
  c.inc({ engine: 'a' }, 100); // direct increments still count
  const first = await registry.getSingleMetricAsString('robustmq_test_hot_total');
  assert.match(first, /robustmq_test_hot_total\{engine="a"\} 104\n/);
  assert.match(first, /robustmq_test_hot_total\{engine="b"\} 10\n?/);
  // a second scrape does not add the same increments again
  a.inc(1);
  const second = await registry.getSingleMetricAsString('robustmq_test_hot_total');
  assert.match(second, /robustmq_test_hot_total\{engine="a"\} 105\n/);
  assert.match(second, /robustmq_test_hot_total\{engine="b"\} 10\n?/);
});

test('a hot counter family makes one child per label combination and scrapes the sums', async () => {
  const registry = createMetricsRegistry();
  const c = new Counter({ name: 'robustmq_test_family_total', help: 'test', labelNames: ['listener', 'outcome'], registers: [registry] });
  const of = hotCounterFamily(c, ['listener', 'outcome']);
  of('mqtt', 'allow').inc();
  of('mqtt', 'allow').inc(2);
  of('mqtt', 'deny').inc();
  of('ws', 'allow').inc(5);
  assert.equal(of('mqtt', 'allow'), of('mqtt', 'allow'), 'the same child for the same labels');
  const text = await registry.getSingleMetricAsString('robustmq_test_family_total');
  assert.match(text, /robustmq_test_family_total\{listener="mqtt",outcome="allow"\} 3\n/);
  assert.match(text, /robustmq_test_family_total\{listener="mqtt",outcome="deny"\} 1\n/);
  assert.match(text, /robustmq_test_family_total\{listener="ws",outcome="allow"\} 5\n?/);
});
