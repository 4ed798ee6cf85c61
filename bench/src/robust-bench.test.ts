/**
 * robust-bench over the wire: against an in-test RobustMQ (bin/robust-server), through a proxy
 * that drops deliveries (loss must be reported and fail the run), and against the sink.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Compression } from '@robustmq/journal';
import { startBroker, stopProcess } from './compare.js';
import { MqttParser } from './mqtt-parser.js';
import { PacketType } from './mqtt-packets.js';
import { optionsFrom, runMqttBench, type MqttMode } from './mqtt-bench.js';
import { startSink } from './sink.js';
import { KafkaConnection } from './kafka-client.js';
import { startFloor } from './kafka-vs-journal.js';
import { ApiKey, buildBatch, decodeMetadataResponse, decodeProduceResponse, encodeDeleteTopicsRequest, KafkaWriter } from './kafka-wire.js';
import { ErrorCounts } from './stats.js';
import type { Summary } from './stats.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
let broker: Awaited<ReturnType<typeof startBroker>>;

before(async () => {
  broker = await startBroker('robustmq');
});
after(async () => {
  await stopProcess(broker.child);
  rmSync(broker.dir, { recursive: true, force: true });
});

function bench(args: string[]): Promise<{ code: number; summary: Summary }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [MAIN, ...args, '--json'], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      try {
        resolve({ code, summary: JSON.parse(stdout.trim().split('\n').pop() ?? '') as Summary });
      } catch {
        reject(new Error(`robust-bench ${args.join(' ')} exited ${code}: ${stderr}`));
      }
    });
  });
}

/** A TCP proxy to `port` that drops every `every`-th PUBLISH the broker sends to a client. */
async function lossyProxy(port: number, every: number): Promise<{ port: number; dropped: () => number; close: () => Promise<void> }> {
  let seen = 0;
  let dropped = 0;
  const socks = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port });
    for (const s of [client, upstream]) {
      socks.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => (client.destroy(), upstream.destroy()));
    }
    client.pipe(upstream);
    const parser = new MqttParser({
      onPacket(type, _flags, buf, start, end) {
        if (type === PacketType.Publish && ++seen % every === 0) {
          dropped++;
          return;
        }
        // re-frame the packet: the fixed header precedes `start`
        const len = end - start;
        const head =
          len < 128 ? [len] : len < 16384 ? [(len & 0x7f) | 0x80, len >> 7] : [(len & 0x7f) | 0x80, ((len >> 7) & 0x7f) | 0x80, len >> 14];
        client.write(Buffer.concat([Buffer.from([(type << 4) | _flags, ...head]), buf.subarray(start, end)]));
      },
      onMalformed: () => client.destroy(),
    });
    upstream.on('data', (chunk: Buffer) => parser.push(chunk));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    dropped: () => dropped,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('mqtt pubsub against RobustMQ: every message delivered, exit 0', async () => {
  const { code, summary } = await bench([
    'mqtt',
    'pubsub',
    '-p',
    String(broker.mqttPort),
    '-c',
    '2',
    '--subscribers',
    '2',
    '-n',
    '5000',
    '-t',
    'wire/%i',
    '--filter',
    'wire/+',
  ]);
  assert.equal(summary.lost, 0);
  assert.equal(summary.errorCount, 0, JSON.stringify(summary.errors));
  assert.equal(summary.sent, 10_000);
  assert.equal(summary.expected, 20_000);
  assert.equal(summary.received, 20_000);
  assert.equal(summary.latency?.count, 20_000);
  assert.ok(summary.cpu.userS + summary.cpu.systemS > 0);
  assert.equal(code, 0);
});

test('mqtt pubsub with deliveries dropped on the way: loss reported, exit 1', async (t) => {
  const proxy = await lossyProxy(broker.mqttPort, 50);
  t.after(() => proxy.close());
  const { code, summary } = await bench([
    'mqtt',
    'pubsub',
    '-p',
    String(proxy.port),
    '-c',
    '2',
    '-n',
    '2000',
    '-t',
    'lossy/%i',
    '--drain-timeout',
    '1',
  ]);
  assert.ok(proxy.dropped() > 0);
  assert.equal(summary.lost, proxy.dropped());
  assert.equal(summary.received, 4000 - proxy.dropped());
  assert.equal(code, 1);
});

test('mqtt conn against RobustMQ and bad options', async () => {
  const { code, summary } = await bench(['mqtt', 'conn', '-p', String(broker.mqttPort), '-c', '200', '--concurrency', '50']);
  assert.equal(code, 0);
  assert.equal(summary.connections?.count, 200);
  assert.ok((summary.connections?.rate ?? 0) > 0);
  const bad = await new Promise<number>((r) =>
    execFile(process.execPath, [MAIN, 'mqtt', 'pub', '--qos', '3'], (err) => r(typeof err?.code === 'number' ? err.code : 0)),
  );
  assert.equal(bad, 2);
});

test('against the sink: QoS 1 and 2 all acknowledged, 5.0 too', async (t) => {
  const sink = await startSink();
  t.after(() => sink.close());
  const base = { host: '127.0.0.1', port: sink.port, clients: 2, count: 20_000, json: true, 'no-progress': true };
  const defaults = {
    'mqtt-version': '3.1.1',
    concurrency: 10,
    rate: 0,
    size: 64,
    topic: 'sink/%i',
    retain: false,
    inflight: 500,
    batch: 64,
    keepalive: 60,
    'client-id': 't-%r-%i',
    'drain-timeout': 2,
    'connect-timeout': 5,
    hold: 0,
    subscribers: 0,
  };
  for (const [qos, version] of [
    [1, '3.1.1'],
    [2, '5'],
  ] as const) {
    const s = await runMqttBench(optionsFrom('pub' as MqttMode, { ...defaults, ...base, qos, 'mqtt-version': version }));
    assert.equal(s.errorCount, 0, JSON.stringify(s.errors));
    assert.equal(s.sent, 40_000);
    assert.equal(s.acked, 40_000);
  }
  assert.equal(sink.counts.publishes, 80_000);
  // a rate limit is kept (±20 %)
  const limited = await runMqttBench(optionsFrom('pub', { ...defaults, ...base, qos: 0, count: 2000, rate: 4000 }));
  assert.ok(limited.sendRate > 3000 && limited.sendRate < 4800, `rate ${limited.sendRate}`);
});

test('kafka-vs-journal against RobustMQ: 2 interleaved rounds, median rows, every record fetched back', async () => {
  const out = await new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      [
        MAIN,
        'kafka-vs-journal',
        '-n',
        '4096',
        '--warmup',
        '0',
        '--rounds',
        '2',
        '--acks',
        '0,1',
        '--fetch-passes',
        '1',
        '--floor',
        '--json',
      ].concat(['--port', String(broker.kafkaPort), '--server-pid', String(broker.pid)]),
      { timeout: 120_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`exit ${String(err.code)}: ${stderr}`)) : resolve(stdout)),
    ),
  );
  const { rows, notes } = JSON.parse(out) as {
    rows: { case: string; records: number; ratio: number | null; errors: number }[];
    notes: string[];
  };
  assert.deepEqual(
    rows.map((r) => r.case.replace(/\d+ fetches/, 'n fetches')),
    [
      'journal append, 64 in flight, median of 2',
      'floor produce acks=1 (receive, CRC, write, fsync 1 s, answer), median of 2',
      'kafka produce acks=0, median of 2',
      'kafka produce acks=1, median of 2',
      'kafka fetch pass 1 (n fetches)',
    ],
  );
  assert.equal(rows[1]!.records, 4096, 'the floor server acknowledged every record');
  assert.equal(rows[2]!.records, 4096, 'every record sent with acks=0');
  assert.equal(rows[3]!.records, 4096, 'every record acknowledged');
  assert.ok(rows[3]!.ratio !== null && rows[3]!.ratio > 0);
  assert.equal(rows[4]!.records, 4096, 'every record fetched back');
  assert.ok(rows.every((r) => r.errors === 0));
  assert.match(notes.join('\n'), /round 1: journal [\d,]+ records\/s, floor [\d.]+, acks=0 [\d.]+, acks=1 [\d.]+; round 2:/);
  assert.match(notes.join('\n'), /fresh child process/);
  assert.doesNotMatch(notes.join('\n'), /Not deleted/);
  // each case's topic (acks=0 too: deleted only once the broker stored all it was sent) was deleted once measured (the fetched one after the fetch)
  const c = new KafkaConnection(
    { host: '127.0.0.1', port: broker.kafkaPort!, tls: null, clientId: 'kvj-test', connectTimeoutMs: 5000 },
    new ErrorCounts(),
  );
  await c.connect();
  try {
    const md = decodeMetadataResponse(await c.request(ApiKey.Metadata, new KafkaWriter().int32(-1).done())); // all topics
    assert.deepEqual(
      md.topics.map((t) => t.name).filter((n) => n.startsWith('kvj-')),
      [],
    );
  } finally {
    await c.close();
  }
});

test("the Kafka floor server stores each partition's batches byte-exact and refuses a bad CRC with CORRUPT_MESSAGE; a truncated request closes its connection only", async (t) => {
  const floor = await startFloor();
  t.after(async () => {
    await stopProcess(floor.child);
    rmSync(floor.dir, { recursive: true, force: true });
  });
  const target = { host: '127.0.0.1', port: floor.port, tls: null, clientId: 'floor-test', connectTimeoutMs: 5000 };
  const good = buildBatch(4, 100, Compression.None);
  const bad = Buffer.from(good);
  bad[bad.length - 1]! ^= 0xff; // a record byte: the CRC no longer matches
  const c = new KafkaConnection(target, new ErrorCounts());
  await c.connect();
  try {
    const codes = async (batch: Buffer): Promise<number[]> => {
      const out: number[] = [];
      const body = new KafkaWriter()
        .string(null)
        .int16(1)
        .int32(5000)
        .array(['t'], (w, topic) => w.string(topic).array([1], (pw, p) => pw.int32(p).bytes(batch)))
        .done();
      const r = await c.request(ApiKey.Produce, body);
      decodeProduceResponse(r, (code) => out.push(code));
      return out;
    };
    assert.deepEqual(await codes(good), []);
    assert.deepEqual(await codes(good), []);
    assert.deepEqual(await codes(bad), [2], 'CORRUPT_MESSAGE');
    // a request shorter than its header closes that connection only
    const raw = net.connect(floor.port, '127.0.0.1');
    await once(raw, 'connect');
    raw.write(Buffer.from([0, 0, 0, 6, 0, 0, 0, 3, 0, 0]));
    raw.resume();
    await once(raw, 'close');
    assert.deepEqual(await codes(good), [], 'the other connection is still served');
    assert.deepEqual(readFileSync(join(floor.dir, 't-1')), Buffer.concat([good, good, good]), 'the good batches, the bad one not');
    // DeleteTopics v1 answers each name with error 0 and removes the topic's files
    const r = await c.request(ApiKey.DeleteTopics, encodeDeleteTopicsRequest(['t'], 5000));
    assert.equal(r.int32(), 0, 'throttle time');
    assert.deepEqual(
      r.array((r) => [r.string(), r.int16()]),
      [['t', 0]],
    );
    assert.equal(existsSync(join(floor.dir, 't-1')), false, 'the partition file is gone');
    assert.deepEqual(await codes(good), [], 'a deleted topic is written anew');
    assert.deepEqual(readFileSync(join(floor.dir, 't-1')), good);
  } finally {
    await c.close();
  }
});
