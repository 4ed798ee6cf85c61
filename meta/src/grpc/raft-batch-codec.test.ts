import { test } from 'node:test';
import assert from 'node:assert/strict';
import { meta } from '@robustmq/proto';
import { EntryType, MessageType, makeMessage } from '../raft/types.js';
import { decodeMessage, encodeMessage } from './message-codec.js';
import { encodeRaftBatch, type HeartbeatItem } from './raft-batch-codec.js';
import type { Envelope } from '../node/transport.js';

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
const resp = makeMessage({ type: MessageType.AppResp, to: 1, from: 2, term: 3, index: 300, context: 'ctx-é' });
const hb: HeartbeatItem = { group: 2, term: 3, commit: 2 ** 40, context: 'r1', response: false };
const hbResp: HeartbeatItem = { group: 0, term: 3, commit: 0, context: '', response: true };

/** What the generated code writes for the same batch. */
function generated(from: number, clusterId: string, fromAddress: string, envelopes: Envelope[], heartbeats: HeartbeatItem[]): Buffer {
  return Buffer.from(
    meta.RaftBatch.encode({
      from: BigInt(from),
      clusterId,
      fromAddress,
      envelopes: envelopes.map((e) => ({ group: e.group, message: encodeMessage(e.message) })),
      heartbeats: heartbeats.map((h) => ({ ...h, term: BigInt(h.term), commit: BigInt(h.commit) })),
    }).finish(),
  );
}

test('a raft batch encodes to the same bytes as the generated RaftBatch encoder', () => {
  const cases: [number, string, string, Envelope[], HeartbeatItem[]][] = [
    [1, 'bench', '127.0.0.1:1228', [{ group: 0, message: app }], []],
    [300, '', '', [], [hb, hbResp]],
    [
      2,
      'c',
      'h:1',
      [
        { group: 5, message: app },
        { group: 0, message: resp },
      ],
      [hb],
    ],
    [0, '', '', [], []],
  ];
  for (const [from, clusterId, fromAddress, envelopes, heartbeats] of cases) {
    const ours = encodeRaftBatch({ from, clusterId, fromAddress }, envelopes, heartbeats);
    assert.equal(ours.toString('hex'), generated(from, clusterId, fromAddress, envelopes, heartbeats).toString('hex'));
  }
});

test('a raft batch decodes with the generated decoder back to its messages', () => {
  const bytes = encodeRaftBatch({ from: 7, clusterId: 'x', fromAddress: 'a:1' }, [{ group: 9, message: app }], [hb]);
  const batch = meta.RaftBatch.decode(bytes);
  assert.equal(batch.from, 7n);
  assert.equal(batch.clusterId, 'x');
  assert.equal(batch.fromAddress, 'a:1');
  assert.equal(batch.envelopes.length, 1);
  assert.equal(batch.envelopes[0]?.group, 9);
  assert.deepEqual(decodeMessage(batch.envelopes[0]?.message ?? new Uint8Array()), app);
  assert.deepEqual(batch.heartbeats, [{ group: 2, term: 3n, commit: 2n ** 40n, context: 'r1', response: false }]);
});

test('a raft batch of one heartbeat response has fixed bytes', () => {
  // from=2 (08 02) · cluster "c" (12 01 63) · heartbeat { term 3 (10 03), response (28 01) } (2a 04 …)
  const bytes = encodeRaftBatch({ from: 2, clusterId: 'c', fromAddress: '' }, [], [{ ...hbResp }]);
  assert.equal(bytes.toString('hex'), '08021201632a0410032801');
});
