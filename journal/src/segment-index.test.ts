import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OffsetIndex, TimeIndex } from './segment-index.js';
import { mulberry32 } from './testing/random.js';

test('property: offset index lookup = largest entry ≤ target, survives a bytes round trip', () => {
  const rand = mulberry32(7);
  for (let iter = 0; iter < 200; iter++) {
    const idx = new OffsetIndex(1);
    const entries: [number, number][] = [];
    let rel = 0;
    let pos = 0;
    const n = Math.floor(rand() * 300);
    for (let i = 0; i < n; i++) {
      rel += 1 + Math.floor(rand() * 50);
      pos += 61 + Math.floor(rand() * 5000);
      idx.append(rel, pos);
      entries.push([rel, pos]);
    }
    const loaded = OffsetIndex.fromBytes(idx.toBytes(), pos + 1);
    assert.ok(loaded);
    for (let q = 0; q < 50; q++) {
      const target = Math.floor(rand() * (rel + 100));
      let want = { relOffset: 0, position: 0 };
      for (const [r, p] of entries) if (r <= target) want = { relOffset: r, position: p };
      assert.deepEqual(idx.lookup(target), want);
      assert.deepEqual(loaded.lookup(target), want);
    }
    const cut = Math.floor(rand() * (pos + 1));
    idx.truncateToPosition(cut);
    assert.equal(idx.length, entries.filter(([, p]) => p < cut).length);
  }
});

test('offset index rejects malformed or stale bytes', () => {
  const idx = new OffsetIndex();
  idx.append(5, 100);
  idx.append(9, 200);
  assert.equal(OffsetIndex.fromBytes(idx.toBytes().subarray(0, 12), 1000), null); // torn entry
  assert.equal(OffsetIndex.fromBytes(idx.toBytes(), 150), null); // points past the log
  const swapped = Buffer.concat([idx.toBytes().subarray(8), idx.toBytes().subarray(0, 8)]);
  assert.equal(OffsetIndex.fromBytes(swapped, 1000), null); // not increasing
});

test('property: time index lookup starts at or before the first record ≥ target', () => {
  const rand = mulberry32(11);
  for (let iter = 0; iter < 200; iter++) {
    // batches with offsets 0..n-1 and random (not monotonic) max timestamps
    const n = 1 + Math.floor(rand() * 200);
    const ts = Array.from({ length: n }, () => Math.floor(rand() * 10_000));
    const idx = new TimeIndex(1);
    let maxSoFar = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      if (i > 0 && rand() < 0.3) idx.maybeAppend(maxSoFar, i);
      maxSoFar = Math.max(maxSoFar, ts[i]!);
    }
    idx.seal(maxSoFar, n);
    const loaded = TimeIndex.fromBytes(idx.toBytes());
    assert.ok(loaded);
    assert.equal(loaded.lastTimestamp(), maxSoFar);
    for (let q = 0; q < 30; q++) {
      const target = Math.floor(rand() * 11_000);
      const first = ts.findIndex((t) => t >= target);
      const start = loaded.lookup(target);
      if (first >= 0) assert.ok(start <= first, `start ${start} after first match ${first}`);
      else assert.ok(start <= n);
    }
  }
});
