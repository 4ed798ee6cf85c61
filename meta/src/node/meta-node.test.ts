import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { MetaNode } from './meta-node.js';
import { LocalNetwork } from './transport.js';
import { prefixEnd } from '../kv/sorted-keys.js';
import type { WatchBatch } from '../client.js';
import { RaftWal } from '../storage/raft-wal.js';

const log = pino({ level: 'silent' });

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-meta-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

async function openSingle(dir: string): Promise<MetaNode> {
  const net = new LocalNetwork();
  return MetaNode.open({
    nodeId: 1,
    dir,
    log,
    registry: new Registry(),
    transport: net.transport(1),
    address: 'local:1',
    initialMembers: new Map([[1, 'local:1']]),
    tickMs: 10,
  });
}

test('single node: put, get, range across groups, delete, txn, and a restart keeps everything', async (t) => {
  const dir = tmp(t);
  let node = await openSingle(dir);
  await until(() => node.isReady(), 'leaders');
  await node.put('/cluster/config/a', Buffer.from('1'));
  await node.put('/sessions/c1/record', Buffer.from('s1'));
  await node.put('/sessions/c2/record', Buffer.from('s2'));
  await node.put('/offsets/g1/t/0', Buffer.from('42'));
  assert.equal((await node.get('/cluster/config/a'))?.value.toString(), '1');
  const sessions = await node.range('/sessions/', prefixEnd('/sessions/'));
  assert.deepEqual(
    sessions.kvs.map((k) => k.key),
    ['/sessions/c1/record', '/sessions/c2/record'],
  );
  const all = await node.range('/', '\0');
  assert.equal(all.count, 4);
  const txn = await node.txn({
    compare: [{ key: '/sessions/c1/record', target: 'value', result: '=', value: Buffer.from('s1') }],
    success: [{ op: 'put', key: '/sessions/c1/owner', value: Buffer.from('broker-1') }],
    failure: [],
  });
  assert.equal(txn.succeeded, true);
  await assert.rejects(
    node.txn({
      compare: [],
      success: [
        { op: 'put', key: '/sessions/c1/x', value: Buffer.from('') },
        { op: 'put', key: '/a', value: Buffer.from('') },
      ],
      failure: [],
    }),
    (e: Error & { code?: string }) => e.code === 'ERR_CROSS_GROUP',
  );
  const del = await node.delete('/sessions/', prefixEnd('/sessions/'));
  assert.equal(del.deleted, 3);
  await node.put('/after/restart', Buffer.from('yes'));
  await node.close();

  node = await openSingle(dir);
  t.after(() => node.close());
  await until(() => node.isReady(), 'leaders after restart');
  assert.equal((await node.get('/after/restart'))?.value.toString(), 'yes');
  assert.equal((await node.get('/offsets/g1/t/0'))?.value.toString(), '42');
  assert.equal((await node.range('/sessions/', prefixEnd('/sessions/'))).count, 0);
});

test('single node: a write is answered only once its entry is on disk', async (t) => {
  const node = await openSingle(tmp(t));
  t.after(() => node.close());
  await until(() => node.isReady(), 'leaders');
  // A single voter commits an entry in the Ready that carries it: it must not be applied (and
  // its caller answered) before that Ready's write, however slow the disk.
  const save = Object.getOwnPropertyDescriptor(RaftWal.prototype, 'save')?.value as RaftWal['save'];
  let written = 0;
  RaftWal.prototype.save = async function (this: RaftWal, ...args: Parameters<RaftWal['save']>) {
    await sleep(30);
    await save.apply(this, args);
    written += args[0].length;
  };
  t.after(() => {
    RaftWal.prototype.save = save;
  });
  for (let i = 0; i < 3; i++) {
    const before = written;
    await node.put(`/durable/${i}`, Buffer.from('x'));
    assert.ok(written > before, `write ${i} answered before its entry was written`);
  }
});

test('a proposal that cannot commit times out (one timer serves every pending deadline)', async (t) => {
  const net = new LocalNetwork();
  const members = new Map([
    [1, 'n1'],
    [2, 'n2'],
    [3, 'n3'],
  ]);
  const open = (id: number): Promise<MetaNode> =>
    MetaNode.open({
      nodeId: id,
      dir: tmp(t),
      log,
      registry: new Registry(),
      transport: net.transport(id),
      address: `n${id}`,
      initialMembers: members,
      sessionGroups: 1,
      offsetGroups: 1,
      tickMs: 10,
      // A cut-off leader steps down after an election timeout (300–600 ms), well after the proposal's.
      electionTick: 30,
      proposalTimeoutMs: 100,
    });
  const nodes = await Promise.all([open(1), open(2), open(3)]);
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  await until(() => nodes.every((n) => n.isReady()), 'leaders on every node');
  const leader = nodes.find((n) => n.group(0).isLeader) as MetaNode;
  net.isolate(leader.nodeId);
  // A proposal with a longer timeout, made first, must not hold back the shorter one's.
  const long = leader.group(0).propose({ op: 'put', key: '/long', value: Buffer.from('x') }, 5000);
  long.catch(() => undefined);
  const t0 = performance.now();
  await assert.rejects(leader.put('/lost', Buffer.from('x')), (err: Error & { code?: string }) => err.code === 'ERR_TIMEOUT');
  const took = performance.now() - t0;
  assert.ok(took >= 95 && took < 300, `timed out after ${took.toFixed(0)} ms`);
});

test('leases: keys vanish when a lease expires, keep-alive holds them', async (t) => {
  const node = await openSingle(tmp(t));
  t.after(() => node.close());
  await until(() => node.isReady(), 'leaders');
  const short = await node.leaseGrant(150);
  const kept = await node.leaseGrant(150);
  await node.put('/brokers/1', Buffer.from('a'), { lease: short.id });
  await node.put('/brokers/2', Buffer.from('b'), { lease: kept.id });
  const end = Date.now() + 500;
  while (Date.now() < end) {
    await node.leaseKeepAlive(kept.id);
    await sleep(40);
  }
  assert.equal(await node.get('/brokers/1'), undefined, 'expired lease took its key');
  assert.equal((await node.get('/brokers/2'))?.value.toString(), 'b');
  await assert.rejects(node.leaseKeepAlive(short.id), (e: Error & { code?: string }) => e.code === 'ERR_LEASE_NOT_FOUND');
});

test('watch delivers changes in order and resumes from a revision', async (t) => {
  const node = await openSingle(tmp(t));
  t.after(() => node.close());
  await until(() => node.isReady(), 'leaders');
  const seen: WatchBatch[] = [];
  const cancel = node.watch('/streams/', prefixEnd('/streams/'), {}, (b) => seen.push(b));
  const r1 = await node.put('/streams/s1', Buffer.from('1'));
  await node.put('/other', Buffer.from('x'));
  await node.delete('/streams/s1');
  await until(() => seen.length === 2, 'two events');
  assert.deepEqual(
    seen.map((b) => b.events.map((e) => `${e.type}:${e.kv.key}`)),
    [['put:/streams/s1'], ['delete:/streams/s1']],
  );
  cancel();
  const replay: string[] = [];
  node.watch('/streams/', prefixEnd('/streams/'), { startRevision: r1.revision }, (b) => replay.push(...b.events.map((e) => e.type)));
  assert.deepEqual(replay, ['put', 'delete']);
});

test('three nodes: writes through any node, a leader loss elects a new leader, membership changes', async (t) => {
  const net = new LocalNetwork();
  const dirs = [tmp(t), tmp(t), tmp(t), tmp(t)];
  const members = new Map([
    [1, 'n1'],
    [2, 'n2'],
    [3, 'n3'],
  ]);
  const open = (id: number, join = false): Promise<MetaNode> =>
    MetaNode.open({
      nodeId: id,
      dir: dirs[id - 1] as string,
      log,
      registry: new Registry(),
      transport: net.transport(id),
      address: `n${id}`,
      ...(join ? { join: true } : { initialMembers: members }),
      sessionGroups: 1,
      offsetGroups: 1,
      tickMs: 10,
      electionTick: 10,
    });
  const nodes = await Promise.all([open(1), open(2), open(3)]);
  t.after(() => Promise.all(nodes.map((n) => n.close())));
  await until(() => nodes.every((n) => n.isReady()), 'leaders on every node');
  const leaderId = nodes[0]!.group(0).leader;
  const follower = nodes.find((n) => n.nodeId !== leaderId) as MetaNode;
  await follower.put('/via/follower', Buffer.from('ok'));
  for (const n of nodes) assert.equal((await n.get('/via/follower'))?.value.toString(), 'ok', `node ${n.nodeId} reads it`);

  // isolate the leader of group 0: the others elect a new one and keep serving
  net.isolate(leaderId);
  const rest = nodes.filter((n) => n.nodeId !== leaderId);
  await until(() => rest.every((n) => n.group(0).leader !== 0 && n.group(0).leader !== leaderId), 'new leader', 8000);
  await rest[0]!.put('/after/partition', Buffer.from('v'));
  net.heal();
  const old = nodes.find((n) => n.nodeId === leaderId) as MetaNode;
  await until(() => old.group(0).kv.range('/after/partition').count === 1, 'old leader catches up', 8000);

  // add node 4 as a learner, promote it, remove node 3
  const n4 = await open(4, true);
  nodes.push(n4);
  // any voter takes membership requests: it gathers the groups' leadership first
  const admin = rest[0] as MetaNode;
  const lead = (): MetaNode => admin;
  await lead().addLearner(4, 'n4');
  await until(() => n4.group(0).kv.range('/via/follower').count === 1, 'learner catches up', 8000);
  await until(
    () => {
      const st = lead().group(0).status();
      return (st.progress.get(4)?.match ?? 0) >= st.commit;
    },
    'learner match',
    8000,
  );
  await lead().promote(4);
  const status = await lead().status();
  for (const g of status.groups) assert.ok(g.voters.includes(4), `node 4 votes in group ${g.group}`);
  assert.ok(status.members.some((m) => m.id === 4 && m.address === 'n4'));
  const victim = nodes.find((n) => n.nodeId !== lead().nodeId && n.nodeId !== 4) as MetaNode;
  await lead().removeMember(victim.nodeId);
  const after = await lead().status();
  for (const g of after.groups) assert.ok(!g.voters.includes(victim.nodeId), `node ${victim.nodeId} removed from group ${g.group}`);
  await lead().put('/after/membership', Buffer.from('done'));
  assert.equal((await n4.get('/after/membership'))?.value.toString(), 'done');
});
