import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogCompactedError, LogUnavailableError, SnapshotOutOfDateError } from './errors.js';
import { MemoryStorage, NO_LIMIT, limitSize } from './storage.js';
import { EntryType, type Entry } from './types.js';

function ent(index: number, term: number, size = 0): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array(size) };
}

function storageWith(ents: Entry[]): MemoryStorage {
  const s = new MemoryStorage();
  s.append(ents);
  return s;
}

test('MemoryStorage answers term, first and last index, and entries', () => {
  const s = storageWith([ent(1, 1), ent(2, 1), ent(3, 2)]);
  assert.equal(s.firstIndex(), 1);
  assert.equal(s.lastIndex(), 3);
  assert.equal(s.term(0), 0);
  assert.equal(s.term(3), 2);
  assert.throws(() => s.term(4), LogUnavailableError);
  assert.deepEqual(
    s.entries(2, 4, NO_LIMIT).map((e) => e.index),
    [2, 3],
  );
  assert.deepEqual(s.initialState().confState.voters, []);
});

test('MemoryStorage compacts, keeping the term of the compaction point', () => {
  const s = storageWith([ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 3)]);
  s.compact(2);
  assert.equal(s.firstIndex(), 3);
  assert.equal(s.term(2), 1);
  assert.throws(() => s.term(1), LogCompactedError);
  assert.throws(() => s.entries(2, 4, NO_LIMIT), LogCompactedError);
  assert.deepEqual(
    s.entries(3, 5, NO_LIMIT).map((e) => e.index),
    [3, 4],
  );
  assert.throws(() => s.compact(2), LogCompactedError);
});

test('MemoryStorage append truncates a conflicting suffix and ignores compacted entries', () => {
  const s = storageWith([ent(1, 1), ent(2, 1), ent(3, 1)]);
  s.append([ent(2, 2), ent(3, 2), ent(4, 2)]);
  assert.deepEqual(
    s.entries(1, 5, NO_LIMIT).map((e) => e.term),
    [1, 2, 2, 2],
  );
  s.compact(3);
  s.append([ent(2, 2), ent(3, 2), ent(4, 2), ent(5, 3)]);
  assert.equal(s.lastIndex(), 5);
  assert.equal(s.term(5), 3);
  assert.throws(() => s.append([ent(7, 3)]), /missing log entry/);
});

test('MemoryStorage snapshots: create, apply, refuse older ones', () => {
  const s = storageWith([ent(1, 1), ent(2, 1), ent(3, 2)]);
  const cs = { voters: [1, 2], learners: [3] };
  const snap = s.createSnapshot(2, cs, new Uint8Array([7]));
  assert.deepEqual(snap.metadata, { index: 2, term: 1, confState: cs });
  assert.throws(() => s.createSnapshot(2, cs, new Uint8Array()), SnapshotOutOfDateError);
  s.applySnapshot({ data: new Uint8Array(), metadata: { index: 10, term: 4, confState: cs } });
  assert.equal(s.firstIndex(), 11);
  assert.equal(s.lastIndex(), 10);
  assert.equal(s.term(10), 4);
  assert.throws(() => s.entries(11, 11, NO_LIMIT), LogUnavailableError);
  assert.throws(() => s.applySnapshot({ data: new Uint8Array(), metadata: { index: 9, term: 4, confState: cs } }), SnapshotOutOfDateError);
});

test('limitSize keeps at least one entry and cuts at the byte limit', () => {
  const ents = [ent(1, 1, 100), ent(2, 1, 100), ent(3, 1, 100)];
  assert.equal(limitSize(ents, 1).length, 1);
  assert.equal(limitSize(ents, 116 * 2).length, 2);
  assert.equal(limitSize(ents, NO_LIMIT).length, 3);
});

test('bootstrap storage starts every founding member from the same snapshot at index 1', () => {
  const s = MemoryStorage.bootstrap({ voters: [1, 2, 3], learners: [] });
  assert.equal(s.firstIndex(), 2);
  assert.equal(s.lastIndex(), 1);
  assert.equal(s.term(1), 1);
  assert.deepEqual(s.initialState(), { hardState: { term: 1, vote: 0, commit: 1 }, confState: { voters: [1, 2, 3], learners: [] } });
});
