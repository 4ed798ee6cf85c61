import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { adminHeaders, adminTokenFile, runCtl, startServer, waitReady, ANY_PORTS } from '../src/index.js';

const anyPorts = ANY_PORTS;
const env = { ROBUSTMQ_AUTH_ALLOW_ANONYMOUS: 'true', ROBUSTMQ_KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '100' };

interface Registration {
  nodeId: number;
  name: string;
  host: string;
  ports: Record<string, number>;
  version: string;
  startedAt: string;
}

async function brokersAt(httpPort: number, dataDir: string): Promise<Registration[]> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/api/v1/brokers`, { headers: adminHeaders(dataDir) });
  assert.equal(res.status, 200);
  return ((await res.json()) as { brokers: Registration[] }).brokers;
}

/** FindCoordinator v2 for a group over a raw socket: [nodeId, port]. */
async function findCoordinator(port: number, groupId: string): Promise<[number, number]> {
  const sock = connect(port, '127.0.0.1');
  await once(sock, 'connect');
  const str = (s: string): Buffer => {
    const b = Buffer.alloc(2 + Buffer.byteLength(s));
    b.writeInt16BE(Buffer.byteLength(s), 0);
    b.write(s, 2);
    return b;
  };
  const head = Buffer.alloc(8);
  head.writeInt16BE(10, 0); // FindCoordinator
  head.writeInt16BE(2, 2); // v2
  head.writeInt32BE(42, 4); // correlation id
  const body = Buffer.concat([head, str('e2e'), str(groupId), Buffer.from([0])]); // key type 0 = group
  const size = Buffer.alloc(4);
  size.writeInt32BE(body.length, 0);
  sock.write(Buffer.concat([size, body]));
  let buf = Buffer.alloc(0);
  for await (const chunk of sock as AsyncIterable<Buffer>) {
    buf = Buffer.concat([buf, chunk]);
    if (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) break;
  }
  sock.destroy();
  // size, correlation id, throttle, error code, error message (nullable string), node id, host, port
  let o = 4;
  assert.equal(buf.readInt32BE(o), 42);
  o += 8;
  assert.equal(buf.readInt16BE(o), 0, 'no error');
  o += 2;
  const msgLen = buf.readInt16BE(o);
  o += 2 + Math.max(0, msgLen);
  const nodeId = buf.readInt32BE(o);
  o += 4;
  o += 2 + buf.readInt16BE(o);
  return [nodeId, buf.readInt32BE(o)];
}

function kafkaAt(port: number): Kafka {
  return new Kafka({
    clientId: 'e2e-cluster',
    brokers: [`127.0.0.1:${port}`],
    logLevel: logLevel.NOTHING,
    retry: { retries: 8, initialRetryTime: 100 },
  });
}

async function consume(consumer: Consumer, n: number, timeoutMs = 20_000): Promise<string[]> {
  const got: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${got.length}/${n} records`)), timeoutMs);
    void consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value?.toString() ?? '');
        if (got.length >= n) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  return got;
}

test(
  'two robust-server processes on one meta and journal: both registered, one Kafka cluster, groups through either, a stopped broker leaves at once',
  { timeout: 60_000 },
  async (t) => {
    const dir1 = mkdtempSync(join(tmpdir(), 'robustmq-cluster-1-'));
    const dir2 = mkdtempSync(join(tmpdir(), 'robustmq-cluster-2-'));
    t.after(() => rmSync(dir1, { recursive: true, force: true }));
    t.after(() => rmSync(dir2, { recursive: true, force: true }));
    const one = await startServer(['start', '--data-dir', dir1, ...anyPorts], { env });
    t.after(() => one.proc.kill('SIGKILL'));
    await waitReady(one.ports.http as number);
    const grpc = `127.0.0.1:${one.ports.grpc}`;
    const two = await startServer(
      [
        'start',
        '--node-id',
        '2',
        '--roles',
        'broker',
        '--data-dir',
        dir2,
        '--meta-endpoints',
        grpc,
        '--journal-endpoint',
        grpc,
        ...anyPorts,
      ],
      { env: { ...env, POD_NAME: 'robustmq-broker-abc12' } },
    );
    t.after(() => two.proc.kill('SIGKILL'));
    // ready only once registered in meta
    const ready = await waitReady(two.ports.http as number);
    assert.deepEqual(ready.roles, { broker: 'ready' });

    // both registrations, from the admin API of either node and from robust-ctl
    for (const [port, dir] of [
      [one.ports.http as number, dir1],
      [two.ports.http as number, dir2],
    ] as const) {
      const list = await brokersAt(port, dir);
      assert.deepEqual(
        list.map((b) => b.nodeId),
        [1, 2],
      );
      const b2 = list[1]!;
      assert.equal(b2.name, 'robustmq-broker-abc12', 'POD_NAME names the registration');
      assert.equal(b2.host, '127.0.0.1');
      assert.equal(b2.ports.kafka, two.ports.kafka);
      assert.equal(b2.ports.mqtt, two.ports.mqtt);
      assert.equal(b2.ports.http, two.ports.http);
      assert.equal(b2.ports.kafkaTls, undefined, 'only bound listeners');
      assert.match(b2.version, /^\d+\.\d+\.\d+/);
      assert.ok(!Number.isNaN(Date.parse(b2.startedAt)));
      assert.equal(list[0]!.ports.kafka, one.ports.kafka);
    }
    const table = await runCtl(['--server', `127.0.0.1:${two.ports.http}`, '--token-file', adminTokenFile(dir2), 'brokers']);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^ID\s+NAME\s+HOST\s+PORTS\s+VERSION\s+STARTED/);
    assert.match(table.stdout, new RegExp(`\\n2\\s+robustmq-broker-abc12\\s+127\\.0\\.0\\.1\\s+\\S*kafka=${two.ports.kafka}`));
    const json = await runCtl(['--server', `127.0.0.1:${one.ports.http}`, '--token-file', adminTokenFile(dir1), 'brokers', '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(
      (JSON.parse(json.stdout) as { brokers: Registration[] }).brokers.map((b) => b.nodeId),
      [1, 2],
    );

    // one Kafka cluster: both brokers in Metadata/DescribeCluster of either
    const k1 = kafkaAt(one.ports.kafka as number);
    const k2 = kafkaAt(two.ports.kafka as number);
    const admin1 = k1.admin();
    const admin2 = k2.admin();
    await admin1.connect();
    await admin2.connect();
    for (const a of [admin1, admin2]) {
      const c = await a.describeCluster();
      assert.deepEqual(c.brokers.map((b) => [b.nodeId, b.port]).sort(), [
        [1, one.ports.kafka],
        [2, two.ports.kafka],
      ]);
    }
    await admin1.createTopics({ topics: [{ topic: 'events', numPartitions: 4 }] });
    const md = await admin2.fetchTopicMetadata({ topics: ['events'] });
    assert.deepEqual([...new Set(md.topics[0]!.partitions.map((p) => p.leader))].sort(), [1, 2], 'leaders on both brokers');

    // FindCoordinator: the same answer from both, and groups spread over both
    const groups = Array.from({ length: 8 }, (_, i) => `e2e-group-${i}`);
    const owners = new Set<number>();
    for (const g of groups) {
      const a = await findCoordinator(one.ports.kafka as number, g);
      const b = await findCoordinator(two.ports.kafka as number, g);
      assert.deepEqual(a, b, `coordinator of ${g}`);
      assert.equal(a[1], a[0] === 1 ? one.ports.kafka : two.ports.kafka);
      owners.add(a[0]);
    }
    assert.deepEqual([...owners].sort(), [1, 2]);

    // a group works through either broker
    const producer = k2.producer();
    await producer.connect();
    await producer.send({ topic: 'events', messages: Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: `e${i}` })) });
    await producer.disconnect();
    for (const [k, name] of [
      [k1, 'via-one'],
      [k2, 'via-two'],
    ] as const) {
      const c = k.consumer({ groupId: name, maxWaitTimeInMs: 100 });
      await c.connect();
      await c.subscribe({ topic: 'events', fromBeginning: true });
      const got = await consume(c, 20);
      assert.deepEqual([...new Set(got)].sort(), Array.from({ length: 20 }, (_, i) => `e${i}`).sort());
      await c.disconnect();
      const offsets = await admin1.fetchOffsets({ groupId: name, topics: ['events'] });
      assert.equal(
        offsets[0]!.partitions.reduce((s, p) => s + Number(p.offset), 0),
        20,
        `${name} committed`,
      );
    }
    await admin2.disconnect();

    // SIGTERM of the second broker: its registration is revoked, not left to expire
    const t0 = Date.now();
    assert.equal(await two.stop('SIGTERM'), 0);
    const after = await brokersAt(one.ports.http as number, dir1);
    assert.deepEqual(
      after.map((b) => b.nodeId),
      [1],
    );
    assert.ok(Date.now() - t0 < 5000, 'gone well before the 10 s lease TTL');
    const c = await admin1.describeCluster();
    assert.deepEqual(
      c.brokers.map((b) => b.nodeId),
      [1],
    );
    await admin1.disconnect();
    assert.equal(await one.stop(), 0);
  },
);
