import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage } from './message-codec.js';
import { EntryType, MessageType, makeMessage, type Message } from '../raft/types.js';
import { coalesce, expandHeartbeat } from './grpc-transport.js';

const app = makeMessage({
  type: MessageType.App,
  to: 2,
  from: 1,
  term: 3,
  logTerm: 3,
  index: 41,
  commit: 40,
  entries: [{ index: 42, term: 3, type: EntryType.Normal, data: new Uint8Array([0xaa, 0xbb]) }],
});

test('golden bytes of a MsgApp with one entry', () => {
  const hex = encodeMessage(app).toString('hex');
  const f64 = (n: number): string => {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(n);
    return b.toString('hex');
  };
  const expected =
    '01' + // version
    '03' + // MsgApp is the 4th message type
    '02000000' +
    '01000000' +
    f64(3) + // term
    f64(3) + // logTerm
    f64(41) + // index
    f64(40) + // commit
    f64(0) + // rejectHint
    '00' + // reject
    '00000000' + // context
    '01000000' + // one entry
    f64(42) +
    f64(3) +
    '00' + // normal
    '02000000' +
    'aabb' +
    '00'; // no snapshot
  assert.equal(hex, expected);
  assert.deepEqual(decodeMessage(encodeMessage(app)), app);
});

test('a snapshot, a context and a rejection survive the round trip', () => {
  const m = makeMessage({
    type: MessageType.Snap,
    to: 3,
    from: 1,
    term: 9,
    context: 'read-ctx-é',
    reject: true,
    rejectHint: 17,
    snapshot: { data: new Uint8Array([1, 2, 3]), metadata: { index: 100, term: 8, confState: { voters: [1, 2, 3], learners: [4] } } },
  });
  assert.deepEqual(decodeMessage(encodeMessage(m)), m);
});

test('every truncation of a valid message is refused with an error, never a wrong message', () => {
  const full = encodeMessage({
    ...app,
    snapshot: { data: new Uint8Array(5), metadata: { index: 1, term: 1, confState: { voters: [1], learners: [] } } },
  });
  for (let n = 0; n < full.length; n++) assert.throws(() => decodeMessage(full.subarray(0, n)), /raft message/);
  assert.throws(() => decodeMessage(Buffer.concat([full, Buffer.from([0])])), /trailing bytes/);
});

test('bad version, type, numbers and huge counts are refused', () => {
  const b = encodeMessage(app);
  assert.throws(() => decodeMessage(Buffer.concat([Buffer.from([9]), b.subarray(1)])), /unknown version/);
  const badType = Buffer.from(b);
  badType[1] = 200;
  assert.throws(() => decodeMessage(badType), /unknown type/);
  const negTerm = Buffer.from(b);
  negTerm.writeDoubleLE(-1, 10);
  assert.throws(() => decodeMessage(negTerm), /bad term/);
  const fracIndex = Buffer.from(b);
  fracIndex.writeDoubleLE(1.5, 26);
  assert.throws(() => decodeMessage(fracIndex), /bad index/);
  const huge = Buffer.from(encodeMessage(makeMessage({ type: MessageType.Heartbeat, to: 1, from: 2 })));
  huge.writeUInt32LE(0xffffffff, huge.length - 5); // entry count
  assert.throws(() => decodeMessage(huge), /truncated at entries/);
});

/** A small deterministic PRNG (mulberry32) so failures reproduce from the printed seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('property: random messages round-trip; random byte flips never throw anything but an Error', () => {
  const types = Object.values(MessageType);
  for (let seed = 1; seed <= 300; seed++) {
    const r = rng(seed);
    const int = (max: number): number => Math.floor(r() * max);
    const m: Message = makeMessage({
      type: types[int(types.length)] as Message['type'],
      to: int(2 ** 32),
      from: int(2 ** 32),
      term: int(Number.MAX_SAFE_INTEGER),
      logTerm: int(1e9),
      index: int(1e12),
      commit: int(1e12),
      rejectHint: int(1e6),
      reject: r() < 0.5,
      context: r() < 0.3 ? `ctx-${int(1e6)}` : '',
      entries: Array.from({ length: int(5) }, () => ({
        index: int(1e9),
        term: int(1e5),
        type: r() < 0.9 ? EntryType.Normal : EntryType.ConfChange,
        data: new Uint8Array(Array.from({ length: int(40) }, () => int(256))),
      })),
      snapshot:
        r() < 0.2
          ? {
              data: new Uint8Array(Array.from({ length: int(30) }, () => int(256))),
              metadata: {
                index: int(1e9),
                term: int(1e5),
                confState: { voters: [1, 2, 3].slice(0, 1 + int(3)), learners: r() < 0.5 ? [7] : [] },
              },
            }
          : undefined,
    });
    const enc = encodeMessage(m);
    assert.deepEqual(decodeMessage(enc), m, `seed ${seed}`);
    for (let k = 0; k < 20; k++) {
      const mutated = Buffer.from(enc);
      mutated[int(mutated.length)] = int(256);
      try {
        decodeMessage(mutated);
      } catch (err) {
        assert.ok(err instanceof Error && /raft message/.test(err.message), `seed ${seed}: ${String(err)}`);
      }
    }
  }
});

test('heartbeats and their responses are coalesced to a few numbers and expand back to the same message', () => {
  const hb = makeMessage({ type: MessageType.Heartbeat, to: 2, from: 1, term: 7, commit: 99, context: 'r1' });
  const resp = makeMessage({ type: MessageType.HeartbeatResp, to: 1, from: 2, term: 7, context: 'r1' });
  for (const m of [hb, resp]) {
    const c = coalesce({ group: 3, message: m });
    assert.ok(c !== undefined);
    assert.equal(c.group, 3);
    assert.deepEqual(expandHeartbeat(c, m.from, m.to), m);
  }
  assert.equal(coalesce({ group: 0, message: app }), undefined);
  assert.equal(coalesce({ group: 0, message: { ...hb, reject: true } }), undefined);
});
