import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompactedError, KvStore, LeaseNotFoundError, prefixEnd, type WatchEvent } from './kv-store.js';
import { SortedKeys } from './sorted-keys.js';

const b = (s: string): Buffer => Buffer.from(s);

test('put, get, versions and revisions follow etcd', () => {
  const kv = new KvStore();
  assert.equal(kv.apply({ op: 'put', key: 'a', value: b('1') }).revision, 1);
  assert.equal(kv.apply({ op: 'put', key: 'b', value: b('2') }).revision, 2);
  const r = kv.apply({ op: 'put', key: 'a', value: b('3'), prevKv: true });
  assert.equal(r.op === 'put' && r.prevKv?.value.toString(), '1');
  const [a] = kv.range('a').kvs;
  assert.deepEqual([a?.value.toString(), a?.createRevision, a?.modRevision, a?.version], ['3', 1, 3, 2]);
  assert.equal(kv.range('missing').kvs.length, 0);
});

test('range by prefix is ordered, limited, and counts the rest', () => {
  const kv = new KvStore();
  for (const k of ['users/b', 'users/a', 'acl/x', 'users/c', 'usersz']) kv.apply({ op: 'put', key: k, value: b(k) });
  const r = kv.range('users/', prefixEnd('users/'), 2);
  assert.deepEqual(
    r.kvs.map((x) => x.key),
    ['users/a', 'users/b'],
  );
  assert.equal(r.more, true);
  assert.equal(r.count, 3);
  assert.equal(kv.range('', '\0').count, 5);
});

test('delete range removes keys at one revision and reports them', () => {
  const kv = new KvStore();
  for (const k of ['p/1', 'p/2', 'q/1']) kv.apply({ op: 'put', key: k, value: b('v') });
  const d = kv.apply({ op: 'delete', key: 'p/', rangeEnd: prefixEnd('p/'), prevKv: true });
  assert.equal(d.op === 'delete' && d.deleted, 2);
  assert.equal(d.revision, 4);
  assert.equal(kv.range('', '\0').count, 1);
  const none = kv.apply({ op: 'delete', key: 'zzz' });
  assert.equal(none.revision, 4, 'deleting nothing does not bump the revision');
});

test('transactions compare on value, version and revisions and apply one branch atomically', () => {
  const kv = new KvStore();
  kv.apply({ op: 'put', key: 'lock', value: b('owner-1') });
  const ok = kv.apply({
    op: 'txn',
    compare: [
      { key: 'lock', target: 'value', result: '=', value: b('owner-1') },
      { key: 'lock', target: 'version', result: '=', value: 1 },
    ],
    success: [
      { op: 'put', key: 'lock', value: b('owner-2') },
      { op: 'put', key: 'log', value: b('moved') },
    ],
    failure: [{ op: 'range', key: 'lock' }],
  });
  assert.ok(ok.op === 'txn' && ok.succeeded);
  assert.equal(ok.revision, 2, 'one revision for the whole transaction');
  assert.equal(kv.range('log').kvs[0]?.modRevision, 2);
  const create = kv.apply({
    op: 'txn',
    compare: [{ key: 'lock', target: 'createRevision', result: '=', value: 0 }],
    success: [{ op: 'put', key: 'lock', value: b('x') }],
    failure: [{ op: 'range', key: 'lock' }],
  });
  assert.ok(create.op === 'txn' && !create.succeeded);
  const resp = create.responses[0];
  assert.equal(resp?.op === 'range' && resp.kvs[0]?.value.toString(), 'owner-2');
  assert.equal(kv.revision, 2);
});

test('keys attached to a lease vanish when it is revoked; unknown leases are refused', () => {
  const kv = new KvStore();
  const g = kv.apply({ op: 'leaseGrant', ttlMs: 5000 });
  assert.ok(g.op === 'leaseGrant');
  kv.apply({ op: 'put', key: 'brokers/1', value: b('up'), lease: g.id });
  kv.apply({ op: 'put', key: 'routes/1/a', value: b('r'), lease: g.id });
  kv.apply({ op: 'put', key: 'keep', value: b('k') });
  // re-putting without the lease detaches the key
  kv.apply({ op: 'put', key: 'routes/1/a', value: b('r2') });
  const r = kv.apply({ op: 'leaseRevoke', id: g.id });
  assert.equal(r.op === 'leaseRevoke' && r.deleted, 1);
  assert.deepEqual(
    kv.range('', '\0').kvs.map((x) => x.key),
    ['keep', 'routes/1/a'],
  );
  assert.throws(() => kv.apply({ op: 'put', key: 'x', value: b('y'), lease: 99 }), LeaseNotFoundError);
  assert.throws(() => kv.apply({ op: 'leaseRevoke', id: g.id }), LeaseNotFoundError);
});

test('watches see events of their range as they are applied, and from a past revision', () => {
  const kv = new KvStore();
  kv.apply({ op: 'put', key: 'a/1', value: b('1') });
  kv.apply({ op: 'put', key: 'b/1', value: b('1') });
  kv.apply({ op: 'put', key: 'a/2', value: b('2') });
  const seen: [number, string, string][] = [];
  const cancel = kv.watch('a/', prefixEnd('a/'), 1, (events: WatchEvent[], rev: number) => {
    for (const e of events) seen.push([rev, e.type, e.kv.key]);
  });
  assert.deepEqual(seen, [
    [1, 'put', 'a/1'],
    [3, 'put', 'a/2'],
  ]);
  kv.apply({ op: 'delete', key: 'a/1' });
  kv.apply({ op: 'put', key: 'b/2', value: b('x') });
  assert.deepEqual(seen.at(-1), [4, 'delete', 'a/1']);
  cancel();
  kv.apply({ op: 'put', key: 'a/3', value: b('3') });
  assert.equal(seen.length, 3, 'no events after cancel');
});

test('a watch from a compacted revision is told to re-list', () => {
  const kv = new KvStore({ maxHistoryEvents: 10 });
  for (let i = 0; i < 30; i++) kv.apply({ op: 'put', key: `k${i}`, value: b('v') });
  assert.ok(kv.compactRevision >= 20);
  assert.throws(
    () => kv.watch('k', '\0', 5, () => undefined),
    (e: unknown) => e instanceof CompactedError && e.compactRevision === kv.compactRevision,
  );
  const got: number[] = [];
  kv.watch('k', '\0', kv.compactRevision + 1, (_e, rev) => got.push(rev));
  assert.equal(got.length, 30 - kv.compactRevision);
});

test('snapshot and restore reproduce keys, revisions and leases', () => {
  const kv = new KvStore();
  const g = kv.apply({ op: 'leaseGrant', ttlMs: 1000 });
  assert.ok(g.op === 'leaseGrant');
  kv.apply({ op: 'put', key: 'x\u00ff\u0000y', value: Buffer.from([0, 1, 255]), lease: g.id });
  kv.apply({ op: 'put', key: 'plain', value: b('p') });
  const copy = new KvStore();
  copy.restore(kv.snapshot());
  assert.equal(copy.revision, kv.revision);
  assert.deepEqual(copy.range('', '\0').kvs, kv.range('', '\0').kvs);
  copy.apply({ op: 'leaseRevoke', id: g.id });
  assert.equal(copy.range('', '\0').count, 1, 'lease attachments survive the snapshot');
  const next = copy.apply({ op: 'leaseGrant', ttlMs: 1 });
  assert.ok(next.op === 'leaseGrant' && next.id > g.id, 'lease ids are not reused');
});

test('SortedKeys matches a naive sorted set under random operations (property)', () => {
  let seed = 42;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let round = 0; round < 20; round++) {
    const s = new SortedKeys();
    const naive = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const k = String.fromCharCode(97 + rand(6)) + rand(400).toString(36);
      if (rand(3) === 0) assert.equal(s.delete(k), naive.delete(k));
      else {
        const had = naive.has(k);
        naive.add(k);
        assert.equal(s.add(k), !had);
      }
    }
    const sorted = [...naive].sort();
    assert.equal(s.size, naive.size);
    assert.deepEqual([...s.range('', undefined)], sorted);
    const from = String.fromCharCode(97 + rand(6));
    const to = prefixEnd(from);
    assert.deepEqual(
      [...s.range(from, to)],
      sorted.filter((k) => k >= from && (to === undefined || k < to)),
    );
  }
});

test('prefixEnd handles 0xff bytes and the empty prefix', () => {
  assert.equal(prefixEnd('ab'), 'ac');
  assert.equal(prefixEnd('a\u00ff'), 'b');
  assert.equal(prefixEnd('\u00ff\u00ff'), undefined);
  assert.equal(prefixEnd(''), undefined);
});
