import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clusterObject, NS, startEnv, waitFor } from './harness.js';

test('a RobustMQCluster becomes Ready: every child object, status, SSA with one field manager', async (t) => {
  const env = await startEnv('prod');
  t.after(() => env.close());
  await env.startOperator();
  env.api.put(clusterObject('prod'), 'kubectl');

  await waitFor('Ready=True', () => env.condition('prod', 'Ready')?.status === 'True', 20_000);
  const { api } = env;
  const cr = env.cluster('prod')!;
  const st = cr.status as Record<string, never> & { meta: { voters: { nodeId: number }[]; leader: { nodeId: number } } };
  assert.equal(st.observedGeneration, cr.metadata.generation);
  assert.equal(st.clusterId, env.meta.clusterId);
  assert.deepEqual(
    st.meta.voters.map((v) => v.nodeId),
    [1, 2, 3],
  );
  assert.equal(st.meta.leader.nodeId, 1);
  for (const c of (cr.status as { conditions: { observedGeneration: number; type: string; status: string }[] }).conditions) {
    assert.equal(c.observedGeneration, cr.metadata.generation, c.type);
  }
  assert.deepEqual((cr.metadata.finalizers as string[]) ?? [], ['robustmq.io/finalizer']);

  // StatefulSets with headless Services, ordinals from 1, OnDelete, PVC templates.
  const metaSts = api.get('apps/v1', 'StatefulSet', NS, 'prod-meta')!;
  const ms = metaSts.spec as Record<string, never> & { template: { spec: { readinessGates: unknown[] } } };
  assert.equal(ms.replicas, 3);
  assert.deepEqual(ms.ordinals, { start: 1 });
  assert.deepEqual(ms.updateStrategy, { type: 'OnDelete' });
  assert.equal(ms.serviceName, 'prod-meta-headless');
  assert.deepEqual(ms.template.spec.readinessGates, [{ conditionType: 'robustmq.io/raft-voter' }]);
  const headless = api.get('v1', 'Service', NS, 'prod-meta-headless')!.spec as { clusterIP: string; publishNotReadyAddresses: boolean };
  assert.equal(headless.clusterIP, 'None');
  assert.equal(headless.publishNotReadyAddresses, true);
  assert.ok(api.get('v1', 'Service', NS, 'prod-journal-headless'));
  assert.ok(api.get('apps/v1', 'StatefulSet', NS, 'prod-journal'));
  for (const pvc of ['data-prod-meta-1', 'data-prod-meta-2', 'data-prod-meta-3', 'data-prod-journal-1', 'data-prod-journal-2'])
    assert.ok(api.get('v1', 'PersistentVolumeClaim', NS, pvc), pvc);
  // PDBs, broker Deployment + HPA, client Services per listener, ConfigMaps, Secret.
  assert.equal((api.get('policy/v1', 'PodDisruptionBudget', NS, 'prod-meta')!.spec as { maxUnavailable: number }).maxUnavailable, 1);
  assert.equal((api.get('policy/v1', 'PodDisruptionBudget', NS, 'prod-broker')!.spec as { maxUnavailable: string }).maxUnavailable, '25%');
  const hpa = api.get('autoscaling/v2', 'HorizontalPodAutoscaler', NS, 'prod-broker')!;
  assert.equal((hpa.spec as { minReplicas: number }).minReplicas, 2);
  const dep = api.get('apps/v1', 'Deployment', NS, 'prod-broker')!;
  assert.equal((dep.spec as { replicas: number }).replicas, 2, 'seeded with minReplicas');
  const internal = api.get('v1', 'Service', NS, 'prod-broker')!.spec as { ports: { name: string }[] };
  assert.deepEqual(
    internal.ports.map((p) => p.name),
    ['mqtt', 'kafka', 'http'],
  );
  assert.equal((api.get('v1', 'Service', NS, 'prod-mqtts')!.spec as { type: string }).type, 'LoadBalancer');
  assert.ok(api.get('v1', 'ConfigMap', NS, 'prod-config'));
  const boot = api.get('v1', 'ConfigMap', NS, 'prod-meta-bootstrap')!.data as Record<string, string>;
  assert.equal(boot.mode, 'join', 'after bootstrap, empty disks join');
  assert.match(boot.peers ?? '', /^1=prod-meta-1\.prod-meta-headless\.rmq-test\.svc:1228,2=/);
  const token = Buffer.from((api.get('v1', 'Secret', NS, 'prod-admin')!.data as Record<string, string>).token!, 'base64').toString();
  assert.ok(token.length >= 24);
  assert.ok(env.meta.requests > 0);
  assert.equal(env.meta.unauthorized, 0, 'every admin request carried the bearer token');

  // One field manager for everything the operator applies; replicas of the broker owned by the seed manager.
  const managers = (o: { metadata: Record<string, unknown> }) =>
    (o.metadata.managedFields as { manager: string; operation: string }[]).filter((m) => m.operation === 'Apply').map((m) => m.manager);
  assert.deepEqual(managers(metaSts), ['robustmq-operator']);
  assert.deepEqual(managers(dep).sort(), ['robustmq-operator', 'robustmq-operator-seed']);
  // Meta pods carry the voter readiness gate as True.
  const pod = api.get('v1', 'Pod', NS, 'prod-meta-2')!;
  assert.ok(
    (pod.status as { conditions: { type: string; status: string }[] }).conditions.some(
      (c) => c.type === 'robustmq.io/raft-voter' && c.status === 'True',
    ),
  );

  // The token is stable across reconciles (never regenerated).
  await waitFor('second pass', () => env.api.requests.filter((r) => r.includes('prod-admin')).length >= 2);
  const token2 = Buffer.from((api.get('v1', 'Secret', NS, 'prod-admin')!.data as Record<string, string>).token!, 'base64').toString();
  assert.equal(token2, token);
});

test('the HPA scales brokers while the operator keeps applying: no flapping; pause and deletion', async (t) => {
  const env = await startEnv('hpa');
  t.after(() => env.close());
  await env.startOperator();
  env.api.put(clusterObject('hpa'), 'kubectl');
  await waitFor('Ready', () => env.condition('hpa', 'Ready')?.status === 'True', 20_000);
  env.mocks.setHpaMetric(NS, 'hpa-broker', 5);
  await waitFor('5 brokers', () => (env.api.get('apps/v1', 'Deployment', NS, 'hpa-broker')!.spec as { replicas: number }).replicas === 5);
  // Change the spec (new generation) so the operator re-applies the Deployment; replicas must stay.
  const cr = env.cluster('hpa')!;
  env.api.put({ ...cr, spec: { ...(cr.spec as object), config: { logLevel: 'debug' } } }, 'kubectl');
  await waitFor('reconciled gen 2', () => env.condition('hpa', 'Reconciled')?.observedGeneration === 2);
  const seen = new Set<number>();
  const listener = (ev: { object: { kind: string; metadata: { name: string }; spec?: { replicas?: number } } }) => {
    if (ev.object.kind === 'Deployment' && ev.object.metadata.name === 'hpa-broker') seen.add(ev.object.spec!.replicas!);
  };
  env.api.on('event', listener as never);
  await new Promise((r) => setTimeout(r, 600));
  env.api.off('event', listener as never);
  assert.equal((env.api.get('apps/v1', 'Deployment', NS, 'hpa-broker')!.spec as { replicas: number }).replicas, 5);
  assert.deepEqual(
    [...seen].filter((r) => r !== 5),
    [],
    'replicas never reset by the operator',
  );
  const tmpl = (
    env.api.get('apps/v1', 'Deployment', NS, 'hpa-broker')!.spec as { template: { metadata: { annotations: Record<string, string> } } }
  ).template;
  assert.ok(tmpl.metadata.annotations['robustmq.io/config-hash']);

  // Pause: Paused=True, Ready=False, nothing applied.
  const c2 = env.cluster('hpa')!;
  env.api.put({ ...c2, metadata: { ...c2.metadata, annotations: { 'robustmq.io/pause-reconciliation': 'true' } } }, 'kubectl');
  await waitFor('Paused', () => env.condition('hpa', 'Paused')?.status === 'True');
  assert.equal(env.condition('hpa', 'Ready')?.reason, 'Paused');

  // Deletion: finalizer removed by the operator, children garbage-collected.
  env.api.remove('robustmq.io/v1alpha1', 'RobustMQCluster', NS, 'hpa');
  await waitFor('CR gone', () => env.cluster('hpa') === undefined);
  await waitFor(
    'children gone',
    () => env.api.list('apps/v1', 'StatefulSet', NS).length === 0 && env.api.list('v1', 'Pod', NS).length === 0,
  );
});
