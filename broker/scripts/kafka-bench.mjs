#!/usr/bin/env node
/**
 * Kafka produce/consume throughput against a running broker, beside the journal's own append
 * rate measured in this process on the same batches (a raw pipelined client: no client library
 * in the way). Build first (`npx tsc -b`), then:
 *
 *   node broker/scripts/kafka-bench.mjs <host:port> [records=200000] [recordBytes=1024] [batchBytes=16384] [acks=1] [inflight=16]
 *
 * It encodes every request with the generated codecs and decodes every fetched record, so at
 * these sizes it measures itself more than the broker: use `robust-bench kafka-vs-journal`
 * (bench/src/kafka-vs-journal.ts), which starts the server, pre-builds its frames and reports
 * produce ÷ journal and the server's CPU per request in one table.
 */
import { connect } from 'node:net';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const dist = (p) => join(here, '../dist/src/kafka', p);
const { API_BY_KEY } = await import(dist('messages/index.js'));
const { encodeRequestFrame, decodeResponseFrame } = await import(dist('protocol.js'));
const { Framer } = await import(dist('framing.js'));
const { encodeRecordBatch, Journal } = await import('@robustmq/journal');
const { createLogger, createMetricsRegistry } = await import('@robustmq/common');

const [hostPort, recordsArg = '200000', recordBytesArg = '1024', batchBytesArg = '16384', acksArg = '1', inflightArg = '16'] =
  process.argv.slice(2);
const [host, port] = hostPort.split(':');
const records = Number(recordsArg);
const recordBytes = Number(recordBytesArg);
const perBatch = Math.max(1, Math.floor(Number(batchBytesArg) / recordBytes));
const acks = Number(acksArg);
const inflight = Number(inflightArg);
const topic = `bench-${Date.now()}`;
const batches = Math.ceil(records / perBatch);
const value = Buffer.alloc(recordBytes, 0x61);
const template = () => encodeRecordBatch(Array.from({ length: perBatch }, () => ({ value })));
const mb = (bytes, ms) => (bytes / 1024 / 1024 / (ms / 1000)).toFixed(1);

// --- journal alone (same batch shape, segment engine, this process)
{
  const dir = await mkdtemp(join(tmpdir(), 'kbench-'));
  const j = new Journal({ dataDir: dir, logger: createLogger({ level: 'silent', service: 'bench' }), registry: createMetricsRegistry() });
  await j.open();
  await j.createShard('b');
  const t0 = performance.now();
  let pending = [];
  for (let i = 0; i < batches; i++) {
    pending.push(j.append('b', template()));
    if (pending.length >= inflight) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  const ms = performance.now() - t0;
  console.log(
    `journal append: ${records} records in ${ms.toFixed(0)} ms = ${((records / ms) * 1000).toFixed(0)} records/s, ${mb(batches * perBatch * recordBytes, ms)} MB/s`,
  );
  await j.close();
  await rm(dir, { recursive: true, force: true });
}

function client() {
  const s = connect(Number(port), host);
  s.setNoDelay(true);
  const framer = new Framer(1 << 30);
  const waiting = [];
  s.on('data', (c) => {
    for (const f of framer.push(c)) waiting.shift()?.(f);
  });
  return {
    s,
    ready: once(s, 'connect'),
    request(api, v, corr, body, expectResponse = true) {
      const frame = encodeRequestFrame(api, v, corr, 'bench', body);
      const p = expectResponse ? new Promise((r) => waiting.push(r)) : Promise.resolve(undefined);
      s.write(frame);
      return p;
    },
  };
}

const PRODUCE = API_BY_KEY[0];
const FETCH = API_BY_KEY[1];
const METADATA = API_BY_KEY[3];
const c = client();
await c.ready;
await c.request(METADATA, 4, 0, { topics: [{ name: topic }], allowAutoTopicCreation: true });

// --- produce: `inflight` pipelined requests, one batch each
{
  const body = (records) => ({
    transactionalId: null,
    acks,
    timeoutMs: 30000,
    topicData: [{ name: topic, partitionData: [{ index: 0, records }] }],
  });
  const t0 = performance.now();
  let corr = 1;
  let window = [];
  for (let i = 0; i < batches; i++) {
    const p = c.request(PRODUCE, 7, corr++, body(template()), acks !== 0);
    window.push(p);
    if (window.length >= inflight) {
      const f = await window.shift();
      if (f) {
        const r = decodeResponseFrame(PRODUCE, 7, f).body;
        const e = r.responses[0].partitionResponses[0].errorCode;
        if (e !== 0) throw new Error(`produce error ${e}`);
      }
    }
  }
  await Promise.all(window);
  if (acks === 0) await c.request(METADATA, 4, corr, { topics: [{ name: topic }] });
  const ms = performance.now() - t0;
  console.log(
    `kafka produce (acks=${acks}, ${perBatch}×${recordBytes} B batches, ${inflight} in flight): ${records} records in ${ms.toFixed(0)} ms = ${((records / ms) * 1000).toFixed(0)} records/s, ${mb(batches * perBatch * recordBytes, ms)} MB/s`,
  );
}

// --- consume: sequential fetches of up to 8 MiB from the start
{
  const t0 = performance.now();
  let offset = 0n;
  let bytes = 0;
  let corr = 100000;
  for (;;) {
    const f = await c.request(FETCH, 11, corr++, {
      replicaId: -1,
      maxWaitMs: 0,
      minBytes: 1,
      maxBytes: 8 << 20,
      isolationLevel: 0,
      sessionId: 0,
      sessionEpoch: -1,
      topics: [{ topic, partitions: [{ partition: 0, fetchOffset: offset, partitionMaxBytes: 8 << 20 }] }],
      forgottenTopicsData: [],
      rackId: '',
    });
    const p = decodeResponseFrame(FETCH, 11, f).body.responses[0].partitions[0];
    if (p.records.length === 0) break;
    bytes += p.records.length;
    // next offset: after the last whole batch returned
    let pos = 0;
    let last = offset;
    while (pos + 61 <= p.records.length) {
      const size = p.records.readInt32BE(pos + 8) + 12;
      if (pos + size > p.records.length) break;
      last = p.records.readBigInt64BE(pos) + BigInt(p.records.readInt32BE(pos + 23)) + 1n;
      pos += size;
    }
    offset = last;
    if (offset >= p.highWatermark) break;
  }
  const ms = performance.now() - t0;
  console.log(
    `kafka fetch: ${offset} records, ${(bytes / 1024 / 1024).toFixed(1)} MB in ${ms.toFixed(0)} ms = ${((Number(offset) / ms) * 1000).toFixed(0)} records/s, ${mb(bytes, ms)} MB/s`,
  );
}
c.s.destroy();
