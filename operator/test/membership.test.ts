import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterObject, NS, startEnv, waitFor, type Env } from './harness.js';

const voters = (env: Env, c: string) =>
  ((env.cluster(c)?.status as { meta?: { voters: { nodeId: number }[] } })?.meta?.voters ?? []).map((v) => v.nodeId);
const setMetaReplicas = (env: Env, c: string, n: number) => {
  const cr = env.cluster(c)!;
  env.api.put({ ...cr, spec: { ...(cr.spec as object), meta: { ...(cr.spec as { meta: object }).meta, replicas: n } } }, 'kubectl');
};
const stsReplicas = (env: Env, c: string) =>
  (env.api.get('apps/v1', 'StatefulSet', NS, `${c}-meta`)!.spec as { replicas: number }).replicas;

test('meta 3 → 5: learner then promote, one at a time; 5 → 3: leader moved, voter removed before the StatefulSet shrinks', async (t) => {
  const env = await startEnv('m');
  t.after(() => env.close());
  await env.startOperator();
  env.api.put(clusterObject('m'), 'kubectl');
  await waitFor('Ready', () => env.condition('m', 'Ready')?.status === 'True', 20_000);

  setMetaReplicas(env, 'm', 5);
  await waitFor('5 voters', () => voters(env, 'm').length === 5 && env.condition('m', 'Ready')?.status === 'True', 20_000);
  const up = env.meta.changes.map((c) => `${c.op}:${c.id}`);
  assert.deepEqual(up, ['AddLearner:4', 'Promote:4', 'AddLearner:5', 'Promote:5']);
  assert.equal(env.condition('m', 'MetaMembershipSynced')?.status, 'True');

  // Scale down with node 5 leading: leadership moves first, 5 then 4 leave, the StatefulSet
  // never drops a pod that is still a member.
  env.meta.leader = 5;
  let shrunkWhileMember = false;
  const listener = (ev: { object: { kind: string; metadata: { name: string }; spec?: { replicas?: number } } }) => {
    if (ev.object.kind !== 'StatefulSet' || ev.object.metadata.name !== 'm-meta') return;
    const members = [...env.meta.voters, ...env.meta.learners];
    if (members.some((id) => id > ev.object.spec!.replicas!)) shrunkWhileMember = true;
  };
  env.api.on('event', listener as never);
  const before = env.meta.changes.length;
  setMetaReplicas(env, 'm', 3);
  await waitFor(
    '3 voters, 3 pods',
    () => voters(env, 'm').join() === '1,2,3' && stsReplicas(env, 'm') === 3 && env.condition('m', 'Ready')?.status === 'True',
    20_000,
  );
  env.api.off('event', listener as never);
  assert.equal(shrunkWhileMember, false, 'StatefulSet shrank below a Raft member');
  assert.deepEqual(
    env.meta.changes.slice(before).map((c) => `${c.op}:${c.id}`),
    ['TransferLeader:1', 'Remove:5', 'Remove:4'],
  );
  await waitFor(
    'PVCs of removed nodes deleted',
    () =>
      !env.api.get('v1', 'PersistentVolumeClaim', NS, 'data-m-meta-5') && !env.api.get('v1', 'PersistentVolumeClaim', NS, 'data-m-meta-4'),
  );
  const events = env.api.list('v1', 'Event', NS).map((e) => e.reason as string);
  for (const r of ['AddLearner', 'Promote', 'RemoveVoter', 'TransferLeader']) assert.ok(events.includes(r), `event ${r}`);
});

test('a scale-down that would lose quorum is refused with a condition and an Event, then proceeds once safe', async (t) => {
  const env = await startEnv('q');
  t.after(() => env.close());
  await env.startOperator();
  env.api.put(clusterObject('q', { meta: { replicas: 5 } }), 'kubectl');
  await waitFor('5 voters', () => voters(env, 'q').length === 5 && env.condition('q', 'Ready')?.status === 'True', 20_000);
  // Two voters are down: removing node 5 would leave 2 caught-up of 4.
  env.mocks.setHealthy(NS, 'q-meta-1', false);
  env.mocks.setHealthy(NS, 'q-meta-2', false);
  setMetaReplicas(env, 'q', 3);
  const cond = await waitFor('refusal', () => {
    const c = env.condition('q', 'MetaMembershipSynced');
    return c?.reason === 'ScaleDownUnsafe' ? c : undefined;
  });
  assert.equal(cond.status, 'False');
  assert.match(cond.message, /removing voter 5 would leave 2 caught-up of 4 voters/);
  assert.equal(stsReplicas(env, 'q'), 5, 'StatefulSet untouched');
  assert.deepEqual(env.meta.voters, [1, 2, 3, 4, 5]);
  assert.ok(env.api.list('v1', 'Event', NS).some((e) => e.reason === 'ScaleDownUnsafe' && e.type === 'Warning'));
  // Healthy again → the scale-down proceeds.
  env.mocks.setHealthy(NS, 'q-meta-1', true);
  env.mocks.setHealthy(NS, 'q-meta-2', true);
  await waitFor('3 voters', () => voters(env, 'q').join() === '1,2,3' && stsReplicas(env, 'q') === 3, 20_000);
});

test('an operator killed between two membership steps resumes from the live membership; a standby takes over the Lease', async (t) => {
  const env = await startEnv('k', { catchUpMs: 400 });
  t.after(() => env.close());
  const first = await env.startOperator('op-a');
  const standby = await env.startOperator('op-b');
  env.api.put(clusterObject('k'), 'kubectl');
  await waitFor('Ready', () => env.condition('k', 'Ready')?.status === 'True', 20_000);
  assert.equal(first.elector.isLeader, true);
  assert.equal(standby.elector.isLeader, false);
  setMetaReplicas(env, 'k', 5);
  await waitFor('learner 4 added', () => env.meta.learners.includes(4));
  await first.stop(); // releases the Lease mid-change: node 4 is a learner, not yet promoted
  await waitFor('standby leads', () => standby.elector.isLeader);
  await waitFor('5 voters', () => voters(env, 'k').length === 5 && env.condition('k', 'Ready')?.status === 'True', 20_000);
  assert.deepEqual(
    env.meta.changes.map((c) => `${c.op}:${c.id}`),
    ['AddLearner:4', 'Promote:4', 'AddLearner:5', 'Promote:5'],
  );
  const lease = env.api.get('coordination.k8s.io/v1', 'Lease', NS, 'robustmq-operator')!;
  assert.equal((lease.spec as { holderIdentity: string }).holderIdentity, 'op-b');
});

test('a replaced disk (same ordinal, new PVC) is removed and added back; a restarted pod is not re-added', async (t) => {
  const env = await startEnv('d');
  t.after(() => env.close());
  await env.startOperator();
  env.api.put(clusterObject('d'), 'kubectl');
  await waitFor('Ready', () => env.condition('d', 'Ready')?.status === 'True', 20_000);
  // Restart: delete pod 2; it comes back with the same PVC and stays a voter without changes.
  env.api.remove('v1', 'Pod', NS, 'd-meta-2');
  await waitFor('pod back', () => env.api.get('v1', 'Pod', NS, 'd-meta-2')?.status !== undefined);
  await waitFor('Ready again', () => env.condition('d', 'Ready')?.status === 'True');
  assert.deepEqual(env.meta.changes, []);
  // Disk replaced: the PVC goes (new UID when recreated) and the pod restarts empty.
  env.api.remove('v1', 'PersistentVolumeClaim', NS, 'data-d-meta-3');
  env.api.remove('v1', 'Pod', NS, 'd-meta-3');
  env.meta.forget(3);
  await waitFor('re-added', () => env.meta.changes.map((c) => `${c.op}:${c.id}`).join() === 'Remove:3,AddLearner:3,Promote:3', 20_000);
  await waitFor('Ready', () => env.condition('d', 'Ready')?.status === 'True');
});

test('rolling meta after a template change: followers first, leader last after a transfer; the leader pod deleted mid-roll', async (t) => {
  const env = await startEnv('r');
  t.after(() => env.close());
  await env.startOperator();
  env.api.put(clusterObject('r'), 'kubectl');
  await waitFor('Ready', () => env.condition('r', 'Ready')?.status === 'True', 20_000);
  const deleted: string[] = [];
  const listener = (ev: { type: string; object: { kind: string; metadata: { name: string } } }) => {
    if (ev.type === 'DELETED' && ev.object.kind === 'Pod' && ev.object.metadata.name.startsWith('r-meta-'))
      deleted.push(ev.object.metadata.name);
  };
  env.api.on('event', listener as never);
  const cr = env.cluster('r')!;
  env.api.put({ ...cr, spec: { ...(cr.spec as object), config: { meta: { tickMs: 40 } } } }, 'kubectl');
  await waitFor('first pod rolled', () => deleted.length >= 1);
  // Chaos: the leader pod dies mid-roll (a crash, not the operator).
  env.api.remove('v1', 'Pod', NS, 'r-meta-1');
  await waitFor(
    'all pods on the new revision and Ready',
    () => {
      const sts = env.api.get('apps/v1', 'StatefulSet', NS, 'r-meta')!;
      const st = sts.status as { updatedReplicas: number; replicas: number };
      return (
        st.updatedReplicas === 3 && env.condition('r', 'Ready')?.status === 'True' && env.condition('r', 'Ready')?.observedGeneration === 2
      );
    },
    20_000,
  );
  env.api.off('event', listener as never);
  assert.equal(deleted[0], 'r-meta-3', 'highest follower first');
  assert.deepEqual(env.meta.voters, [1, 2, 3]);
});
