import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRecordBatch } from '@robustmq/journal';
import { API_BY_KEY } from '../src/kafka/messages/index.js';
import { decodeResponseFrame, encodeRequestFrame, type ApiCodec } from '../src/kafka/protocol.js';
import { KafkaError } from '../src/kafka/errors.js';
import { RawKafka, startKafkaBroker } from './kafka-helpers.js';

const api = (key: number): ApiCodec => API_BY_KEY[key as keyof typeof API_BY_KEY] as unknown as ApiCodec;
const PRODUCE = api(0);
const FETCH = api(1);
const METADATA = api(3);
const API_VERSIONS = api(18);
const INIT_PID = api(22);

async function call<T>(c: RawKafka, a: ApiCodec, v: number, body: unknown, corr = 1): Promise<T> {
  c.send(encodeRequestFrame(a, v, corr, 'raw-test', body));
  const frame = await c.next();
  assert.ok(frame, `${a.name} v${v}: connection closed`);
  const r = decodeResponseFrame(a, v, frame);
  assert.equal(r.correlationId, corr);
  return r.body as T;
}

interface ProduceResp {
  responses: { partitionResponses: { errorCode: number; baseOffset: bigint }[] }[];
}

function produceBody(topic: string, records: Buffer, acks = -1): unknown {
  return { transactionalId: null, acks, timeoutMs: 1000, topicData: [{ name: topic, partitionData: [{ index: 0, records }] }] };
}

test('bad input closes only that connection: garbage, oversized frame, unknown API version; the server survives', async (t) => {
  const b = await startKafkaBroker(t, { kafka: { maxRequestBytes: 4096 } });
  const garbage = await RawKafka.connect(t, b.kafkaPort);
  garbage.send(Buffer.from([0, 0, 0, 3, 1, 2, 3]));
  assert.equal(await garbage.waitClosed(), true);

  const big = await RawKafka.connect(t, b.kafkaPort);
  big.send(Buffer.from([0, 0x10, 0, 0, 0, 0])); // 1 MiB > 4096
  assert.equal(await big.waitClosed(), true);

  const unknown = await RawKafka.connect(t, b.kafkaPort);
  const frame = encodeRequestFrame(METADATA, 12, 5, 'x', { topics: null });
  frame.writeInt16BE(99, 6); // Metadata v99
  unknown.send(frame);
  assert.equal(await unknown.waitClosed(), true);

  const badKey = await RawKafka.connect(t, b.kafkaPort);
  const f2 = encodeRequestFrame(METADATA, 1, 5, 'x', { topics: null });
  f2.writeInt16BE(57, 4); // an API key we do not serve
  badKey.send(f2);
  assert.equal(await badKey.waitClosed(), true);

  // a healthy connection still works
  const ok = await RawKafka.connect(t, b.kafkaPort);
  const md = await call<{ brokers: { port: number }[] }>(ok, METADATA, 1, { topics: null });
  assert.equal(md.brokers[0]!.port, b.kafkaPort);
});

test('ApiVersions: an unknown version gets UNSUPPORTED_VERSION in the v0 shape; v3 is answered with header v0', async (t) => {
  const b = await startKafkaBroker(t);
  const c = await RawKafka.connect(t, b.kafkaPort);
  const frame = encodeRequestFrame(API_VERSIONS, 3, 9, 'future', { clientSoftwareName: 'x', clientSoftwareVersion: '1' });
  frame.writeInt16BE(4, 6); // ApiVersions v4 (Kafka 4.0 clients)
  c.send(frame);
  const resp = decodeResponseFrame(API_VERSIONS, 0, (await c.next())!);
  const body = resp.body as { errorCode: number; apiKeys: { apiKey: number; maxVersion: number }[] };
  assert.equal(resp.correlationId, 9);
  assert.equal(body.errorCode, KafkaError.UNSUPPORTED_VERSION);
  assert.ok(body.apiKeys.some((k) => k.apiKey === 18 && k.maxVersion === 3));
  // the client retries with v3 on the same connection
  const v3 = await call<{ errorCode: number; apiKeys: unknown[] }>(
    c,
    API_VERSIONS,
    3,
    { clientSoftwareName: 'confluent-kafka-python', clientSoftwareVersion: '1.7.0-rdkafka-2.0.2' },
    10,
  );
  assert.equal(v3.errorCode, 0);
  assert.equal(v3.apiKeys.length, Object.keys(API_BY_KEY).length);
});

test('produce: a bad CRC is CORRUPT_MESSAGE and nothing is stored; acks=0 gets no response; fetch is never null', async (t) => {
  const b = await startKafkaBroker(t);
  const c = await RawKafka.connect(t, b.kafkaPort);
  const good = encodeRecordBatch([{ key: Buffer.from('k'), value: Buffer.from('v') }]);
  const bad = Buffer.from(good);
  bad[bad.length - 1]! ^= 0xff;
  const r1 = await call<ProduceResp>(c, PRODUCE, 7, produceBody('crc', bad));
  assert.equal(r1.responses[0]!.partitionResponses[0]!.errorCode, KafkaError.CORRUPT_MESSAGE);
  // acks=0: no response, but stored; the next request's answer proves the order
  c.send(encodeRequestFrame(PRODUCE, 7, 2, 'raw-test', produceBody('crc', good, 0)));
  const r2 = await call<ProduceResp>(c, PRODUCE, 9, produceBody('crc', encodeRecordBatch([{ value: Buffer.from('2') }])), 3);
  assert.equal(r2.responses[0]!.partitionResponses[0]!.baseOffset, 1n);

  interface FetchResp {
    responses: { partitions: { errorCode: number; highWatermark: bigint; records: Buffer | null }[] }[];
  }
  const fetchBody = (offset: bigint, maxWaitMs: number): unknown => ({
    replicaId: -1,
    maxWaitMs,
    minBytes: 1,
    maxBytes: 1 << 20,
    isolationLevel: 1,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [{ topic: 'crc', partitions: [{ partition: 0, fetchOffset: offset, partitionMaxBytes: 1 << 20 }] }],
    forgottenTopicsData: [],
    rackId: '',
  });
  const empty = await call<FetchResp>(c, FETCH, 11, fetchBody(2n, 0), 4);
  const p = empty.responses[0]!.partitions[0]!;
  assert.equal(p.errorCode, 0);
  assert.equal(p.highWatermark, 2n);
  assert.ok(p.records !== null && p.records.length === 0, 'empty records, not null');

  // long poll: parked, woken by an append on another connection
  const started = Date.now();
  c.send(encodeRequestFrame(FETCH, 12, 5, 'raw-test', fetchBody(2n, 5000)));
  await new Promise((r) => setTimeout(r, 100));
  const other = await RawKafka.connect(t, b.kafkaPort);
  await call<ProduceResp>(other, PRODUCE, 8, produceBody('crc', encodeRecordBatch([{ value: Buffer.from('wake') }])));
  const woke = decodeResponseFrame(FETCH, 12, (await c.next())!).body as FetchResp;
  assert.ok(Date.now() - started < 3000, 'woken by the append, not the timeout');
  assert.ok(woke.responses[0]!.partitions[0]!.records!.length > 0);

  // out of range
  const oor = await call<FetchResp>(c, FETCH, 11, fetchBody(99n, 0), 6);
  assert.equal(oor.responses[0]!.partitions[0]!.errorCode, KafkaError.OFFSET_OUT_OF_RANGE);
  assert.deepEqual(oor.responses[0]!.partitions[0]!.records, Buffer.alloc(0));
});

test('acks=0: a refused produce closes the connection (there is no response to carry the error); nothing is stored', async (t) => {
  const b = await startKafkaBroker(t);
  const c = await RawKafka.connect(t, b.kafkaPort);
  const good = encodeRecordBatch([{ value: Buffer.from('ok') }]);
  const bad = Buffer.from(good);
  bad[bad.length - 1]! ^= 0xff;
  await call<ProduceResp>(c, PRODUCE, 9, produceBody('acks0', good), 1);
  c.send(encodeRequestFrame(PRODUCE, 9, 2, 'raw-test', produceBody('acks0', bad, 0)));
  assert.equal(await c.next(), undefined, 'the connection is closed, no frame is sent');
  assert.ok(c.closed);
  // the broker and other connections are fine; only the good record is stored
  const d = await RawKafka.connect(t, b.kafkaPort);
  const r = await call<ProduceResp>(d, PRODUCE, 9, produceBody('acks0', good), 3);
  assert.deepEqual([r.responses[0]!.partitionResponses[0]!.errorCode, r.responses[0]!.partitionResponses[0]!.baseOffset], [0, 1n]);
  // acks=0 to a topic that cannot exist (auto-creation refuses the name) closes the connection too
  d.send(encodeRequestFrame(PRODUCE, 9, 4, 'raw-test', produceBody('bad topic!', good, 0)));
  assert.equal(await d.next(), undefined);
});

test('fetch minBytes: with some data there the request stays parked until minBytes arrived or maxWaitMs passed', async (t) => {
  const b = await startKafkaBroker(t);
  const c = await RawKafka.connect(t, b.kafkaPort);
  const other = await RawKafka.connect(t, b.kafkaPort);
  const batch = (n: number): Buffer => encodeRecordBatch([{ value: Buffer.alloc(n, 0x61) }]);
  const first = batch(100);
  await call<ProduceResp>(c, PRODUCE, 9, produceBody('minb', first));
  interface FetchResp {
    responses: { partitions: { errorCode: number; records: Buffer | null }[] }[];
  }
  const fetchBody = (minBytes: number, maxWaitMs: number): unknown => ({
    replicaId: -1,
    maxWaitMs,
    minBytes,
    maxBytes: 1 << 20,
    isolationLevel: 1,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [{ topic: 'minb', partitions: [{ partition: 0, fetchOffset: 0n, partitionMaxBytes: 1 << 20 }] }],
    forgottenTopicsData: [],
    rackId: '',
  });
  const bytes = (r: FetchResp): number => r.responses[0]!.partitions[0]!.records!.length;

  // minBytes above what is there and nothing more arrives: the whole maxWaitMs, then what there is
  let started = Date.now();
  const timedOut = await call<FetchResp>(c, FETCH, 12, fetchBody(4096, 700), 2);
  const waited = Date.now() - started;
  assert.ok(waited >= 650, `parked for maxWaitMs, answered after ${waited} ms`);
  assert.equal(bytes(timedOut), first.length);

  // small appends below minBytes do not answer it; the one that crosses it does, at once
  started = Date.now();
  c.send(encodeRequestFrame(FETCH, 12, 3, 'raw-test', fetchBody(2000, 10_000)));
  let answered = false;
  const reply = c.next().then((f) => {
    answered = true;
    return f;
  });
  for (let i = 0; i < 3; i++) {
    await call<ProduceResp>(other, PRODUCE, 9, produceBody('minb', batch(100)), 10 + i);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(answered, false, `still parked after append ${i + 1} (< minBytes)`);
  }
  await call<ProduceResp>(other, PRODUCE, 9, produceBody('minb', batch(2000)), 20);
  const woke = decodeResponseFrame(FETCH, 12, (await reply)!).body as FetchResp;
  assert.ok(Date.now() - started < 5000, 'woken by the append that crossed minBytes, not the timeout');
  assert.ok(bytes(woke) >= 2000, `got ${bytes(woke)} bytes`);

  // minBytes already met: answered at once
  started = Date.now();
  await call<FetchResp>(c, FETCH, 12, fetchBody(500, 10_000), 4);
  assert.ok(Date.now() - started < 1000);
});

test('idempotent producer: next sequence accepted, duplicate answered with its offset, gap and old epoch refused', async (t) => {
  const b = await startKafkaBroker(t);
  const c = await RawKafka.connect(t, b.kafkaPort);
  const init = await call<{ errorCode: number; producerId: bigint; producerEpoch: number }>(c, INIT_PID, 4, {
    transactionalId: null,
    transactionTimeoutMs: 60000,
    producerId: -1n,
    producerEpoch: -1,
  });
  assert.equal(init.errorCode, 0);
  const pid = init.producerId;
  const batch = (seq: number, n: number, epoch = init.producerEpoch): Buffer =>
    encodeRecordBatch(
      Array.from({ length: n }, (_, i) => ({ value: Buffer.from(`r${seq + i}`) })),
      { producerId: pid, producerEpoch: epoch, baseSequence: seq },
    );
  const send = async (records: Buffer): Promise<[number, bigint]> => {
    const r = (await call<ProduceResp>(c, PRODUCE, 7, produceBody('idem', records))).responses[0]!.partitionResponses[0]!;
    return [r.errorCode, r.baseOffset];
  };
  assert.deepEqual(await send(batch(0, 2)), [0, 0n]);
  assert.deepEqual(await send(batch(2, 1)), [0, 2n]);
  // a retried duplicate: the original offset, nothing appended
  assert.deepEqual(await send(batch(0, 2)), [0, 0n]);
  assert.equal(await b.journal.latestOffset('kafka/idem/0'), 3n);
  // a gap
  assert.equal((await send(batch(5, 1)))[0], KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER);
  // an old epoch after a re-init bumped it
  const again = await call<{ producerEpoch: number }>(c, INIT_PID, 4, {
    transactionalId: null,
    transactionTimeoutMs: 60000,
    producerId: pid,
    producerEpoch: init.producerEpoch,
  });
  assert.equal(again.producerEpoch, init.producerEpoch + 1);
  assert.equal((await send(batch(3, 1)))[0], KafkaError.INVALID_PRODUCER_EPOCH);
  assert.deepEqual(await send(batch(0, 1, again.producerEpoch)), [0, 3n]);
  // an id never issued
  const stranger = encodeRecordBatch([{ value: Buffer.from('x') }], { producerId: 999_999n, producerEpoch: 0, baseSequence: 0 });
  assert.equal((await send(stranger))[0], KafkaError.UNKNOWN_PRODUCER_ID);
});
