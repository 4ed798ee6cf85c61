import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { createLogger, createMetricsRegistry, type LogLevel } from '@robustmq/common';
import type { MetaClient } from '@robustmq/meta';
import type { JournalClient } from '@robustmq/journal';
import { Broker, BrokerMembership, BROKERS_PREFIX, coordinatorOf, partitionLeaderOf, type BrokerRegistration } from '../src/index.js';
import { API_BY_KEY } from '../src/kafka/messages/index.js';
import { decodeResponseFrame, encodeRequestFrame, type ApiCodec } from '../src/kafka/protocol.js';
import { KafkaError } from '../src/kafka/errors.js';
import { RawKafka, startKafkaBroker } from './kafka-helpers.js';

const log = createLogger({ level: (process.env.TEST_LOG_LEVEL ?? 'silent') as LogLevel, service: 'kafka-cluster-test' });
const api = (key: number): ApiCodec => API_BY_KEY[key as keyof typeof API_BY_KEY] as unknown as ApiCodec;
const METADATA = api(3);
const FIND_COORDINATOR = api(10);
const JOIN_GROUP = api(11);
const HEARTBEAT = api(12);
const OFFSET_COMMIT = api(8);

async function call<T>(c: RawKafka, a: ApiCodec, v: number, body: unknown): Promise<T> {
  c.send(encodeRequestFrame(a, v, 7, 'cluster-test', body));
  const frame = await c.next();
  assert.ok(frame, `${a.name} v${v}: connection closed`);
  return decodeResponseFrame(a, v, frame).body as T;
}

function kafkajs(port: number, clientId = 'cluster-test'): Kafka {
  return new Kafka({ clientId, brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING, retry: { retries: 8, initialRetryTime: 50 } });
}

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

interface ClusterBroker {
  broker: Broker;
  kafkaPort: number;
  membership: BrokerMembership;
  stop(): Promise<void>;
}

/** A broker of a multi-broker cluster in this process: registered in the shared meta, Kafka on port 0. */
async function startClusterBroker(t: TestContext, meta: MetaClient, journal: JournalClient, nodeId: number): Promise<ClusterBroker> {
  let kafkaPort = 0;
  const startedAt = new Date().toISOString();
  const membership = new BrokerMembership({
    meta,
    log,
    ttlMs: 2000,
    self: () => ({ nodeId, name: `broker-${nodeId}`, host: '127.0.0.1', ports: { kafka: kafkaPort }, version: 'test', startedAt }),
  });
  const broker = new Broker({
    host: '127.0.0.1',
    mqttPort: 0,
    kafkaPort: 0,
    log,
    registry: createMetricsRegistry(),
    meta,
    journal,
    auth: { allowAnonymous: true },
    kafka: { groupInitialRebalanceDelayMs: 50 },
    nodeId,
    cluster: membership,
  });
  const ports = await Promise.all(broker.listeners.map((l) => l.listen()));
  kafkaPort = ports[broker.listeners.findIndex((l) => l.name === 'kafka')]!;
  membership.start();
  await broker.ready();
  await broker.kafka!.ready;
  await until(`broker ${nodeId} registered`, () => membership.isRegistered());
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await membership.stop();
    await broker.close(100);
  };
  t.after(stop);
  return { broker, kafkaPort, membership, stop };
}

test('placement: coordinators and partition leaders are stable, spread, and move little when a broker joins', () => {
  const ids = [1, 2, 3];
  const groups = Array.from({ length: 3000 }, (_, i) => `group-${i}`);
  const count = new Map<number, number>();
  for (const g of groups) {
    const c = coordinatorOf(g, ids);
    assert.equal(coordinatorOf(g, [3, 1, 2]), c, 'independent of order');
    count.set(c, (count.get(c) ?? 0) + 1);
  }
  for (const id of ids) assert.ok((count.get(id) ?? 0) > 800, `broker ${id} coordinates ${count.get(id)} of 3000`);
  // a fourth broker takes about a quarter; nothing moves between the old three
  const moved = groups.filter((g) => coordinatorOf(g, [1, 2, 3, 4]) !== coordinatorOf(g, ids));
  assert.ok(moved.every((g) => coordinatorOf(g, [1, 2, 3, 4]) === 4));
  assert.ok(moved.length > 500 && moved.length < 1000, `${moved.length} moved`);
  assert.equal(coordinatorOf('g', []), -1);
  assert.equal(coordinatorOf('g', [7]), 7);
  // six partitions over three brokers: two each
  const leaders = Array.from({ length: 6 }, (_, p) => partitionLeaderOf('orders', p, ids));
  for (const id of ids) assert.equal(leaders.filter((l) => l === id).length, 2);
});

test('membership: registers with a lease, sees the others, re-registers when the lease is lost, revokes on stop', async (t) => {
  const b = await startKafkaBroker(t);
  const meta = b.meta;
  const self = (nodeId: number) => (): BrokerRegistration => ({
    nodeId,
    name: `pod-${nodeId}`,
    host: '127.0.0.1',
    ports: { kafka: 9000 + nodeId },
    version: 'test',
    startedAt: '2026-01-01T00:00:00.000Z',
  });
  const a = new BrokerMembership({ meta, log, ttlMs: 1000, self: self(1) });
  const c = new BrokerMembership({ meta, log, ttlMs: 1000, self: self(2) });
  t.after(() => Promise.all([a.stop(), c.stop()]));
  // before anything is registered, a broker sees itself
  assert.deepEqual(
    a.live().map((x) => x.nodeId),
    [1],
  );
  let changes = 0;
  a.onChange(() => changes++);
  a.start();
  c.start();
  await until('both registered', () => a.isRegistered() && c.isRegistered());
  await until('both see both', () => a.live().length === 2 && c.live().length === 2);
  assert.ok(changes > 0);
  const kv = await meta.get(`${BROKERS_PREFIX}2`);
  assert.ok(kv !== undefined && kv.lease > 0, 'the registration is attached to a lease');
  assert.deepEqual(JSON.parse(kv.value.toString()), self(2)());

  // the lease disappears (expired on a meta that lost it): the key goes, and the broker registers again
  await meta.leaseRevoke(kv.lease);
  await until('broker 2 registered again', async () => {
    const again = await meta.get(`${BROKERS_PREFIX}2`);
    return again !== undefined && again.lease !== kv.lease && c.isRegistered();
  });
  // the key deleted by hand: registered again too
  await meta.delete(`${BROKERS_PREFIX}2`);
  await until('broker 2 re-registered after a delete', async () => (await meta.get(`${BROKERS_PREFIX}2`)) !== undefined, 5000);
  await until('broker 1 sees broker 2 again', () => a.live().length === 2);

  // a graceful stop revokes the lease: gone at once, not after the TTL
  const t0 = Date.now();
  await c.stop();
  assert.equal(await meta.get(`${BROKERS_PREFIX}2`), undefined);
  await until('broker 1 sees broker 2 leave', () => a.live().length === 1, 2000);
  assert.ok(Date.now() - t0 < 1000, 'well before the 1000 ms TTL');
  // a stopping broker leaves its own view when others remain
  assert.deepEqual(
    c.live().map((x) => x.nodeId),
    [1],
  );
});

test('two brokers: Metadata and FindCoordinator agree; group requests at the wrong broker get NOT_COORDINATOR', async (t) => {
  const base = await startKafkaBroker(t);
  // the first broker of the helper is not registered; two cluster brokers share its meta and journal
  const b1 = await startClusterBroker(t, base.meta, base.journal, 1);
  const b2 = await startClusterBroker(t, base.meta, base.journal, 2);
  await until('both see both', () => b1.membership.live().length === 2 && b2.membership.live().length === 2);

  const c1 = await RawKafka.connect(t, b1.kafkaPort);
  const c2 = await RawKafka.connect(t, b2.kafkaPort);
  type Md = { brokers: { nodeId: number; port: number }[]; controllerId: number; topics: { partitions: { leaderId: number }[] }[] };
  await call(c1, api(19), 3, {
    topics: [{ name: 'spread', numPartitions: 6, replicationFactor: 1, assignments: [], configs: [] }],
    timeoutMs: 5000,
    validateOnly: false,
  });
  for (const c of [c1, c2]) {
    const md = await call<Md>(c, METADATA, 9, {
      topics: [{ name: 'spread' }],
      allowAutoTopicCreation: false,
      includeTopicAuthorizedOperations: false,
    });
    assert.deepEqual(
      md.brokers.map((x) => [x.nodeId, x.port]),
      [
        [1, b1.kafkaPort],
        [2, b2.kafkaPort],
      ],
    );
    assert.equal(md.controllerId, 1);
    const leaders = md.topics[0]!.partitions.map((p) => p.leaderId);
    assert.equal(leaders.filter((l) => l === 1).length, 3, `leaders ${leaders}`);
    assert.equal(leaders.filter((l) => l === 2).length, 3);
  }

  // FindCoordinator v2 (one key) and v5 (batched keys): the same answer from both brokers
  const keys = Array.from({ length: 12 }, (_, i) => `grp-${i}`);
  type Fc = { coordinators: { key: string; nodeId: number; port: number; errorCode: number }[] };
  const batch1 = await call<Fc>(c1, FIND_COORDINATOR, 5, { keyType: 0, coordinatorKeys: keys });
  const batch2 = await call<Fc>(c2, FIND_COORDINATOR, 5, { keyType: 0, coordinatorKeys: keys });
  assert.deepEqual(batch1, batch2);
  assert.deepEqual(
    batch1.coordinators.map((x) => x.key),
    keys,
  );
  assert.ok(new Set(batch1.coordinators.map((x) => x.nodeId)).size === 2, 'groups spread over both brokers');
  for (const x of batch1.coordinators) {
    assert.equal(x.errorCode, 0);
    assert.equal(x.nodeId, coordinatorOf(x.key, [1, 2]));
    assert.equal(x.port, x.nodeId === 1 ? b1.kafkaPort : b2.kafkaPort);
    const single = await call<{ nodeId: number; errorCode: number }>(c2, FIND_COORDINATOR, 2, { key: x.key, keyType: 0 });
    assert.equal(single.nodeId, x.nodeId);
  }

  // a group coordinated by broker 2, asked at broker 1: NOT_COORDINATOR for join, heartbeat and commit
  const g = keys.find((k) => coordinatorOf(k, [1, 2]) === 2)!;
  const join = await call<{ errorCode: number }>(c1, JOIN_GROUP, 5, {
    groupId: g,
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: 10_000,
    memberId: '',
    groupInstanceId: null,
    protocolType: 'consumer',
    protocols: [{ name: 'range', metadata: Buffer.alloc(0) }],
  });
  assert.equal(join.errorCode, KafkaError.NOT_COORDINATOR);
  const hb = await call<{ errorCode: number }>(c1, HEARTBEAT, 3, { groupId: g, generationId: 1, memberId: 'm', groupInstanceId: null });
  assert.equal(hb.errorCode, KafkaError.NOT_COORDINATOR);
  const commit = await call<{ topics: { partitions: { errorCode: number }[] }[] }>(c1, OFFSET_COMMIT, 5, {
    groupId: g,
    generationIdOrMemberEpoch: -1,
    memberId: '',
    groupInstanceId: null,
    topics: [{ name: 'spread', partitions: [{ partitionIndex: 0, committedOffset: 1n, committedMetadata: null }] }],
  });
  assert.equal(commit.topics[0]!.partitions[0]!.errorCode, KafkaError.NOT_COORDINATOR);
  // … and at broker 2 the join goes ahead (MEMBER_ID_REQUIRED is the first step of a v4+ join)
  const join2 = await call<{ errorCode: number }>(c2, JOIN_GROUP, 5, {
    groupId: g,
    sessionTimeoutMs: 10_000,
    rebalanceTimeoutMs: 10_000,
    memberId: '',
    groupInstanceId: null,
    protocolType: 'consumer',
    protocols: [{ name: 'range', metadata: Buffer.alloc(0) }],
  });
  assert.equal(join2.errorCode, KafkaError.MEMBER_ID_REQUIRED);
});

function assignmentOf(c: Consumer): Promise<number[]> {
  return new Promise((resolve) => {
    const off = c.on(c.events.GROUP_JOIN, (e) => {
      off();
      resolve([...(e.payload.memberAssignment.orders ?? [])].sort((a, b) => a - b));
    });
  });
}

test('three kafkajs consumers over two brokers: 6 partitions shared, each record once, a leaver rebalances, commits kept, the coordinator moves when its broker leaves', async (t) => {
  const base = await startKafkaBroker(t);
  const b1 = await startClusterBroker(t, base.meta, base.journal, 1);
  const b2 = await startClusterBroker(t, base.meta, base.journal, 2);
  await until('both see both', () => b1.membership.live().length === 2 && b2.membership.live().length === 2);
  // a group coordinated by broker 2, bootstrapped through broker 1
  const groupId = Array.from({ length: 50 }, (_, i) => `orders-group-${i}`).find((g) => coordinatorOf(g, [1, 2]) === 2)!;
  const kafka = kafkajs(b1.kafkaPort);
  const admin = kafka.admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  await admin.createTopics({ topics: [{ topic: 'orders', numPartitions: 6 }] });
  const cluster = await admin.describeCluster();
  assert.deepEqual(cluster.brokers.map((x) => x.nodeId).sort(), [1, 2]);
  const producer = kafka.producer();
  await producer.connect();
  t.after(() => producer.disconnect());
  const send = (from: number, n: number) =>
    producer.send({ topic: 'orders', messages: Array.from({ length: n }, (_, i) => ({ key: `k${from + i}`, value: `v${from + i}` })) });
  await send(0, 60);

  const seen = new Map<string, number>();
  const byConsumer: string[][] = [[], [], []];
  const opts = { groupId, maxWaitTimeInMs: 100, heartbeatInterval: 200, sessionTimeout: 6000, rebalanceTimeout: 3000 };
  const consumers = [0, 1, 2].map(() => kafka.consumer(opts));
  t.after(() => Promise.all(consumers.map((c) => c.disconnect())));
  const joined = consumers.map((c) => assignmentOf(c));
  for (const [i, c] of consumers.entries()) {
    await c.connect();
    await c.subscribe({ topic: 'orders', fromBeginning: true });
    void c.run({
      eachMessage: async ({ message }) => {
        const v = message.value?.toString() ?? '';
        seen.set(v, (seen.get(v) ?? 0) + 1);
        byConsumer[i]!.push(v);
      },
    });
  }
  await until('60 records consumed', () => seen.size >= 60, 20_000);
  // after the last join every member holds two partitions
  const stable = async (): Promise<boolean> => {
    const d = await admin.describeGroups([groupId]);
    const g = d.groups[0]!;
    return g.state === 'Stable' && g.members.length === 3;
  };
  await until('group stable with three members', stable, 20_000);
  await Promise.all(joined);
  await sleep(300);
  assert.equal(seen.size, 60);
  assert.ok(
    [...seen.values()].every((n) => n === 1),
    'each record consumed exactly once',
  );
  const d = await admin.describeGroups([groupId]);
  const owned = d.groups[0]!.members.map((m) => m.memberAssignment.length > 0);
  assert.equal(owned.length, 3);

  // one member leaves: the other two take its partitions; committed records are not read again
  const rest = consumers.slice(0, 2);
  const regained = rest.map((c) => assignmentOf(c));
  await consumers[2]!.disconnect();
  const parts = (await Promise.all(regained)).flat().sort((a, b) => a - b);
  assert.deepEqual(parts, [0, 1, 2, 3, 4, 5], 'all six partitions are assigned to the remaining two');
  await send(60, 30);
  await until('90 records consumed', () => seen.size >= 90, 20_000);
  await sleep(300);
  assert.ok(
    [...seen.values()].every((n) => n === 1),
    'no record consumed twice',
  );
  await until('offsets committed', async () => {
    const o = await admin.fetchOffsets({ groupId, topics: ['orders'] });
    return o[0]!.partitions.reduce((s, p) => s + Number(p.offset), 0) === 90;
  });

  // the coordinator's broker leaves: its group moves to broker 1 and the consumers go on there
  await b2.stop();
  await until('broker 1 alone', () => b1.membership.live().length === 1);
  // (the admin and producer above cached broker 2 as a leader and coordinator: new ones start clean)
  const admin2 = kafka.admin();
  await admin2.connect();
  t.after(() => admin2.disconnect());
  const producer2 = kafka.producer();
  await producer2.connect();
  t.after(() => producer2.disconnect());
  await producer2.send({ topic: 'orders', messages: Array.from({ length: 12 }, (_, i) => ({ key: `k${90 + i}`, value: `v${90 + i}` })) });
  await until('102 records consumed after the coordinator moved', () => seen.size >= 102, 30_000);
  const atBroker1 = async (): Promise<boolean> => {
    const g = (await admin2.describeGroups([groupId])).groups[0]!;
    return g.state === 'Stable' && g.members.length === 2;
  };
  await until('the group formed again at broker 1', atBroker1, 30_000);
  assert.equal(b1.broker.kafka!.groups.describe(groupId)?.members.length, 2);
  await until('commits reach the new coordinator', async () => {
    const o = await admin2.fetchOffsets({ groupId, topics: ['orders'] });
    return o[0]!.partitions.reduce((s, p) => s + Number(p.offset), 0) === 102;
  });
  // everything up to v89 was committed before the move: read once; later records at least once
  // (commits that went to the leaving coordinator may have been lost)
  for (let i = 0; i < 90; i++) assert.equal(seen.get(`v${i}`), 1, `v${i} consumed once`);
  for (let i = 90; i < 102; i++) assert.ok((seen.get(`v${i}`) ?? 0) >= 1, `v${i} consumed`);
  // Clients leave while broker 1 still runs (the after-hooks stop the brokers first, and a
  // kafkajs consumer leaving a dead coordinator retries for a long time).
  await Promise.race([
    Promise.allSettled([
      ...consumers.map((c) => c.disconnect()),
      producer.disconnect(),
      producer2.disconnect(),
      admin.disconnect(),
      admin2.disconnect(),
    ]),
    new Promise((r) => setTimeout(r, 10_000).unref()),
  ]);
});
