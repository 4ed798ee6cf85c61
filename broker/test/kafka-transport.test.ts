import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { uvTcpAvailable } from '@robustmq/common';
import { encodeRecordBatch } from '@robustmq/journal';
import { API_BY_KEY } from '../src/kafka/messages/index.js';
import { decodeResponseFrame, encodeRequestFrame, type ApiCodec } from '../src/kafka/protocol.js';
import { RawKafka, startKafkaBroker } from './kafka-helpers.js';

// The plain-TCP Kafka listener reads frames in the native addon by default (kafka.tcpTransport
// native: size-prefixed frames cut in C, straight into slabs) and through Node sockets and the
// Framer with `node`. These cases run on both, over real sockets, with requests cut into random
// pieces so frames span reads and slabs.
const native = uvTcpAvailable();
const api = (key: number): ApiCodec => API_BY_KEY[key as keyof typeof API_BY_KEY] as unknown as ApiCodec;
const PRODUCE = api(0);
const FETCH = api(1);
const METADATA = api(3);

/** A seeded xorshift generator: the same pieces on every run. */
function rng(seed: number): (n: number) => number {
  let s = seed;
  return (n) => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % n;
  };
}

/** Writes `bytes` in pieces of 1..maxPiece bytes, yielding to the event loop now and then. */
async function sendInPieces(c: RawKafka, bytes: Buffer, rand: (n: number) => number, maxPiece: number): Promise<void> {
  for (let pos = 0; pos < bytes.length;) {
    const n = Math.min(bytes.length - pos, 1 + rand(maxPiece));
    c.send(bytes.subarray(pos, pos + n));
    pos += n;
    if (rand(4) === 0) await sleep(1);
  }
}

for (const tcpTransport of ['native', 'node'] as const) {
  const skip = tcpTransport === 'native' && !native ? 'uvtcp addon not built' : false;

  test(`${tcpTransport}: the Kafka listener runs on the transport asked for`, { skip }, async (t) => {
    const b = await startKafkaBroker(t, { kafka: { tcpTransport } });
    const l = b.broker.listeners.find((x) => x.name === 'kafka') as { transport?: string } | undefined;
    assert.equal(l?.transport, tcpTransport);
  });

  test(`${tcpTransport}: 300 pipelined requests sent in random pieces are answered in order`, { skip }, async (t) => {
    const b = await startKafkaBroker(t, { kafka: { tcpTransport } });
    const c = await RawKafka.connect(t, b.kafkaPort);
    const frames = Array.from({ length: 300 }, (_, i) =>
      encodeRequestFrame(METADATA, 1, i + 1, `client-${'x'.repeat(i % 50)}`, { topics: null }),
    );
    await sendInPieces(c, Buffer.concat(frames), rng(0x1234567), 97);
    for (let i = 1; i <= 300; i++) {
      const f = await c.next();
      assert.ok(f, `response ${i}: connection closed`);
      assert.equal(decodeResponseFrame(METADATA, 1, f).correlationId, i);
    }
  });

  test(`${tcpTransport}: large and small produce requests in random pieces are stored byte-exact`, { skip }, async (t) => {
    const b = await startKafkaBroker(t, { kafka: { tcpTransport } });
    const c = await RawKafka.connect(t, b.kafkaPort);
    const rand = rng(0x2545f491);
    // sizes around and far above the native slabs (16–256 KiB): frames span reads and slabs
    const values = [10, 70_000, 1, 300_000, 16_000, 900_000, 5, 262_100, 40_000].map((n) => randomBytes(n));
    const batches = values.map((v, i) => encodeRecordBatch([{ key: Buffer.from(`k${i}`), value: v }]));
    const requests = batches.map((records, i) =>
      encodeRequestFrame(PRODUCE, 9, 100 + i, 'pieces', {
        transactionalId: null,
        acks: -1,
        timeoutMs: 5000,
        topicData: [{ name: `pieces-${tcpTransport}`, partitionData: [{ index: 0, records }] }],
      }),
    );
    await sendInPieces(c, Buffer.concat(requests), rand, 200_000);
    for (let i = 0; i < requests.length; i++) {
      const r = decodeResponseFrame(PRODUCE, 9, (await c.next(20_000))!);
      assert.equal(r.correlationId, 100 + i);
      const p = (r.body as { responses: { partitionResponses: { errorCode: number; baseOffset: bigint }[] }[] }).responses[0]!
        .partitionResponses[0]!;
      assert.equal(p.errorCode, 0, `request ${i}`);
      assert.equal(p.baseOffset, BigInt(i));
    }
    // read everything back in one Fetch: the stored batches are the produced bytes
    c.send(
      encodeRequestFrame(FETCH, 11, 999, 'pieces', {
        replicaId: -1,
        maxWaitMs: 0,
        minBytes: 1,
        maxBytes: 64 << 20,
        isolationLevel: 0,
        sessionId: 0,
        sessionEpoch: -1,
        topics: [{ topic: `pieces-${tcpTransport}`, partitions: [{ partition: 0, fetchOffset: 0n, partitionMaxBytes: 64 << 20 }] }],
        forgottenTopicsData: [],
        rackId: '',
      }),
    );
    const fetched = decodeResponseFrame(FETCH, 11, (await c.next(20_000))!).body as {
      responses: { partitions: { errorCode: number; records: Buffer | null }[] }[];
    };
    const part = fetched.responses[0]!.partitions[0]!;
    assert.equal(part.errorCode, 0);
    const expected = Buffer.concat(
      batches.map((bt, i) => {
        const copy = Buffer.from(bt);
        copy.writeBigInt64BE(BigInt(i), 0); // the base offset the journal assigned
        return copy;
      }),
    );
    assert.equal(part.records!.length, expected.length);
    // base offsets and the partition leader epoch are the broker's; compare the rest of each batch
    let pos = 0;
    for (const bt of batches) {
      const got = part.records!.subarray(pos, pos + bt.length);
      assert.deepEqual(got.subarray(17), bt.subarray(17), `batch at ${pos}`);
      pos += bt.length;
    }
  });

  test(
    `${tcpTransport}: a negative or oversized size prefix closes that connection only, after the requests before it`,
    { skip },
    async (t) => {
      const b = await startKafkaBroker(t, { kafka: { tcpTransport, maxRequestBytes: 4096 } });
      for (const prefix of [Buffer.from([0xff, 0xff, 0xff, 0xfe]), Buffer.from([0, 0, 0x10, 1])]) {
        const c = await RawKafka.connect(t, b.kafkaPort);
        const before = encodeRequestFrame(METADATA, 1, 7, 'x', { topics: null });
        c.send(Buffer.concat([before, prefix, Buffer.alloc(100)]));
        const f = await c.next();
        assert.ok(f, 'the request before the bad prefix is answered');
        assert.equal(decodeResponseFrame(METADATA, 1, f).correlationId, 7);
        assert.equal(await c.waitClosed(), true);
      }
      const ok = await RawKafka.connect(t, b.kafkaPort);
      ok.send(encodeRequestFrame(METADATA, 1, 8, 'x', { topics: null }));
      assert.equal(decodeResponseFrame(METADATA, 1, (await ok.next())!).correlationId, 8);
    },
  );
}
