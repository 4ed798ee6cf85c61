import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SeededRandom } from '../random.js';
import { checkLinearizable, type Operation } from './linearizability.js';

let nextId = 1;
function put(value: string, call: number, ret: number, key = 'k'): Operation {
  return { id: nextId++, client: 0, kind: 'put', key, value, call, ret };
}
function get(value: string | undefined, call: number, ret: number, key = 'k'): Operation {
  return { id: nextId++, client: 0, kind: 'get', key, value, call, ret };
}

test('sequential histories: reads must see the last completed write', () => {
  assert.equal(checkLinearizable([put('1', 0, 1), get('1', 2, 3)]).ok, true);
  assert.equal(checkLinearizable([get(undefined, 0, 1), put('1', 2, 3), get('1', 4, 5)]).ok, true);
  assert.equal(checkLinearizable([put('1', 0, 1), get(undefined, 2, 3)]).ok, false);
  assert.equal(checkLinearizable([put('1', 0, 1), put('2', 2, 3), get('1', 4, 5)]).ok, false, 'stale read');
});

test('concurrent operations may take effect in either order', () => {
  assert.equal(checkLinearizable([put('1', 0, 10), get(undefined, 1, 2), get('1', 3, 4)]).ok, true);
  assert.equal(checkLinearizable([put('1', 0, 10), get('1', 1, 2), get(undefined, 3, 4)]).ok, false, 'no going back');
  assert.equal(checkLinearizable([put('1', 0, 10), put('2', 1, 9), get('2', 11, 12)]).ok, true);
  assert.equal(checkLinearizable([put('1', 0, 10), put('2', 1, 9), get('1', 11, 12)]).ok, true);
});

test('an unknown write may take effect late, or never, but reads stay monotonic', () => {
  assert.equal(checkLinearizable([put('1', 0, Infinity), get(undefined, 5, 6), get('1', 7, 8)]).ok, true);
  assert.equal(checkLinearizable([put('1', 0, Infinity), get(undefined, 5, 6)]).ok, true);
  assert.equal(
    checkLinearizable([put('1', 0, 1), put('2', 0, Infinity), get('2', 2, 3), get('1', 4, 5)]).ok,
    false,
    'once 2 is seen after 1 completed, 1 cannot come back',
  );
  assert.equal(checkLinearizable([put('1', 5, Infinity), get('1', 0, 1)]).ok, false, 'a read cannot precede the write');
});

test('keys are checked independently and a value never written fails at once', () => {
  const r = checkLinearizable([put('1', 0, 1, 'a'), get('1', 2, 3, 'a'), get('zzz', 2, 3, 'b')]);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.key, 'b');
});

test('property: histories produced by a real register with stretched intervals are linearizable; a corrupted read is caught', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const rnd = new SeededRandom(seed);
    // Operations take effect atomically at distinct instants t; each one's interval is
    // stretched around t, so a linearization exists by construction.
    const ops: Operation[] = [];
    let value: string | undefined;
    for (let t = 0; t < 60; t++) {
      const at = t * 10;
      const call = at - rnd.int(25);
      const ret = at + rnd.int(25);
      if (rnd.chance(0.5)) {
        value = `v${t}`;
        ops.push(put(value, call, rnd.chance(0.1) ? Infinity : ret));
      } else ops.push(get(value, call, ret));
    }
    assert.equal(checkLinearizable(ops).ok, true, `seed ${seed}`);
    // Make one completed read return a value written strictly later (after the read completed).
    const gets = ops.filter((o) => o.kind === 'get');
    const victim = gets[rnd.int(gets.length)];
    const later = ops.find((o) => o.kind === 'put' && victim !== undefined && o.call > victim.ret);
    if (victim === undefined || later === undefined) continue;
    const bad = ops.map((o) => (o === victim ? { ...o, value: later.value } : o));
    assert.equal(checkLinearizable(bad).ok, false, `seed ${seed}: corrupted read accepted`);
  }
});
