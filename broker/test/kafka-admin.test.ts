import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel, type Admin, type ConfigResourceTypes } from 'kafkajs';
import { API_BY_KEY } from '../src/kafka/messages/index.js';
import { decodeResponseFrame, encodeRequestFrame, type ApiCodec } from '../src/kafka/protocol.js';
import { KafkaError } from '../src/kafka/errors.js';
import { Reader } from '../src/kafka/wire/reader.js';
import { Writer } from '../src/kafka/wire/writer.js';
import { RawKafka, startKafkaBroker } from './kafka-helpers.js';

const hasKcat = existsSync('/usr/bin/kcat');
const hasConfluent = spawnSync('/usr/bin/python3', ['-c', 'import confluent_kafka'], { stdio: 'ignore' }).status === 0;

const api = (key: number): ApiCodec => (API_BY_KEY as Record<number, ApiCodec>)[key]!;
const DELETE_RECORDS = api(21);
const DESCRIBE_CONFIGS = api(32);
const ALTER_CONFIGS = api(33);
const CREATE_PARTITIONS = api(37);
const DELETE_GROUPS = api(42);
const INCREMENTAL_ALTER_CONFIGS = api(44);
const OFFSET_DELETE = api(47);
const RESOURCE_TOPIC = 2;
const RESOURCE_BROKER = 4;
/** kafkajs's ConfigResourceTypes.TOPIC (its enum is not importable from ESM). */
const TOPIC_TYPE = RESOURCE_TOPIC as ConfigResourceTypes;

function run(cmd: string, args: string[], input = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 20000);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    p.stdin.end(input);
  });
}

let corr = 1;
/** One request over a raw connection; the decoded response body. */
async function call<T>(c: RawKafka, a: ApiCodec, v: number, body: unknown): Promise<T> {
  c.send(encodeRequestFrame(a, v, corr++, 'admin-test', body));
  const frame = await c.next();
  assert.ok(frame !== undefined, `${a.name} v${v}: connection closed`);
  return decodeResponseFrame(a, v, frame).body as T;
}

const encode = (a: ApiCodec, v: number, kind: 'request' | 'response', m: unknown): Buffer => {
  const w = new Writer(64);
  if (kind === 'request') a.codecs[v]!.encodeRequest(w, m);
  else a.codecs[v]!.encodeResponse(w, m);
  return w.toBuffer();
};
const decode = (a: ApiCodec, v: number, kind: 'request' | 'response', b: Buffer): unknown => {
  const r = new Reader(b);
  const m = kind === 'request' ? a.codecs[v]!.decodeRequest(r) : a.codecs[v]!.decodeResponse(r);
  assert.equal(r.remaining, 0, `${a.name} v${v} ${kind}: bytes left over`);
  return m;
};

test('codecs of the admin APIs: bytes from the spec and round trips', () => {
  // DeleteGroups v0: [groups_names] as int32 count + int16 strings; v2 (flexible): compact array + compact strings + tags
  const dg = { groupsNames: ['g1'] };
  assert.equal(encode(DELETE_GROUPS, 0, 'request', dg).toString('hex'), '00000001' + '0002' + '6731');
  assert.equal(encode(DELETE_GROUPS, 2, 'request', dg).toString('hex'), '02' + '03' + '6731' + '00');
  assert.deepEqual(decode(DELETE_GROUPS, 2, 'request', Buffer.from('0203673100', 'hex')), dg);
  // OffsetDelete v0 response: error_code throttle_time_ms [topics name [partitions index error_code]]
  const od = { errorCode: 0, throttleTimeMs: 0, topics: [{ name: 't', partitions: [{ partitionIndex: 1, errorCode: 86 }] }] };
  assert.equal(
    encode(OFFSET_DELETE, 0, 'response', od).toString('hex'),
    '0000' + '00000000' + '00000001' + '000174' + '00000001' + '00000001' + '0056',
  );
  const cases: [ApiCodec, number, 'request' | 'response', unknown][] = [
    [DELETE_GROUPS, 1, 'response', { throttleTimeMs: 5, results: [{ groupId: 'g', errorCode: 68 }] }],
    [OFFSET_DELETE, 0, 'request', { groupId: 'g', topics: [{ name: 't', partitions: [{ partitionIndex: 0 }] }] }],
    [CREATE_PARTITIONS, 3, 'request', { topics: [{ name: 't', count: 4, assignments: null }], timeoutMs: 1000, validateOnly: true }],
    [
      CREATE_PARTITIONS,
      0,
      'request',
      { topics: [{ name: 't', count: 4, assignments: [{ brokerIds: [1] }] }], timeoutMs: 1, validateOnly: false },
    ],
    [CREATE_PARTITIONS, 2, 'response', { throttleTimeMs: 0, results: [{ name: 't', errorCode: 37, errorMessage: 'no' }] }],
    [DELETE_RECORDS, 2, 'request', { topics: [{ name: 't', partitions: [{ partitionIndex: 0, offset: -1n }] }], timeoutMs: 100 }],
    [
      DELETE_RECORDS,
      0,
      'response',
      { throttleTimeMs: 0, topics: [{ name: 't', partitions: [{ partitionIndex: 0, lowWatermark: 7n, errorCode: 0 }] }] },
    ],
    [
      ALTER_CONFIGS,
      2,
      'request',
      { resources: [{ resourceType: 2, resourceName: 't', configs: [{ name: 'retention.ms', value: null }] }], validateOnly: false },
    ],
    [
      ALTER_CONFIGS,
      1,
      'response',
      { throttleTimeMs: 0, responses: [{ errorCode: 40, errorMessage: 'bad', resourceType: 2, resourceName: 't' }] },
    ],
    [
      INCREMENTAL_ALTER_CONFIGS,
      1,
      'request',
      {
        resources: [{ resourceType: 2, resourceName: 't', configs: [{ name: 'cleanup.policy', configOperation: 2, value: 'delete' }] }],
        validateOnly: true,
      },
    ],
    [
      INCREMENTAL_ALTER_CONFIGS,
      0,
      'response',
      { throttleTimeMs: 0, responses: [{ errorCode: 0, errorMessage: null, resourceType: 4, resourceName: '1' }] },
    ],
  ];
  for (const [a, v, kind, m] of cases) assert.deepEqual(decode(a, v, kind, encode(a, v, kind, m)), m, `${a.name} v${v} ${kind}`);
  // Produce v11 response with the v10 tagged leader hint; ListOffsets v8 request
  const produce = api(0);
  const pr = {
    responses: [
      {
        name: 't',
        partitionResponses: [
          {
            index: 0,
            errorCode: 6,
            baseOffset: -1n,
            logAppendTimeMs: -1n,
            logStartOffset: -1n,
            recordErrors: [],
            errorMessage: null,
            currentLeader: { leaderId: 1, leaderEpoch: 0 },
          },
        ],
      },
    ],
    throttleTimeMs: 0,
    nodeEndpoints: [{ nodeId: 1, host: 'h', port: 9092, rack: null }],
  };
  assert.deepEqual(decode(produce, 11, 'response', encode(produce, 11, 'response', pr)), pr);
  const lo = {
    replicaId: -1,
    isolationLevel: 0,
    topics: [{ name: 't', partitions: [{ partitionIndex: 0, currentLeaderEpoch: -1, timestamp: -4n, maxNumOffsets: 1 }] }],
  };
  assert.deepEqual(decode(api(2), 8, 'request', encode(api(2), 8, 'request', lo)), lo);
  // ListOffsets v0: replica_id [topic [partition timestamp max_num_offsets]] → [topic [partition error_code [offsets]]]
  const lo0 = { replicaId: -1, topics: [{ name: 't', partitions: [{ partitionIndex: 2, timestamp: -1n, maxNumOffsets: 3 }] }] };
  const lo0Hex = 'ffffffff' + '00000001' + '000174' + '00000001' + '00000002' + 'ffffffffffffffff' + '00000003';
  assert.equal(encode(api(2), 0, 'request', lo0).toString('hex'), lo0Hex);
  assert.deepEqual(decode(api(2), 0, 'request', Buffer.from(lo0Hex, 'hex')), {
    replicaId: -1,
    isolationLevel: 0,
    topics: [{ name: 't', partitions: [{ partitionIndex: 2, currentLeaderEpoch: -1, timestamp: -1n, maxNumOffsets: 3 }] }],
  });
  const lr0 = { topics: [{ name: 't', partitions: [{ partitionIndex: 2, errorCode: 0, oldStyleOffsets: [7n] }] }] };
  assert.equal(
    encode(api(2), 0, 'response', lr0).toString('hex'),
    '00000001' + '000174' + '00000001' + '00000002' + '0000' + '00000001' + '0000000000000007',
  );
});

test('Kafka admin APIs over the wire: kafkajs, confluent-kafka, kcat', async (t) => {
  const b = await startKafkaBroker(t);
  const bootstrap = `127.0.0.1:${b.kafkaPort}`;
  const kafka = new Kafka({ clientId: 'admin-test', brokers: [bootstrap], logLevel: logLevel.NOTHING, retry: { retries: 0 } });
  const admin: Admin = kafka.admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  const raw = await RawKafka.connect(t, b.kafkaPort);
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  t.after(() => producer.disconnect());

  await t.test('ApiVersions advertises the new APIs and versions exactly', async () => {
    const r = await call<{ apiKeys: { apiKey: number; minVersion: number; maxVersion: number }[] }>(raw, api(18), 3, {
      clientSoftwareName: 'test',
      clientSoftwareVersion: '1',
    });
    const range = (k: number): [number, number] | undefined => {
      const e = r.apiKeys.find((x) => x.apiKey === k);
      return e === undefined ? undefined : [e.minVersion, e.maxVersion];
    };
    assert.deepEqual(range(0), [3, 11]);
    assert.deepEqual(range(2), [0, 8]);
    assert.deepEqual(range(21), [0, 2]);
    assert.deepEqual(range(33), [0, 2]);
    assert.deepEqual(range(37), [0, 3]);
    assert.deepEqual(range(42), [0, 2]);
    assert.deepEqual(range(44), [0, 1]);
    assert.deepEqual(range(47), [0, 0]);
  });

  await t.test('CreatePartitions (kafkajs): grows a topic, validateOnly changes nothing, shrinking is INVALID_PARTITIONS', async () => {
    await admin.createTopics({ topics: [{ topic: 'adm-grow', numPartitions: 1 }] });
    await admin.createPartitions({ validateOnly: true, topicPartitions: [{ topic: 'adm-grow', count: 5 }] });
    let md = await admin.fetchTopicMetadata({ topics: ['adm-grow'] });
    assert.equal(md.topics[0]!.partitions.length, 1);
    await admin.createPartitions({ topicPartitions: [{ topic: 'adm-grow', count: 3 }] });
    md = await admin.fetchTopicMetadata({ topics: ['adm-grow'] });
    assert.equal(md.topics[0]!.partitions.length, 3);
    const [sent] = await producer.send({ topic: 'adm-grow', messages: [{ value: 'p2', partition: 2 }] });
    assert.equal(sent!.partition, 2);
    assert.equal(sent!.errorCode, 0);
    await assert.rejects(
      admin.createPartitions({ topicPartitions: [{ topic: 'adm-grow', count: 2 }] }),
      (err: Error & { type?: string }) => {
        assert.equal(err.type, 'INVALID_PARTITIONS', err.message);
        return true;
      },
    );
    const r = await call<{ results: { name: string; errorCode: number; errorMessage: string | null }[] }>(raw, CREATE_PARTITIONS, 3, {
      topics: [
        { name: 'adm-grow', count: 3, assignments: null },
        { name: 'adm-none', count: 3, assignments: null },
        { name: 'adm-grow', count: 9, assignments: null },
      ],
      timeoutMs: 1000,
      validateOnly: false,
    });
    assert.deepEqual(
      r.results.map((x) => x.errorCode),
      [KafkaError.INVALID_PARTITIONS, KafkaError.UNKNOWN_TOPIC_OR_PARTITION, KafkaError.INVALID_REQUEST],
    );
    assert.match(r.results[0]!.errorMessage ?? '', /currently has 3 partitions/);
  });

  await t.test(
    'CreateTopics replication factor: 1 and -1 are created; 0, -2 and 3 are INVALID_REPLICATION_FACTOR (38); assignments are checked',
    async () => {
      const topic = (name: string, replicationFactor: number, assignments: { partitionIndex: number; brokerIds: number[] }[] = []) => ({
        name,
        numPartitions: assignments.length > 0 ? -1 : 1,
        replicationFactor,
        assignments,
        configs: [],
      });
      const r = await call<{ topics: { name: string; errorCode: number; errorMessage: string | null; replicationFactor?: number }[] }>(
        raw,
        api(19),
        7,
        {
          topics: [
            topic('rf-one', 1),
            topic('rf-default', -1),
            topic('rf-zero', 0),
            topic('rf-neg', -2),
            topic('rf-three', 3),
            topic('rf-assign', -1, [
              { partitionIndex: 1, brokerIds: [1] },
              { partitionIndex: 0, brokerIds: [1] },
            ]),
            topic('rf-assign-two', -1, [{ partitionIndex: 0, brokerIds: [1, 2] }]),
            topic('rf-assign-gap', -1, [
              { partitionIndex: 0, brokerIds: [1] },
              { partitionIndex: 2, brokerIds: [1] },
            ]),
            topic('rf-assign-both', 1, [{ partitionIndex: 0, brokerIds: [1] }]),
          ],
          timeoutMs: 5000,
          validateOnly: false,
        },
      );
      assert.deepEqual(
        r.topics.map((x) => [x.name, x.errorCode]),
        [
          ['rf-one', 0],
          ['rf-default', 0],
          ['rf-zero', KafkaError.INVALID_REPLICATION_FACTOR],
          ['rf-neg', KafkaError.INVALID_REPLICATION_FACTOR],
          ['rf-three', KafkaError.INVALID_REPLICATION_FACTOR],
          ['rf-assign', 0],
          ['rf-assign-two', KafkaError.INVALID_REPLICATION_FACTOR],
          ['rf-assign-gap', KafkaError.INVALID_REPLICA_ASSIGNMENT],
          ['rf-assign-both', KafkaError.INVALID_REQUEST],
        ],
      );
      assert.equal(r.topics[1]!.replicationFactor, 1);
      assert.match(r.topics[4]!.errorMessage ?? '', /Unable to replicate the partition 3 time/);
      // refused topics were not created; kafkajs surfaces the error type
      const md = await admin.fetchTopicMetadata({ topics: ['rf-one', 'rf-assign'] });
      assert.deepEqual(Object.fromEntries(md.topics.map((x) => [x.name, x.partitions.length])), { 'rf-one': 1, 'rf-assign': 2 });
      assert.equal((await admin.listTopics()).includes('rf-three'), false);
      await assert.rejects(
        admin.createTopics({ topics: [{ topic: 'rf-kjs', replicationFactor: 3 }] }),
        (err: Error & { errors?: { type?: string }[] }) => {
          assert.equal(err.errors?.[0]?.type, 'INVALID_REPLICATION_FACTOR', err.message);
          return true;
        },
      );
    },
  );

  await t.test('DeleteRecords (kafkajs): moves the low watermark, -1 = high watermark; beyond it OFFSET_OUT_OF_RANGE', async () => {
    await admin.createTopics({ topics: [{ topic: 'adm-del', numPartitions: 1 }] });
    await producer.send({ topic: 'adm-del', messages: Array.from({ length: 10 }, (_, i) => ({ value: `v${i}` })) });
    await admin.fetchTopicMetadata({ topics: ['adm-del'] }); // kafkajs looks the leader up in its metadata cache first
    await admin.deleteTopicRecords({ topic: 'adm-del', partitions: [{ partition: 0, offset: '4' }] });
    let [o] = await admin.fetchTopicOffsets('adm-del');
    assert.deepEqual([o!.low, o!.high], ['4', '10']);
    const r = await call<{ topics: { partitions: { partitionIndex: number; lowWatermark: bigint; errorCode: number }[] }[] }>(
      raw,
      DELETE_RECORDS,
      2,
      {
        topics: [
          {
            name: 'adm-del',
            partitions: [
              { partitionIndex: 0, offset: 11n },
              { partitionIndex: 0, offset: 2n },
              { partitionIndex: 7, offset: 1n },
            ],
          },
        ],
        timeoutMs: 1000,
      },
    );
    assert.deepEqual(
      r.topics[0]!.partitions.map((p) => [p.errorCode, p.lowWatermark]),
      [
        [KafkaError.OFFSET_OUT_OF_RANGE, -1n],
        [0, 4n], // below the low watermark: nothing to do
        [KafkaError.UNKNOWN_TOPIC_OR_PARTITION, -1n],
      ],
    );
    await admin.deleteTopicRecords({ topic: 'adm-del', partitions: [{ partition: 0, offset: '-1' }] });
    [o] = await admin.fetchTopicOffsets('adm-del');
    assert.deepEqual([o!.low, o!.high], ['10', '10']);
  });

  await t.test('AlterConfigs + DescribeConfigs (kafkajs): values, sources, validation, validateOnly', async () => {
    await admin.createTopics({ topics: [{ topic: 'adm-cfg', numPartitions: 1 }] });
    const describe = async (): Promise<Map<string, { value: string; source: number; isDefault: boolean }>> => {
      const d = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: TOPIC_TYPE, name: 'adm-cfg' }] });
      return new Map(
        d.resources[0]!.configEntries.map((e) => [e.configName, { value: e.configValue, source: e.configSource, isDefault: e.isDefault }]),
      );
    };
    const alter = (configEntries: { name: string; value: string }[], validateOnly = false): Promise<unknown> =>
      admin.alterConfigs({ validateOnly, resources: [{ type: TOPIC_TYPE, name: 'adm-cfg', configEntries }] });
    await alter([{ name: 'retention.ms', value: '3600000' }], true);
    assert.equal((await describe()).get('retention.ms')!.source, 5, 'validateOnly stored nothing');
    await alter([
      { name: 'retention.ms', value: '3600000' },
      { name: 'max.message.bytes', value: '2048' },
    ]);
    const c = await describe();
    assert.deepEqual(c.get('retention.ms'), { value: '3600000', source: 1, isDefault: false }); // DYNAMIC_TOPIC_CONFIG
    assert.deepEqual(c.get('max.message.bytes'), { value: '2048', source: 1, isDefault: false });
    assert.deepEqual(c.get('retention.bytes'), { value: '-1', source: 5, isDefault: true }); // DEFAULT_CONFIG
    for (const bad of [
      [{ name: 'no.such.config', value: '1' }],
      [{ name: 'retention.ms', value: 'soon' }],
      [{ name: 'cleanup.policy', value: 'compact' }],
    ]) {
      await assert.rejects(alter(bad), (err: Error & { type?: string }) => {
        assert.equal(err.type, 'INVALID_CONFIG', err.message);
        return true;
      });
    }
    assert.equal((await describe()).get('max.message.bytes')!.value, '2048', 'a refused alter changes nothing');
    // the messages, and broker resources (read-only broker configs)
    const r = await call<{ responses: { errorCode: number; errorMessage: string | null; resourceType: number }[] }>(raw, ALTER_CONFIGS, 2, {
      resources: [
        { resourceType: RESOURCE_TOPIC, resourceName: 'adm-cfg', configs: [{ name: 'no.such.config', value: '1' }] },
        { resourceType: RESOURCE_TOPIC, resourceName: 'adm-cfg', configs: [{ name: 'retention.bytes', value: '0' }] },
        { resourceType: RESOURCE_BROKER, resourceName: '1', configs: [{ name: 'num.partitions', value: '3' }] },
        { resourceType: RESOURCE_TOPIC, resourceName: 'adm-missing', configs: [] },
      ],
      validateOnly: true,
    });
    assert.deepEqual(
      r.responses.map((x) => x.errorCode),
      [KafkaError.INVALID_REQUEST, KafkaError.INVALID_REQUEST, KafkaError.INVALID_CONFIG, KafkaError.UNKNOWN_TOPIC_OR_PARTITION],
    );
    const r2 = await call<{ responses: { errorCode: number; errorMessage: string | null }[] }>(raw, ALTER_CONFIGS, 0, {
      resources: [
        { resourceType: RESOURCE_TOPIC, resourceName: 'adm-cfg', configs: [{ name: 'no.such.config', value: '1' }] },
        { resourceType: RESOURCE_BROKER, resourceName: '1', configs: [{ name: 'num.partitions', value: '3' }] },
      ],
      validateOnly: true,
    });
    assert.equal(r2.responses[0]!.errorCode, KafkaError.INVALID_CONFIG);
    assert.match(r2.responses[0]!.errorMessage ?? '', /Unknown topic config name: no.such.config/);
    assert.match(r2.responses[1]!.errorMessage ?? '', /broker configs cannot be updated dynamically \(num.partitions\)/);
  });

  await t.test('max.message.bytes is enforced: kafkajs and kcat get MESSAGE_TOO_LARGE (10), smaller batches pass', async () => {
    await assert.rejects(producer.send({ topic: 'adm-cfg', messages: [{ value: 'x'.repeat(5000) }] }), (err: Error & { type?: string }) => {
      assert.match(`${err.message} ${err.type ?? ''}`, /larger than the max message size|MESSAGE_TOO_LARGE/, err.message);
      return true;
    });
    const [ok] = await producer.send({ topic: 'adm-cfg', messages: [{ value: 'x'.repeat(500) }] });
    assert.equal(ok!.errorCode, 0);
    if (hasKcat) {
      const k = await run('kcat', ['-b', bootstrap, '-t', 'adm-cfg', '-P'], 'y'.repeat(5000) + '\n');
      assert.match(k.stderr, /Message size too large/, k.stderr);
    }
  });

  await t.test('IncrementalAlterConfigs v0/v1: SET, DELETE, APPEND/SUBTRACT on cleanup.policy, validateOnly, errors', async () => {
    type Resp = { responses: { errorCode: number; errorMessage: string | null }[] };
    const inc = (
      v: number,
      configs: { name: string; configOperation: number; value: string | null }[],
      validateOnly = false,
    ): Promise<Resp> =>
      call<Resp>(raw, INCREMENTAL_ALTER_CONFIGS, v, {
        resources: [{ resourceType: RESOURCE_TOPIC, resourceName: 'adm-cfg', configs }],
        validateOnly,
      });
    const describe = async (): Promise<Map<string, [string | null, number]>> => {
      const d = await call<{ results: { configs: { name: string; value: string | null; configSource: number }[] }[] }>(
        raw,
        DESCRIBE_CONFIGS,
        4,
        {
          resources: [{ resourceType: RESOURCE_TOPIC, resourceName: 'adm-cfg', configurationKeys: null }],
          includeSynonyms: false,
          includeDocumentation: false,
        },
      );
      return new Map(d.results[0]!.configs.map((c) => [c.name, [c.value, c.configSource]]));
    };
    let r = await inc(1, [
      { name: 'retention.bytes', configOperation: 0, value: '1048576' },
      { name: 'max.message.bytes', configOperation: 1, value: null },
      { name: 'cleanup.policy', configOperation: 2, value: 'delete' },
    ]);
    assert.equal(r.responses[0]!.errorCode, 0, r.responses[0]!.errorMessage ?? '');
    let c = await describe();
    assert.deepEqual(c.get('retention.bytes'), ['1048576', 1]);
    assert.deepEqual(c.get('max.message.bytes'), [String(1024 * 1024 + 12), 5], 'DELETE: back to the default');
    assert.deepEqual(c.get('retention.ms'), ['3600000', 1], 'untouched');
    assert.deepEqual(c.get('cleanup.policy'), ['delete', 1]);
    const [big] = await producer.send({ topic: 'adm-cfg', messages: [{ value: 'x'.repeat(5000) }] });
    assert.equal(big!.errorCode, 0, 'the default limit applies again');
    r = await inc(0, [{ name: 'retention.bytes', configOperation: 1, value: null }], true);
    assert.equal(r.responses[0]!.errorCode, 0);
    assert.deepEqual((await describe()).get('retention.bytes'), ['1048576', 1], 'validateOnly');
    const refused: [{ name: string; configOperation: number; value: string | null }, number, RegExp][] = [
      [{ name: 'cleanup.policy', configOperation: 2, value: 'compact' }, KafkaError.INVALID_CONFIG, /compact,delete is not supported/],
      [{ name: 'cleanup.policy', configOperation: 3, value: 'delete' }, KafkaError.INVALID_CONFIG, /cannot become empty/],
      [{ name: 'retention.ms', configOperation: 2, value: '5' }, KafkaError.INVALID_CONFIG, /not a list config/],
      [{ name: 'retention.ms', configOperation: 0, value: '-7' }, KafkaError.INVALID_CONFIG, /retention.ms/],
      [{ name: 'segment.bytes', configOperation: 9, value: '1' }, KafkaError.INVALID_REQUEST, /Unknown config operation/],
      [{ name: 'bogus', configOperation: 0, value: '1' }, KafkaError.INVALID_CONFIG, /Unknown topic config name/],
    ];
    for (const [op, code, message] of refused) {
      r = await inc(1, [op]);
      assert.equal(r.responses[0]!.errorCode, code, JSON.stringify(op));
      assert.match(r.responses[0]!.errorMessage ?? '', message);
    }
    c = await describe();
    assert.deepEqual(c.get('cleanup.policy'), ['delete', 1]);
  });

  await t.test('cleanup.policy=compact at creation uses the compacted engine; it cannot be switched later', async () => {
    await admin.createTopics({
      topics: [{ topic: 'adm-compact', numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }],
    });
    assert.equal(b.broker.kafka!.streams.get('adm-compact')!.engine, 'compacted');
    await producer.send({
      topic: 'adm-compact',
      messages: [
        { key: 'k', value: '1' },
        { key: 'k', value: '2' },
      ],
    });
    const r = await call<{ responses: { errorCode: number; errorMessage: string | null }[] }>(raw, INCREMENTAL_ALTER_CONFIGS, 1, {
      resources: [
        {
          resourceType: RESOURCE_TOPIC,
          resourceName: 'adm-compact',
          configs: [{ name: 'cleanup.policy', configOperation: 0, value: 'delete' }],
        },
      ],
      validateOnly: false,
    });
    assert.equal(r.responses[0]!.errorCode, KafkaError.INVALID_CONFIG);
    assert.match(r.responses[0]!.errorMessage ?? '', /cannot be changed from compact to delete/);
    await assert.rejects(
      admin.createTopics({ topics: [{ topic: 'adm-bad', configEntries: [{ name: 'retention.ms', value: 'never' }] }] }),
      (err: Error & { errors?: { type?: string }[] }) => {
        assert.equal(err.errors?.[0]?.type, 'INVALID_CONFIG', err.message);
        return true;
      },
    );
  });

  await t.test('retention after AlterConfigs really deletes old segments: ListOffsets earliest advances', async () => {
    const segmentBytes = { name: 'segment.bytes', value: '1024' };
    await admin.createTopics({ topics: [{ topic: 'adm-ret', numPartitions: 1, configEntries: [segmentBytes] }] });
    const old = String(Date.now() - 48 * 3600 * 1000);
    for (let i = 0; i < 40; i++)
      await producer.send({ topic: 'adm-ret', messages: [{ value: `${i}-${'r'.repeat(200)}`, timestamp: old }] });
    const low = async (): Promise<number> => Number((await admin.fetchTopicOffsets('adm-ret'))[0]!.low);
    assert.equal(await low(), 0);
    const shard = 'kafka/adm-ret/0';
    assert.ok((await b.journal.getShard(shard)).bytes > 8000);
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: TOPIC_TYPE, name: 'adm-ret', configEntries: [segmentBytes, { name: 'retention.bytes', value: '2048' }] }],
    });
    const afterBytes = await low();
    assert.ok(afterBytes > 0, 'retention.bytes deleted the oldest segments at once');
    assert.ok((await b.journal.getShard(shard)).bytes <= 2048 + 1024, 'within retention.bytes + one segment');
    // records are two days old: a one-hour retention.ms leaves only the active segment
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: TOPIC_TYPE, name: 'adm-ret', configEntries: [segmentBytes, { name: 'retention.ms', value: '3600000' }] }],
    });
    const afterMs = await low();
    assert.ok(afterMs > afterBytes, `retention.ms advanced the earliest offset (${afterBytes} → ${afterMs})`);
    assert.ok(afterMs >= 37, `only the active segment is left (earliest ${afterMs} of 40)`);
    assert.deepEqual((await b.journal.getShard(shard)).config, { segmentBytes: 1024, retentionMs: 3600000 });
  });

  await t.test('DeleteGroups (kafkajs) and OffsetDelete: NON_EMPTY_GROUP, GROUP_SUBSCRIBED_TO_TOPIC, GROUP_ID_NOT_FOUND', async () => {
    await admin.createTopics({ topics: [{ topic: 'adm-ga' }, { topic: 'adm-gb' }] });
    const groupId = 'adm-group';
    await admin.setOffsets({ groupId, topic: 'adm-ga', partitions: [{ partition: 0, offset: '0' }] });
    await admin.setOffsets({ groupId, topic: 'adm-gb', partitions: [{ partition: 0, offset: '0' }] });
    const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'adm-ga' });
    void consumer.run({ eachMessage: async () => undefined });
    for (let i = 0; (await admin.describeGroups([groupId])).groups[0]!.state !== 'Stable'; i++) {
      if (i > 200) throw new Error('group never became stable');
      await sleep(50);
    }
    const od = await call<{ errorCode: number; topics: { name: string; partitions: { errorCode: number }[] }[] }>(raw, OFFSET_DELETE, 0, {
      groupId,
      topics: [
        { name: 'adm-ga', partitions: [{ partitionIndex: 0 }] },
        { name: 'adm-gb', partitions: [{ partitionIndex: 0 }] },
        { name: 'adm-nope', partitions: [{ partitionIndex: 0 }] },
      ],
    });
    assert.equal(od.errorCode, 0);
    assert.deepEqual(
      od.topics.map((x) => x.partitions[0]!.errorCode),
      [KafkaError.GROUP_SUBSCRIBED_TO_TOPIC, 0, KafkaError.UNKNOWN_TOPIC_OR_PARTITION],
    );
    const committed = async (topic: string): Promise<string> =>
      (await admin.fetchOffsets({ groupId, topics: [topic] }))[0]!.partitions[0]!.offset;
    assert.equal(await committed('adm-gb'), '-1', 'OffsetDelete removed the unsubscribed topic');
    assert.equal(await committed('adm-ga'), '0', 'the subscribed topic kept its offset');
    await assert.rejects(admin.deleteGroups([groupId]), (err: Error & { groups?: { groupId: string; errorCode: number }[] }) => {
      assert.deepEqual(
        err.groups?.map((g) => [g.groupId, g.errorCode]),
        [[groupId, KafkaError.NON_EMPTY_GROUP]],
        err.message,
      );
      return true;
    });
    await consumer.disconnect();
    const deleted = await admin.deleteGroups([groupId]);
    assert.deepEqual(
      deleted.map((g) => [g.groupId, g.errorCode]),
      [[groupId, 0]],
    );
    assert.equal(await committed('adm-ga'), '-1', 'committed offsets are gone with the group');
    assert.ok(!(await admin.listGroups()).groups.some((g) => g.groupId === groupId));
    await assert.rejects(admin.deleteGroups(['adm-never']), (err: Error & { groups?: { errorCode: number }[] }) => {
      assert.equal(err.groups?.[0]?.errorCode, KafkaError.GROUP_ID_NOT_FOUND, err.message);
      return true;
    });
    const dg = await call<{ results: { groupId: string; errorCode: number }[] }>(raw, DELETE_GROUPS, 2, { groupsNames: ['', 'adm-never'] });
    assert.deepEqual(
      dg.results.map((x) => x.errorCode),
      [KafkaError.INVALID_GROUP_ID, KafkaError.GROUP_ID_NOT_FOUND],
    );
    const od2 = await call<{ errorCode: number }>(raw, OFFSET_DELETE, 0, { groupId: 'adm-never', topics: [] });
    assert.equal(od2.errorCode, KafkaError.GROUP_ID_NOT_FOUND);
  });

  await t.test(
    'ListOffsets: v8 -3 (largest timestamp) and -4 (earliest local); by timestamp answered with the timestamp of the record found; v0 offset lists',
    async () => {
      await admin.createTopics({ topics: [{ topic: 'adm-ts', numPartitions: 1 }] });
      const base = Date.now() - 10_000;
      await producer.send({ topic: 'adm-ts', messages: [{ value: 'a', timestamp: String(base) }] });
      await producer.send({
        topic: 'adm-ts',
        messages: [
          { value: 'b', timestamp: String(base + 500) },
          { value: 'c', timestamp: String(base + 100) },
        ],
      });
      await producer.send({ topic: 'adm-ts', messages: [{ value: 'd', timestamp: String(base + 200) }] });
      await admin.fetchTopicMetadata({ topics: ['adm-ts'] });
      await admin.deleteTopicRecords({ topic: 'adm-ts', partitions: [{ partition: 0, offset: '1' }] });
      const r = await call<{ topics: { partitions: { errorCode: number; offset: bigint; timestamp: bigint }[] }[] }>(raw, api(2), 8, {
        replicaId: -1,
        isolationLevel: 0,
        topics: [
          {
            name: 'adm-ts',
            partitions: [
              { partitionIndex: 0, currentLeaderEpoch: -1, timestamp: -3n },
              { partitionIndex: 0, currentLeaderEpoch: -1, timestamp: -4n },
            ],
          },
        ],
      });
      const [max, local] = r.topics[0]!.partitions;
      assert.deepEqual([max!.errorCode, max!.offset, max!.timestamp], [0, 1n, BigInt(base + 500)]);
      assert.deepEqual([local!.errorCode, local!.offset], [0, 1n]);

      // by timestamp: the first record at or after it, with that record's own timestamp
      const byTs = await call<{ topics: { partitions: { errorCode: number; offset: bigint; timestamp: bigint }[] }[] }>(raw, api(2), 5, {
        replicaId: -1,
        isolationLevel: 0,
        topics: [
          {
            name: 'adm-ts',
            partitions: [
              { partitionIndex: 0, currentLeaderEpoch: -1, timestamp: BigInt(base + 150) },
              { partitionIndex: 0, currentLeaderEpoch: -1, timestamp: BigInt(base + 600) },
            ],
          },
        ],
      });
      const [hit, none] = byTs.topics[0]!.partitions;
      assert.deepEqual([hit!.errorCode, hit!.offset, hit!.timestamp], [0, 1n, BigInt(base + 500)]);
      assert.deepEqual([none!.errorCode, none!.offset, none!.timestamp], [0, -1n, -1n]);

      // v0 (old clients): a list of at most maxNumOffsets offsets
      const v0 = await call<{ topics: { partitions: { errorCode: number; oldStyleOffsets: bigint[] }[] }[] }>(raw, api(2), 0, {
        replicaId: -1,
        topics: [
          {
            name: 'adm-ts',
            partitions: [
              { partitionIndex: 0, timestamp: -1n, maxNumOffsets: 1 },
              { partitionIndex: 0, timestamp: -2n, maxNumOffsets: 10 },
              { partitionIndex: 0, timestamp: BigInt(base + 150), maxNumOffsets: 1 },
              { partitionIndex: 0, timestamp: BigInt(base + 600), maxNumOffsets: 1 },
              { partitionIndex: 0, timestamp: -1n, maxNumOffsets: 0 },
              { partitionIndex: 7, timestamp: -1n, maxNumOffsets: 1 },
            ],
          },
          { name: 'adm-none', partitions: [{ partitionIndex: 0, timestamp: -1n, maxNumOffsets: 1 }] },
        ],
      });
      assert.deepEqual(
        v0.topics.flatMap((t) => t.partitions.map((p) => [p.errorCode, p.oldStyleOffsets])),
        [
          [0, [4n]],
          [0, [1n]],
          [0, [1n]],
          [0, [4n]],
          [0, []],
          [KafkaError.UNKNOWN_TOPIC_OR_PARTITION, []],
          [KafkaError.UNKNOWN_TOPIC_OR_PARTITION, []],
        ],
      );
    },
  );

  await t.test(
    'confluent-kafka AdminClient (librdkafka): create_partitions, alter_configs, describe_configs',
    { skip: !hasConfluent && 'python3-confluent-kafka not installed' },
    async () => {
      await admin.createTopics({ topics: [{ topic: 'adm-py', numPartitions: 1 }] });
      const script = join(b.dir, 'admin.py');
      writeFileSync(
        script,
        `
import sys, json
from confluent_kafka.admin import AdminClient, NewPartitions, ConfigResource
bootstrap, topic = sys.argv[1:3]
a = AdminClient({'bootstrap.servers': bootstrap})
out = {}
for f in a.create_partitions([NewPartitions(topic, 4)]).values(): f.result()
r = ConfigResource('topic', topic, set_config={'retention.ms': '7200000', 'segment.bytes': '1048576'})
for f in a.alter_configs([r]).values(): f.result()
for f in a.describe_configs([ConfigResource('topic', topic)]).values():
    cfg = f.result()
    out['configs'] = {k: [v.value, getattr(v.source, 'value', v.source)] for k, v in cfg.items() if k in ('retention.ms', 'segment.bytes', 'retention.bytes')}
out['partitions'] = len(a.list_topics(topic, timeout=10).topics[topic].partitions)
try:
    for f in a.create_partitions([NewPartitions(topic, 2)]).values(): f.result()
except Exception as e:
    out['shrink'] = e.args[0].name()
try:
    for f in a.alter_configs([ConfigResource('topic', topic, set_config={'bogus.key': '1'})]).values(): f.result()
except Exception as e:
    out['bogus'] = e.args[0].name()
print(json.dumps(out))
`,
      );
      const r = await run('/usr/bin/python3', [script, bootstrap, 'adm-py']);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
      assert.deepEqual(out, {
        configs: { 'retention.ms': ['7200000', 1], 'segment.bytes': ['1048576', 1], 'retention.bytes': ['-1', 5] },
        partitions: 4,
        shrink: 'INVALID_PARTITIONS',
        bogus: 'INVALID_CONFIG',
      });
      assert.deepEqual((await b.journal.getShard('kafka/adm-py/3')).config, { retentionMs: 7200000, segmentBytes: 1048576 });
    },
  );

  await t.test('topic configs are durable: after a restart they are reported and still enforced', async (t) => {
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: TOPIC_TYPE, name: 'adm-cfg', configEntries: [{ name: 'max.message.bytes', value: '1024' }] }],
    });
    await producer.disconnect();
    await admin.disconnect();
    await b.stop();
    const b2 = await startKafkaBroker(t, { dir: b.dir });
    const k2 = new Kafka({
      clientId: 'admin-test-2',
      brokers: [`127.0.0.1:${b2.kafkaPort}`],
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
    });
    const a2 = k2.admin();
    await a2.connect();
    const d = await a2.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: TOPIC_TYPE, name: 'adm-cfg', configNames: ['max.message.bytes', 'retention.ms'] }],
    });
    assert.deepEqual(d.resources[0]!.configEntries.map((e) => [e.configName, e.configValue, e.configSource]).sort(), [
      ['max.message.bytes', '1024', 1],
      ['retention.ms', String(7 * 24 * 3600 * 1000), 5],
    ]);
    await a2.disconnect();
    const p2 = k2.producer();
    await p2.connect();
    await assert.rejects(p2.send({ topic: 'adm-cfg', messages: [{ value: 'z'.repeat(3000) }] }));
    await p2.disconnect();
  });
});
