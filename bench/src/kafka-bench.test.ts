import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Compression, decodeRecordBatch } from '@robustmq/journal';
import { buildBatch, ProduceFrame } from './kafka-wire.js';
import { kafkaOptionsFrom, runKafkaBench, type KafkaMode } from './kafka-bench.js';
import { startFakeKafka } from './testing/fake-kafka.js';

test('a patched Produce frame carries a valid RecordBatch with the send time', () => {
  for (const compression of [Compression.None, Compression.Gzip]) {
    const batch = buildBatch(10, 64, compression);
    const f = new ProduceFrame('c', 'topic', 1, 1000, batch, 10);
    f.patch(77, 3, 1_700_000_000_123.7);
    assert.equal(f.bytes.readInt32BE(0), f.bytes.length - 4);
    assert.equal(f.bytes.readInt32BE(8), 77);
    const at = f.bytes.length - batch.length;
    assert.equal(f.bytes.readInt32BE(at - 8), 3);
    const d = decodeRecordBatch(Buffer.from(f.bytes.subarray(at)), { verifyCrc: true });
    assert.equal(d.records.length, 10);
    assert.equal(d.records[9]!.timestamp, 1_700_000_000_123);
    assert.equal(d.records[0]!.value!.length, 64);
  }
});

test('a Produce frame for several partitions carries one valid batch per partition, each patched', () => {
  const batch = buildBatch(5, 32, Compression.None);
  const f = new ProduceFrame('c', 'topic', -1, 1000, batch, 5, 3);
  assert.equal(f.records, 15);
  f.patch(9, [4, 0, 7], 1_700_000_000_000);
  assert.equal(f.bytes.readInt32BE(8), 9);
  const entry = 8 + batch.length;
  assert.equal(f.bytes.readInt32BE(f.bytes.length - 3 * entry - 4), 3); // partition array length
  for (const [i, partition] of [4, 0, 7].entries()) {
    const at = f.bytes.length - (3 - i) * entry;
    assert.equal(f.bytes.readInt32BE(at), partition);
    assert.equal(f.bytes.readInt32BE(at + 4), batch.length);
    const d = decodeRecordBatch(Buffer.from(f.bytes.subarray(at + 8, at + 8 + batch.length)), { verifyCrc: true });
    assert.equal(d.records.length, 5);
    assert.equal(d.records[4]!.timestamp, 1_700_000_000_000);
  }
});

const opts = (mode: KafkaMode, port: number, extra: Record<string, unknown> = {}) =>
  kafkaOptionsFrom(mode, {
    host: '127.0.0.1',
    port,
    clients: 2,
    topic: 'bench-t',
    partitions: 3,
    'replication-factor': 1,
    rate: 0,
    size: 32,
    acks: '1',
    'batch-size': 50,
    compression: 'none',
    inflight: 4,
    from: 'earliest',
    'max-wait': 100,
    'max-bytes': 1 << 20,
    'drain-timeout': 2,
    'connect-timeout': 5,
    'no-progress': true,
    json: true,
    ...extra,
  });

test('kafka produce then consume against a fake broker: every record back, none lost', async (t) => {
  const fake = await startFakeKafka();
  t.after(() => fake.close());
  const p = await runKafkaBench(opts('produce', fake.port, { count: 10_000 }));
  assert.equal(p.errorCount, 0, JSON.stringify(p.errors));
  assert.equal(p.sent, 10_000);
  assert.equal(p.acked, 10_000);
  assert.equal(fake.records('bench-t'), 10_000);
  assert.equal(p.ackLatency?.count, 10_000);
  const g = await runKafkaBench(opts('produce', fake.port, { count: 2_000, compression: 'gzip', acks: '0' }));
  assert.equal(g.errorCount, 0);
  // acks 0: no responses, so wait for the broker to have read everything
  for (let i = 0; i < 100 && fake.records('bench-t') < 12_000; i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(fake.records('bench-t'), 12_000);
  const c = await runKafkaBench(opts('consume', fake.port, { 'no-create': true }));
  assert.equal(c.received, 12_000);
  assert.equal(c.expected, 12_000);
  assert.equal(c.lost, 0);
  assert.equal(c.latency?.count, 12_000);
  // asking for more than exists: the shortfall is reported as lost
  const more = await runKafkaBench(opts('consume', fake.port, { 'no-create': true, count: 12_500, 'drain-timeout': 0.5 }));
  assert.equal(more.lost, 500);
});

test('kafka produce counts broker errors by name', async (t) => {
  const fake = await startFakeKafka({ errorCode: 6 });
  t.after(() => fake.close());
  const p = await runKafkaBench(opts('produce', fake.port, { count: 1000 }));
  assert.equal(p.acked, 0);
  assert.equal(p.errors['produce NOT_LEADER_OR_FOLLOWER'], 1000);
});
