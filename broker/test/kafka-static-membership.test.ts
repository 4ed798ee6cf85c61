import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { API_BY_KEY } from '../src/kafka/messages/index.js';
import { decodeResponseFrame, encodeRequestFrame, type ApiCodec } from '../src/kafka/protocol.js';
import { KafkaError } from '../src/kafka/errors.js';
import { RawKafka, startKafkaBroker } from './kafka-helpers.js';

// Static membership (KIP-345, group.instance.id) over the wire: a restarted static member takes
// its place back without a rebalance, and the member id it replaced is fenced everywhere.

const api = (key: number): ApiCodec => API_BY_KEY[key as keyof typeof API_BY_KEY] as unknown as ApiCodec;
const OFFSET_COMMIT = api(8);
const JOIN_GROUP = api(11);
const HEARTBEAT = api(12);
const LEAVE_GROUP = api(13);
const SYNC_GROUP = api(14);
const DESCRIBE_GROUPS = api(15);

async function call<T>(c: RawKafka, a: ApiCodec, v: number, body: unknown): Promise<T> {
  c.send(encodeRequestFrame(a, v, 1, 'static-test', body));
  const frame = await c.next();
  assert.ok(frame, `${a.name} v${v}: connection closed`);
  return decodeResponseFrame(a, v, frame).body as T;
}

interface Join {
  errorCode: number;
  generationId: number;
  memberId: string;
  leader: string;
  skipAssignment?: boolean;
  members: { memberId: string; groupInstanceId: string | null }[];
}

const join = (memberId: string, instance: string | null, metadata = Buffer.from('m1')) => ({
  groupId: 'sg',
  sessionTimeoutMs: 10_000,
  rebalanceTimeoutMs: 10_000,
  memberId,
  groupInstanceId: instance,
  protocolType: 'consumer',
  protocols: [{ name: 'range', metadata }],
  reason: null,
});

test('static member: a re-join without member id replaces the old one without a rebalance; the old id is fenced (FENCED_INSTANCE_ID)', async (t) => {
  const b = await startKafkaBroker(t);
  const c = await RawKafka.connect(t, b.kafkaPort);
  // a new static member joins at once (no MEMBER_ID_REQUIRED round), its id starts with the instance id
  const j1 = await call<Join>(c, JOIN_GROUP, 9, join('', 'i1'));
  assert.equal(j1.errorCode, 0);
  assert.match(j1.memberId, /^i1-/);
  assert.equal(j1.leader, j1.memberId);
  assert.deepEqual(
    j1.members.map((m) => m.groupInstanceId),
    ['i1'],
  );
  const s1 = await call<{ errorCode: number; assignment: Buffer }>(c, SYNC_GROUP, 5, {
    groupId: 'sg',
    generationId: j1.generationId,
    memberId: j1.memberId,
    groupInstanceId: 'i1',
    protocolType: 'consumer',
    protocolName: 'range',
    assignments: [{ memberId: j1.memberId, assignment: Buffer.from('partitions-0-1') }],
  });
  assert.equal(s1.errorCode, 0);

  // the member restarts: same instance id, no member id; same generation, a new member id
  const j2 = await call<Join>(c, JOIN_GROUP, 9, join('', 'i1'));
  assert.equal(j2.errorCode, 0);
  assert.equal(j2.generationId, j1.generationId, 'no rebalance');
  assert.notEqual(j2.memberId, j1.memberId);
  assert.equal(j2.leader, j2.memberId);
  assert.equal(j2.skipAssignment, true, 'the returning leader must not assign again (v9)');
  // JoinGroup v5 has no skip flag: the leader gets no member list instead
  const j3 = await call<Join>(c, JOIN_GROUP, 5, join('', 'i1'));
  assert.equal(j3.errorCode, 0);
  assert.deepEqual(j3.members, []);
  const current = j3.memberId;

  // SyncGroup without a rebalance hands the kept assignment to the new id
  const s2 = await call<{ errorCode: number; assignment: Buffer }>(c, SYNC_GROUP, 5, {
    groupId: 'sg',
    generationId: j1.generationId,
    memberId: current,
    groupInstanceId: 'i1',
    protocolType: 'consumer',
    protocolName: 'range',
    assignments: [],
  });
  assert.equal(s2.errorCode, 0);
  assert.equal(Buffer.from(s2.assignment).toString(), 'partitions-0-1');

  // the replaced ids are fenced: heartbeat, sync, commit, join and leave
  const gen = j1.generationId;
  for (const stale of [j1.memberId, j2.memberId]) {
    const hb = await call<{ errorCode: number }>(c, HEARTBEAT, 4, {
      groupId: 'sg',
      generationId: gen,
      memberId: stale,
      groupInstanceId: 'i1',
    });
    assert.equal(hb.errorCode, KafkaError.FENCED_INSTANCE_ID);
  }
  const sync = await call<{ errorCode: number }>(c, SYNC_GROUP, 5, {
    groupId: 'sg',
    generationId: gen,
    memberId: j1.memberId,
    groupInstanceId: 'i1',
    protocolType: 'consumer',
    protocolName: 'range',
    assignments: [],
  });
  assert.equal(sync.errorCode, KafkaError.FENCED_INSTANCE_ID);
  await call(c, api(19), 4, {
    topics: [{ name: 'st', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }],
    timeoutMs: 5000,
    validateOnly: false,
  });
  const commit = await call<{ topics: { partitions: { errorCode: number }[] }[] }>(c, OFFSET_COMMIT, 8, {
    groupId: 'sg',
    generationIdOrMemberEpoch: gen,
    memberId: j1.memberId,
    groupInstanceId: 'i1',
    topics: [{ name: 'st', partitions: [{ partitionIndex: 0, committedOffset: 1n, committedLeaderEpoch: -1, committedMetadata: null }] }],
  });
  assert.equal(commit.topics[0]!.partitions[0]!.errorCode, KafkaError.FENCED_INSTANCE_ID);
  const okCommit = await call<{ topics: { partitions: { errorCode: number }[] }[] }>(c, OFFSET_COMMIT, 8, {
    groupId: 'sg',
    generationIdOrMemberEpoch: gen,
    memberId: current,
    groupInstanceId: 'i1',
    topics: [{ name: 'st', partitions: [{ partitionIndex: 0, committedOffset: 1n, committedLeaderEpoch: -1, committedMetadata: null }] }],
  });
  assert.equal(okCommit.topics[0]!.partitions[0]!.errorCode, 0);
  const rejoin = await call<Join>(c, JOIN_GROUP, 9, join(j1.memberId, 'i1'));
  assert.equal(rejoin.errorCode, KafkaError.FENCED_INSTANCE_ID);
  const leaveStale = await call<{ errorCode: number; members: { errorCode: number }[] }>(c, LEAVE_GROUP, 5, {
    groupId: 'sg',
    members: [{ memberId: j1.memberId, groupInstanceId: 'i1', reason: null }],
  });
  assert.equal(leaveStale.members[0]!.errorCode, KafkaError.FENCED_INSTANCE_ID);

  let d = await call<{ groups: { groupState: string; members: { memberId: string; groupInstanceId: string | null }[] }[] }>(
    c,
    DESCRIBE_GROUPS,
    5,
    {
      groups: ['sg'],
      includeAuthorizedOperations: false,
    },
  );
  assert.equal(d.groups[0]!.groupState, 'Stable');
  assert.deepEqual(d.groups[0]!.members, [{ ...d.groups[0]!.members[0]!, memberId: current, groupInstanceId: 'i1' }]);

  // leaving by instance id alone (what kafka-consumer-groups --delete-member style removal sends)
  const leave = await call<{ errorCode: number; members: { errorCode: number }[] }>(c, LEAVE_GROUP, 5, {
    groupId: 'sg',
    members: [{ memberId: '', groupInstanceId: 'i1', reason: null }],
  });
  assert.equal(leave.members[0]!.errorCode, 0);
  d = await call(c, DESCRIBE_GROUPS, 5, { groups: ['sg'], includeAuthorizedOperations: false });
  assert.equal(d.groups[0]!.groupState, 'Empty');
  const gone = await call<{ errorCode: number; members: { errorCode: number }[] }>(c, LEAVE_GROUP, 5, {
    groupId: 'sg',
    members: [{ memberId: '', groupInstanceId: 'i1', reason: null }],
  });
  assert.equal(gone.members[0]!.errorCode, KafkaError.UNKNOWN_MEMBER_ID);
});

test('static member with changed subscription: the re-join rebalances the group', async (t) => {
  const b = await startKafkaBroker(t);
  const a = await RawKafka.connect(t, b.kafkaPort);
  const j1 = await call<Join>(a, JOIN_GROUP, 9, join('', 'i1'));
  assert.equal(j1.errorCode, 0);
  await call(a, SYNC_GROUP, 5, {
    groupId: 'sg',
    generationId: j1.generationId,
    memberId: j1.memberId,
    groupInstanceId: 'i1',
    protocolType: 'consumer',
    protocolName: 'range',
    assignments: [{ memberId: j1.memberId, assignment: Buffer.from('x') }],
  });
  const j2 = await call<Join>(a, JOIN_GROUP, 9, join('', 'i1', Buffer.from('m2')));
  assert.equal(j2.errorCode, 0);
  assert.equal(j2.generationId, j1.generationId + 1, 'a new generation');
  assert.equal(j2.skipAssignment, false);
  assert.deepEqual(
    j2.members.map((m) => m.memberId),
    [j2.memberId],
  );
});

const hasConfluent = spawnSync('/usr/bin/python3', ['-c', 'import confluent_kafka'], { stdio: 'ignore' }).status === 0;

// Two confluent-kafka consumers with group.instance.id; one closes (static members send no
// LeaveGroup) and a new process with the same instance id comes back: it gets the same
// partitions and the other member sees no revocation.
const PY = `
import sys, json, time
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap = sys.argv[1]
adm = AdminClient({'bootstrap.servers': bootstrap})
adm.create_topics([NewTopic('static', 4, 1)])['static'].result()
events = []
def consumer(inst):
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'static-g', 'group.instance.id': inst,
                  'session.timeout.ms': 30000, 'log_level': 0})
    c.subscribe(['static'], on_assign=lambda c, ps: events.append((inst, 'assign', sorted(p.partition for p in ps))),
                on_revoke=lambda c, ps: events.append((inst, 'revoke', sorted(p.partition for p in ps))))
    return c
def poll_until(cs, pred, secs=20):
    end = time.time() + secs
    while time.time() < end and not pred():
        for c in cs: c.poll(0.1)
a = consumer('a'); b = consumer('b')
poll_until([a, b], lambda: set(e[0] for e in events if e[1] == 'assign' and e[2]) == {'a', 'b'}
           and len(sum((e[2] for e in events if e[1] == 'assign'), [])) >= 4 and events[-1][1] == 'assign')
before = list(events)
b.close()
b2 = consumer('b')
poll_until([a, b2], lambda: len(events) > len(before) and events[-1][0] == 'b' and events[-1][1] == 'assign')
poll_until([a, b2], lambda: False, 2)
print(json.dumps({'before': before, 'after': events[len(before):]}))
a.close(); b2.close()
`;

test(
  'confluent-kafka static members: a restarted instance gets its partitions back, the other member is not revoked',
  { skip: !hasConfluent && 'python3-confluent-kafka not installed' },
  async (t) => {
    const b = await startKafkaBroker(t);
    const r = await new Promise<{ code: number; out: string; err: string }>((resolve) => {
      const p = spawn('/usr/bin/python3', ['-c', PY, `127.0.0.1:${b.kafkaPort}`]);
      let out = '';
      let err = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
      p.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, out, err });
      });
    });
    assert.equal(r.code, 0, r.err);
    const { before, after } = JSON.parse(r.out.trim().split('\n').pop()!) as {
      before: [string, string, number[]][];
      after: [string, string, number[]][];
    };
    const lastAssign = (inst: string, evs: [string, string, number[]][]): number[] | undefined =>
      evs.filter((e) => e[0] === inst && e[1] === 'assign').pop()?.[2];
    const bBefore = lastAssign('b', before)!;
    assert.ok(bBefore.length > 0, JSON.stringify(before));
    // b's close revokes b's own partitions locally; the new b gets exactly those back
    assert.deepEqual(lastAssign('b', after), bBefore, JSON.stringify(after));
    assert.deepEqual(
      after.filter((e) => e[0] === 'a'),
      [],
      `member a saw no rebalance: ${JSON.stringify(after)}`,
    );
  },
);
