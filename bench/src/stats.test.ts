import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bucketHigh, bucketOf, Histogram, median, percentileOf, summarizeLatency } from './stats.js';
import { defaultFilter, topicMatches } from './mqtt-bench.js';

test('nearest-rank percentiles of small exact sets', () => {
  const h = new Histogram();
  for (let v = 1; v <= 100; v++) h.record(v);
  assert.equal(h.percentile(50), 50);
  assert.equal(h.percentile(95), 95);
  assert.equal(h.percentile(99), 99);
  assert.equal(h.percentile(100), 100);
  assert.equal(h.max, 100);
  assert.equal(percentileOf([5, 1, 4, 2, 3], 50), 3);
  assert.equal(percentileOf([10, 20], 50), 10);
  assert.equal(percentileOf([10, 20], 51), 20);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  const one = new Histogram();
  one.record(7);
  assert.deepEqual([one.percentile(1), one.percentile(50), one.percentile(100)], [7, 7, 7]);
  assert.equal(new Histogram().percentile(99), 0);
});

test('histogram buckets: monotonic, contiguous, at most 1/128 wide', () => {
  let prev = -1;
  for (let v = 0; v < 1 << 20; v += 1 + (v >> 6)) {
    const i = bucketOf(v);
    assert.ok(i >= prev, `bucketOf(${v})`);
    prev = i;
    assert.ok(bucketHigh(i) >= v, `high of ${v}`);
    assert.ok(bucketHigh(i) - v <= Math.max(0, v / 128), `width at ${v}`);
  }
  assert.equal(bucketHigh(bucketOf(2 ** 31 - 1)), 2 ** 31 - 1);
});

test('histogram percentiles are within 1 % of the exact ones', () => {
  let seed = 42;
  const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const values: number[] = [];
  const h = new Histogram();
  for (let i = 0; i < 20000; i++) {
    const v = Math.floor(Math.exp(rnd() * 14)); // 1 µs … 1.2 s, log-spread
    values.push(v);
    h.record(v);
  }
  for (const p of [50, 90, 95, 99, 99.9]) {
    const exact = percentileOf(values, p);
    const got = h.percentile(p);
    assert.ok(got >= exact && got <= exact * 1.01 + 1, `p${p}: ${got} vs ${exact}`);
  }
  const s = summarizeLatency(h);
  assert.equal(s.count, 20000);
  assert.equal(s.max, Math.max(...values) / 1000);
  const m = new Histogram();
  m.recordMany(1500, 3);
  m.merge(h);
  assert.equal(m.count, 20003);
});

test('topic filters: default filter, matching', () => {
  assert.equal(defaultFilter('bench/%i'), 'bench/+');
  assert.equal(defaultFilter('bench/x'), 'bench/x');
  assert.equal(defaultFilter('dev%i/t'), 'dev0/t');
  assert.ok(topicMatches('bench/+', 'bench/3'));
  assert.ok(topicMatches('bench/#', 'bench/3/x'));
  assert.ok(topicMatches('bench/#', 'bench'));
  assert.ok(!topicMatches('bench/+', 'bench/3/x'));
  assert.ok(!topicMatches('+/x', '$SYS/x'));
  assert.ok(topicMatches('a/b', 'a/b'));
});
