import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { startServer, waitReady, type RunningServer, ANY_PORTS } from '../src/index.js';

const anyPorts = ANY_PORTS;
// a short first-rebalance delay keeps group joins fast
const env = { ROBUSTMQ_AUTH_ALLOW_ANONYMOUS: 'true', ROBUSTMQ_KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '100' };

function kafkaOf(srv: RunningServer): Kafka {
  return new Kafka({
    clientId: 'e2e-restart',
    brokers: [`127.0.0.1:${srv.ports.kafka}`],
    logLevel: logLevel.NOTHING,
    retry: { retries: 8, initialRetryTime: 100 },
  });
}

interface Rec {
  partition: number;
  offset: string;
  key: string;
  value: string;
}

/** Runs `consumer` until it has `n` records (or fails after `timeoutMs`). */
async function consume(consumer: Consumer, n: number, timeoutMs = 20_000): Promise<Rec[]> {
  const got: Rec[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out with ${got.length}/${n} records`)), timeoutMs);
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, offset: message.offset, key: message.key?.toString() ?? '', value: message.value?.toString() ?? '' });
        if (got.length >= n) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  return got;
}

const sortRecs = (r: Rec[]): Rec[] => [...r].sort((a, b) => a.partition - b.partition || Number(a.offset) - Number(b.offset));

for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  test(`Kafka topics, partitions, records and committed offsets survive a ${signal} restart`, { timeout: 60_000 }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), `robustmq-kafka-restart-${signal.toLowerCase()}-`));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    let srv = await startServer(['start', '--data-dir', dir, ...anyPorts], { env });
    t.after(() => srv.proc.kill('SIGKILL'));
    await waitReady(srv.ports.http as number);

    let kafka = kafkaOf(srv);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'ledger', numPartitions: 3 }] });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic: 'ledger',
      messages: Array.from({ length: 30 }, (_, i) => ({ key: `acct-${i % 7}`, value: `entry-${i}` })),
    });

    // a group reads the 30 records and commits them (kafkajs commits on each batch and on disconnect)
    const group = kafka.consumer({ groupId: 'ledger-readers', maxWaitTimeInMs: 100 });
    await group.connect();
    await group.subscribe({ topic: 'ledger', fromBeginning: true });
    const firstRead = await consume(group, 30);
    await group.disconnect();
    // 10 more the group has not read
    await producer.send({
      topic: 'ledger',
      messages: Array.from({ length: 10 }, (_, i) => ({ key: `acct-${(30 + i) % 7}`, value: `entry-${30 + i}` })),
    });
    const committed = await admin.fetchOffsets({ groupId: 'ledger-readers', topics: ['ledger'] });
    const committedByPartition = committed[0]!.partitions.map((p) => [p.partition, p.offset]).sort((a, b) => Number(a[0]) - Number(b[0]));
    assert.equal(
      committedByPartition.reduce((s, [, o]) => s + Number(o), 0),
      30,
      'all 30 read records committed',
    );
    const everything = kafka.consumer({ groupId: 'ledger-audit-before', maxWaitTimeInMs: 100 });
    await everything.connect();
    await everything.subscribe({ topic: 'ledger', fromBeginning: true });
    const before = sortRecs(await consume(everything, 40));
    await everything.disconnect();
    await producer.disconnect();
    await admin.disconnect();
    assert.equal(new Set(firstRead.map((r) => r.value)).size, 30);

    if (signal === 'SIGTERM') assert.equal(await srv.stop('SIGTERM'), 0, 'graceful stop exits 0');
    else {
      srv.proc.kill('SIGKILL');
      await srv.exited;
    }
    srv = await startServer(['start', '--data-dir', dir, ...anyPorts], { env });
    await waitReady(srv.ports.http as number);
    kafka = kafkaOf(srv);

    const admin2 = kafka.admin();
    await admin2.connect();
    t.after(() => admin2.disconnect());
    assert.ok((await admin2.listTopics()).includes('ledger'));
    const md = await admin2.fetchTopicMetadata({ topics: ['ledger'] });
    assert.equal(md.topics[0]!.partitions.length, 3, 'partition count kept');
    const committedAfter = await admin2.fetchOffsets({ groupId: 'ledger-readers', topics: ['ledger'] });
    assert.deepEqual(
      committedAfter[0]!.partitions.map((p) => [p.partition, p.offset]).sort((a, b) => Number(a[0]) - Number(b[0])),
      committedByPartition,
      'committed offsets kept',
    );

    // every record is there, in the same partition at the same offset, keys and values intact
    const audit = kafka.consumer({ groupId: 'ledger-audit-after', maxWaitTimeInMs: 100 });
    await audit.connect();
    t.after(() => audit.disconnect());
    await audit.subscribe({ topic: 'ledger', fromBeginning: true });
    assert.deepEqual(sortRecs(await consume(audit, 40)), before);

    // the group resumes from its committed offsets: exactly the 10 it had not read
    const resumed = kafka.consumer({ groupId: 'ledger-readers', maxWaitTimeInMs: 100 });
    await resumed.connect();
    t.after(() => resumed.disconnect());
    await resumed.subscribe({ topic: 'ledger', fromBeginning: true });
    const rest = await consume(resumed, 10);
    await new Promise((r) => setTimeout(r, 500)); // nothing else arrives
    assert.deepEqual(rest.map((r) => r.value).sort(), Array.from({ length: 10 }, (_, i) => `entry-${30 + i}`).sort());
    await resumed.disconnect();
    await audit.disconnect();
    assert.equal(await srv.stop(), 0);
  });
}
