import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRecordBatch } from '@robustmq/journal';
import { API_BY_KEY } from '../src/kafka/messages/index.js';
import { decodeResponseFrame, encodeRequestFrame, type ApiCodec } from '../src/kafka/protocol.js';
import { ResponsePipeline } from '../src/kafka/pipeline.js';
import { RawKafka, startKafkaBroker } from './kafka-helpers.js';

const api = (key: number): ApiCodec => API_BY_KEY[key as keyof typeof API_BY_KEY] as unknown as ApiCodec;
const PRODUCE = api(0);
const LIST_OFFSETS = api(2);

interface ProduceResp {
  responses: { partitionResponses: { errorCode: number; baseOffset: bigint }[] }[];
}

const deferred = <T>(): { promise: Promise<T>; resolve: (v: T) => void } => {
  let resolve: (v: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
};

test('ResponsePipeline: responses leave in push order whatever order they complete in; limit and idle', async () => {
  const written: string[] = [];
  const p = new ResponsePipeline(2, 1024, {
    write: async (chunks) => void written.push(chunks.map((c) => c.toString()).join('')),
    cork: () => undefined,
    uncork: () => undefined,
    onError: (err) => assert.fail(err as Error),
  });
  const a = deferred<Buffer[] | undefined>();
  const b = deferred<Buffer[] | undefined>();
  p.push(a.promise, 10);
  p.push(b.promise, 10);
  let roomy = false;
  const room = p.room(10).then(() => (roomy = true));
  b.resolve([Buffer.from('b')]);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(written, [], 'b waits for a');
  assert.equal(roomy, false, 'two in flight: no room');
  a.resolve([Buffer.from('a')]);
  await room;
  await p.idle();
  assert.deepEqual(written, ['a', 'b']);
  // no response (acks=0) still keeps its place; bytes bound the pipeline too
  const c = deferred<Buffer[] | undefined>();
  p.push(c.promise, 1000);
  let fits = false;
  const big = p.room(100).then(() => (fits = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(fits, false, '1000 + 100 bytes exceed 1024');
  c.resolve(undefined);
  await big;
  assert.equal(p.size, 0);
});

test('ResponsePipeline: a failed request fails the pipeline once; later responses are not written', async () => {
  const written: string[] = [];
  const errors: unknown[] = [];
  const p = new ResponsePipeline(4, 1024, {
    write: async (chunks) => void written.push(chunks.map((c) => c.toString()).join('')),
    cork: () => undefined,
    uncork: () => undefined,
    onError: (err) => errors.push(err),
  });
  p.push(Promise.reject(new Error('boom')), 1);
  p.push(Promise.resolve([Buffer.from('after')]), 1);
  await assert.rejects(p.idle(), /boom/);
  await assert.rejects(p.room(1), /boom/);
  assert.deepEqual(written, []);
  assert.equal(errors.length, 1);
});

test('pipelined produce: many requests sent at once are answered in order with consecutive offsets; the next API waits for them', async (t) => {
  const b = await startKafkaBroker(t);
  const c = await RawKafka.connect(t, b.kafkaPort);
  const n = 40;
  const frames: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const records = encodeRecordBatch([{ value: Buffer.from(`r${i}-a`) }, { value: Buffer.from(`r${i}-b`) }]);
    const body = {
      transactionalId: null,
      acks: -1,
      timeoutMs: 1000,
      topicData: [{ name: 'pipe', partitionData: [{ index: 0, records }] }],
    };
    frames.push(encodeRequestFrame(PRODUCE, 7, i + 1, 'pipe-test', body));
  }
  // all produce requests and a ListOffsets in one write: the ListOffsets must see all 80 records
  const listOffsets = {
    replicaId: -1,
    isolationLevel: 0,
    topics: [{ name: 'pipe', partitions: [{ partitionIndex: 0, currentLeaderEpoch: -1, timestamp: -1n }] }],
  };
  c.send(Buffer.concat([...frames, encodeRequestFrame(LIST_OFFSETS, 5, n + 1, 'pipe-test', listOffsets)]));
  for (let i = 0; i < n; i++) {
    const f = await c.next();
    assert.ok(f, 'connection closed');
    const r = decodeResponseFrame(PRODUCE, 7, f);
    assert.equal(r.correlationId, i + 1);
    const p = (r.body as ProduceResp).responses[0]!.partitionResponses[0]!;
    assert.equal(p.errorCode, 0);
    assert.equal(p.baseOffset, BigInt(2 * i), `request ${i + 1} stored in request order`);
  }
  const f = await c.next();
  assert.ok(f);
  const lo = decodeResponseFrame(LIST_OFFSETS, 5, f);
  assert.equal(lo.correlationId, n + 1);
  const offsets = lo.body as { topics: { partitions: { offset: bigint }[] }[] };
  assert.equal(offsets.topics[0]!.partitions[0]!.offset, BigInt(2 * n));
});
