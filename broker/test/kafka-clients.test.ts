import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, CompressionTypes, type Consumer } from 'kafkajs';
import { startKafkaBroker } from './kafka-helpers.js';
import { collect, connectClient } from './helpers.js';

function kafkajs(port: number, clientId = 'kafka-test'): Kafka {
  return new Kafka({ clientId, brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING, retry: { retries: 3, initialRetryTime: 50 } });
}

test('kafkajs: produce and consume keys, values (binary, empty, null) and headers in order', async (t) => {
  const b = await startKafkaBroker(t);
  const kafka = kafkajs(b.kafkaPort);
  const producer = kafka.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const bin = Buffer.from([0, 1, 2, 255, 254]);
  await producer.send({
    topic: 'round-trip',
    acks: -1,
    messages: [
      { key: 'k1', value: 'v1', headers: { a: '1', b: '2' } },
      { key: bin, value: bin },
      { key: null, value: '' },
      { key: 'k4', value: null },
    ],
  });
  await producer.send({ topic: 'round-trip', compression: CompressionTypes.GZIP, messages: [{ key: 'gz', value: 'zipped' }] });

  const consumer = kafka.consumer({ groupId: 'g-round-trip', maxWaitTimeInMs: 200 });
  await consumer.connect();
  await consumer.subscribe({ topic: 'round-trip', fromBeginning: true });
  const got: { key: Buffer | null; value: Buffer | null; headers: Record<string, unknown>; offset: string }[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${got.length} messages`)), 15000);
    void consumer.run({
      eachMessage: async ({ message }) => {
        got.push({ key: message.key, value: message.value, headers: message.headers ?? {}, offset: message.offset });
        if (got.length === 5) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  assert.deepEqual(
    got.map((m) => m.offset),
    ['0', '1', '2', '3', '4'],
  );
  assert.equal(got[0]!.key!.toString(), 'k1');
  assert.equal(got[0]!.value!.toString(), 'v1');
  assert.deepEqual(Object.keys(got[0]!.headers), ['a', 'b']);
  assert.deepEqual(got[1]!.key, bin);
  assert.deepEqual(got[1]!.value, bin);
  assert.equal(got[2]!.key, null);
  assert.equal(got[2]!.value!.length, 0);
  assert.equal(got[3]!.value, null);
  assert.equal(got[4]!.value!.toString(), 'zipped');
  // clients end before the broker does (t.after hooks run after the body, broker first)
  await consumer.disconnect();
  await producer.disconnect();
});

async function collectN(
  consumer: Consumer,
  n: number,
  timeoutMs = 15000,
): Promise<{ topic: string; partition: number; key: string; value: string }[]> {
  const got: { topic: string; partition: number; key: string; value: string }[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${got.length}/${n} messages`)), timeoutMs);
    void consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        got.push({ topic, partition, key: message.key?.toString() ?? '', value: message.value?.toString() ?? '' });
        if (got.length >= n) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  return got;
}

function assignments(c: Consumer): Promise<Record<string, number[]>> {
  return new Promise((resolve) => {
    const off = c.on(c.events.GROUP_JOIN, (e) => {
      off();
      resolve(e.payload.memberAssignment);
    });
  });
}

test('kafkajs consumer group: two members share partitions, rebalance on join and leave; commits survive a server restart', async (t) => {
  const b = await startKafkaBroker(t);
  const kafka = kafkajs(b.kafkaPort);
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'grp', numPartitions: 2 }] });
  await admin.disconnect();
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic: 'grp',
    messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: i % 2 })),
  });
  await producer.disconnect();

  const opts = { groupId: 'g2', maxWaitTimeInMs: 100, heartbeatInterval: 300, sessionTimeout: 6000 };
  const a = kafka.consumer(opts);
  await a.connect();
  await a.subscribe({ topic: 'grp', fromBeginning: true });
  const aJoined = assignments(a);
  const firstTen = collectN(a, 10);
  assert.deepEqual((await aJoined).grp?.sort(), [0, 1]);
  assert.equal((await firstTen).length, 10);
  await a.commitOffsets([]); // autoCommit flushes on rebalance/stop as well

  const bc = kafka.consumer(opts);
  await bc.connect();
  await bc.subscribe({ topic: 'grp', fromBeginning: true });
  const aRe = assignments(a);
  const bJoined = assignments(bc);
  void bc.run({ eachMessage: async () => undefined });
  const [ra, rb] = await Promise.all([aRe, bJoined]);
  assert.equal(ra.grp?.length, 1);
  assert.equal(rb.grp?.length, 1);
  assert.notDeepEqual(ra.grp, rb.grp);

  // b leaves: a gets both partitions back
  const aBack = assignments(a);
  await bc.disconnect();
  assert.deepEqual((await aBack).grp?.sort(), [0, 1]);
  await a.disconnect();

  const desc = await b.broker.kafka!.groups.describe('g2');
  assert.equal(desc?.members.length, 0);

  // restart the server on the same data: topics, records and committed offsets are kept
  await b.stop();
  const b2 = await startKafkaBroker(t, { dir: b.dir });
  const kafka2 = kafkajs(b2.kafkaPort);
  const p2 = kafka2.producer();
  await p2.connect();
  await p2.send({ topic: 'grp', messages: [{ key: 'after', value: 'restart', partition: 0 }] });
  await p2.disconnect();
  const c2 = kafka2.consumer(opts);
  await c2.connect();
  await c2.subscribe({ topic: 'grp', fromBeginning: true });
  const after = await collectN(c2, 1);
  assert.deepEqual(
    after.map((m) => m.key),
    ['after'],
  );
  await c2.disconnect();
  const r = await b2.journal.latestOffset('kafka/grp/0');
  assert.equal(r, 6n);
});

function run(cmd: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 30000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    p.stdin.end(input ?? '');
  });
}

const hasKcat = existsSync('/usr/bin/kcat');
const hasPython = spawnSync('/usr/bin/python3', ['-c', 'import kafka'], { stdio: 'ignore' }).status === 0;

test(
  'kcat (librdkafka): -L, -P with every compression codec, -C back to kafkajs and kcat',
  { skip: !hasKcat && 'kcat not installed' },
  async (t) => {
    const b = await startKafkaBroker(t);
    const bootstrap = `127.0.0.1:${b.kafkaPort}`;
    for (const codec of ['none', 'gzip', 'snappy', 'lz4', 'zstd']) {
      const r = await run(
        'kcat',
        ['-b', bootstrap, '-t', 'kc', '-P', '-K:', '-z', codec],
        `${codec}-1:hello ${codec}\n${codec}-2:world ${codec}\n`,
      );
      assert.equal(r.code, 0, r.stderr);
    }
    const c = await run('kcat', ['-b', bootstrap, '-t', 'kc', '-C', '-e', '-f', '%k=%s\\n']);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(c.stdout.trim().split('\n').length, 10);
    assert.match(c.stdout, /zstd-2=world zstd/);
    const l = await run('kcat', ['-b', bootstrap, '-L']);
    assert.match(l.stdout, /topic "kc" with 1 partitions/);
    assert.match(l.stdout, new RegExp(`broker 1 at 127.0.0.1:${b.kafkaPort}`));
    // kafkajs reads what librdkafka wrote (gzip and none; kafkajs decodes no other codec itself)
    const consumer = kafkajs(b.kafkaPort).consumer({ groupId: 'kc-js', maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'kc', fromBeginning: true });
    const got = await collectN(consumer, 4);
    assert.deepEqual(
      got.map((m) => m.key),
      ['none-1', 'none-2', 'gzip-1', 'gzip-2'],
    );
    await consumer.disconnect();
  },
);

test(
  'kafka-python 2.0.2 and confluent-kafka (idempotent, lz4) round trip with groups and commits',
  { skip: !hasPython && 'python3-kafka not installed' },
  async (t) => {
    const b = await startKafkaBroker(t);
    const script = new URL('./fixtures/kafka-python-client.py', import.meta.url).pathname.replace('/dist/test/', '/test/');
    const r = await run('/usr/bin/python3', [script, `127.0.0.1:${b.kafkaPort}`, 'py', 'pyg']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { keys: string[]; headers: string[][]; confluent_consumed?: string[] };
    assert.deepEqual(out.keys.slice(0, 3), ['py-0', 'py-1', 'py-2']);
    assert.deepEqual(out.headers, [
      ['h', '1'],
      ['h', '2'],
    ]);
    if (out.confluent_consumed !== undefined)
      assert.deepEqual(out.confluent_consumed.sort(), ['ck-0', 'ck-1', 'ck-2', 'py-0', 'py-1', 'py-2']);
    // kafka-python committed through OffsetCommit v2: the offsets are in meta
    const offsets = await b.broker.kafka!.groups.describe('pyg');
    assert.ok(offsets === undefined || offsets.members.length === 0);
  },
);

test('MQTT in / Kafka out and Kafka in / MQTT out over one journal', async (t) => {
  const b = await startKafkaBroker(t, { kafka: { bindings: 'sensors:in:sensors/#=>sensors;cmd:out:commands=>cmd/' } });
  const pub = await connectClient(t, `mqtt://127.0.0.1:${b.mqttPort}`, { protocolVersion: 5 });
  await pub.publishAsync('sensors/a', Buffer.from([1, 2, 3]), {
    qos: 1,
    properties: { userProperties: { unit: 'C', site: 'x' }, contentType: 'application/octet-stream' },
  });
  await pub.publishAsync('sensors/b/c', 'twenty', { qos: 1 });
  // acknowledged means stored
  assert.equal(await b.journal.latestOffset('kafka/sensors/0'), 2n);
  const kafka = kafkajs(b.kafkaPort);
  const consumer = kafka.consumer({ groupId: 'bridge', maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic: 'sensors', fromBeginning: true });
  const msgs: { key: string; value: Buffer; headers: Record<string, string> }[] = [];
  await new Promise<void>((resolve) => {
    void consumer.run({
      eachMessage: async ({ message }) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
        msgs.push({ key: message.key!.toString(), value: message.value!, headers });
        if (msgs.length === 2) resolve();
      },
    });
  });
  assert.deepEqual(msgs[0], {
    key: 'sensors/a',
    value: Buffer.from([1, 2, 3]),
    headers: { unit: 'C', site: 'x', 'content-type': 'application/octet-stream' },
  });
  assert.equal(msgs[1]!.key, 'sensors/b/c');

  // Kafka → MQTT: records produced to `commands` reach subscribers of cmd/<key>, whatever the codec
  const sub = await connectClient(t, `mqtt://127.0.0.1:${b.mqttPort}`, { protocolVersion: 5 });
  await sub.subscribeAsync('cmd/#', { qos: 1 });
  const received = collect(sub);
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic: 'commands',
    messages: [{ key: 'dev1', value: 'on', headers: { by: 'ops', 'content-type': 'text/plain' } }],
  });
  await producer.send({ topic: 'commands', compression: CompressionTypes.GZIP, messages: [{ key: 'dev2', value: 'off' }] });
  if (hasKcat) {
    for (const codec of ['snappy', 'lz4', 'zstd']) {
      const r = await run(
        'kcat',
        ['-b', `127.0.0.1:${b.kafkaPort}`, '-t', 'commands', '-P', '-K:', '-z', codec],
        `${codec}:x${'y'.repeat(200)}\n`,
      );
      assert.equal(r.code, 0, r.stderr);
    }
  }
  const want = hasKcat ? 5 : 2;
  for (let i = 0; i < 100 && received.length < want; i++) await sleep(50);
  assert.deepEqual(
    received.map((m) => m.topic),
    ['cmd/dev1', 'cmd/dev2', ...(hasKcat ? ['cmd/snappy', 'cmd/lz4', 'cmd/zstd'] : [])],
  );
  assert.equal(received[0]!.payload.toString(), 'on');
  assert.deepEqual({ ...received[0]!.packet.properties?.userProperties }, { by: 'ops' });
  assert.equal(
    received[0]!.packet.properties?.contentType,
    'text/plain',
    'the content-type header is the MQTT Content Type, as on the way in',
  );
  assert.equal(received[1]!.packet.properties?.contentType, undefined);
  if (hasKcat) assert.equal(received[4]!.payload.toString(), `x${'y'.repeat(200)}`);
  await consumer.disconnect();
  await producer.disconnect();
});

const hasConfluent = spawnSync('/usr/bin/python3', ['-c', 'import confluent_kafka'], { stdio: 'ignore' }).status === 0;

test('transactional producers fail at once with a non-retriable error (kafkajs, confluent-kafka), never a hang', async (t) => {
  const b = await startKafkaBroker(t);
  const producer = kafkajs(b.kafkaPort).producer({ transactionalId: 'tx-1', idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const t0 = Date.now();
  await assert.rejects(
    () => producer.transaction(),
    (e: Error & { retriable?: boolean }) => {
      assert.equal(e.retriable, false);
      return true;
    },
  );
  // before, FindCoordinator answered COORDINATOR_NOT_AVAILABLE and kafkajs retried for ~10 s
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
  await producer.disconnect();
  // the plain idempotent producer on the same connection settings still works
  const idem = kafkajs(b.kafkaPort).producer({ idempotent: true, maxInFlightRequests: 1 });
  await idem.connect();
  await idem.send({ topic: 'tx-plain', messages: [{ value: 'a' }] });
  await idem.disconnect();
  if (hasConfluent) {
    const py = [
      'import sys, time',
      'from confluent_kafka import Producer, KafkaException',
      "p = Producer({'bootstrap.servers': sys.argv[1], 'transactional.id': 'tx-py', 'log_level': 0})",
      't0 = time.time()',
      'try:',
      '    p.init_transactions(20)',
      "    print('ok')",
      'except KafkaException as e:',
      '    err = e.args[0]',
      '    print(err.name(), err.retriable(), round(time.time() - t0, 1), err.str())',
    ].join('\n');
    const r = await run('/usr/bin/python3', ['-c', py, `127.0.0.1:${b.kafkaPort}`]);
    assert.equal(r.code, 0, r.stderr);
    const [name, retriable, secs] = r.stdout.trim().split(' ');
    assert.equal(name, 'TRANSACTIONAL_ID_AUTHORIZATION_FAILED', r.stdout);
    assert.equal(retriable, 'False');
    assert.ok(Number(secs) < 5, r.stdout);
    assert.match(r.stdout, /transactions are not supported/);
  }
});
