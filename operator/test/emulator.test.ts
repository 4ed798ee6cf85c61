import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubernetesObjectApi, PatchStrategy, type KubernetesObject } from '@kubernetes/client-node';
import { Resources, ResilientInformer } from '../src/informers.js';
import { ApiServer, MockControllers, type KObj } from '../src/testing/index.js';
import { robustMQClusterCrd } from '../src/api/crd.js';
import { kubeConfig, log, NS, waitFor } from './harness.js';

const run = promisify(execFile);
const KUBECTL = new URL('../../../.tools/kubectl/kubectl', import.meta.url).pathname;
const cm = (
  name: string,
  data: Record<string, string>,
  labels: Record<string, string> = {},
): KubernetesObject & { data: Record<string, string> } => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: NS, labels },
  data,
});

test('informer: relists after 410 Gone and resumes after dropped watches (real client-node)', async (t) => {
  const api = new ApiServer();
  await api.start();
  t.after(() => api.stop());
  const inf = new ResilientInformer<KubernetesObject>({
    kc: kubeConfig(api),
    type: Resources.configmaps,
    namespace: NS,
    labelSelector: 'app=x',
    log,
  });
  t.after(() => inf.stop());
  await inf.start();
  await inf.synced();
  api.put(cm('a', { v: '1' }, { app: 'x' }) as unknown as KObj);
  api.put(cm('other', { v: '1' }, { app: 'y' }) as unknown as KObj);
  await waitFor('a seen', () => inf.get('a', NS));
  assert.equal(inf.get('other', NS), undefined, 'label selector honoured');
  // Dropped watch: resumes from its resourceVersion, no relist.
  const lists = () =>
    api.requests.filter((r) => r.startsWith('GET /api/v1/namespaces/rmq-test/configmaps?') && !r.includes('watch=true')).length;
  const listsBefore = lists();
  api.dropWatches();
  api.put(cm('b', { v: '1' }, { app: 'x' }) as unknown as KObj);
  await waitFor('b seen after resume', () => inf.get('b', NS));
  assert.equal(lists(), listsBefore);
  // 410: history compacted while the watch is down → ERROR 410 → relist; a deletion missed meanwhile is noticed.
  const deleted: string[] = [];
  inf.on('delete', (o) => deleted.push(o.metadata!.name!));
  api.dropWatches();
  api.remove('v1', 'ConfigMap', NS, 'a');
  api.compact();
  await waitFor('relisted', () => lists() > listsBefore && inf.get('a', NS) === undefined);
  assert.deepEqual(deleted, ['a']);
  // A 500 on the watch: the informer is restarted with backoff.
  api.failNext(/^GET \/api\/v1\/namespaces\/rmq-test\/configmaps$/, 500, 2);
  api.dropWatches();
  api.put(cm('c', { v: '1' }, { app: 'x' }) as unknown as KObj);
  await waitFor('c seen after restart', () => inf.get('c', NS), 10_000);
});

test('server-side apply: field managers, conflicts, force, removed fields, status and scale subresources, finalizers, GC, eviction', async (t) => {
  const api = new ApiServer();
  await api.start();
  t.after(() => api.stop());
  const mocks = new MockControllers(api, { podStartMs: 5 });
  t.after(() => mocks.stop());
  const objects = KubernetesObjectApi.makeApiClient(kubeConfig(api));
  const apply = (o: KubernetesObject, manager: string, force = false) =>
    objects.patch(o, undefined, undefined, manager, force, PatchStrategy.ServerSideApply);

  await apply(cm('x', { a: '1', b: '2' }), 'alice');
  await assert.rejects(apply(cm('x', { a: 'changed' }), 'bob'), (e: { code: number }) => e.code === 409);
  await apply(cm('x', { a: 'changed' }), 'bob', true);
  const x = api.get('v1', 'ConfigMap', NS, 'x')!;
  assert.deepEqual(x.data, { a: 'changed', b: '2' });
  // alice stops applying b → it is removed (nobody else owns it).
  await apply(cm('x', {}), 'alice');
  assert.deepEqual(api.get('v1', 'ConfigMap', NS, 'x')!.data, { a: 'changed' });
  // Removing replicas that only we own resets it to the default: the HPA trap.
  const dep = (replicas?: number) => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'd', namespace: NS },
    spec: {
      ...(replicas !== undefined ? { replicas } : {}),
      selector: { matchLabels: { app: 'd' } },
      template: { metadata: { labels: { app: 'd' } }, spec: { containers: [{ name: 'c', image: 'i' }] } },
    },
  });
  await apply(dep(4), 'op');
  await apply(dep(), 'op');
  assert.equal((api.get('apps/v1', 'Deployment', NS, 'd')!.spec as { replicas: number }).replicas, 1);
  // …unless another manager (the HPA via /scale) owns it.
  api.scale('apps/v1', 'Deployment', NS, 'd', 3, 'horizontal-pod-autoscaler');
  await apply(dep(), 'op');
  assert.equal((api.get('apps/v1', 'Deployment', NS, 'd')!.spec as { replicas: number }).replicas, 3);
  // Stale update → 409; generation moves on spec changes only.
  const stale = await objects.read({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd', namespace: NS } });
  const gen = stale.metadata!.generation!;
  api.put({
    ...api.get('apps/v1', 'Deployment', NS, 'd')!,
    metadata: { ...api.get('apps/v1', 'Deployment', NS, 'd')!.metadata, labels: { l: '1' } },
  });
  assert.equal(api.get('apps/v1', 'Deployment', NS, 'd')!.metadata.generation, gen);
  await assert.rejects(objects.replace(stale), (e: { code: number }) => e.code === 409);

  // CRD → discovery → custom resource with status subresource and finalizer.
  api.put(robustMQClusterCrd() as unknown as unknown as KObj);
  const crObj = {
    apiVersion: 'robustmq.io/v1alpha1',
    kind: 'RobustMQCluster',
    metadata: { name: 'c', namespace: NS, finalizers: ['robustmq.io/finalizer'] },
    spec: { meta: { replicas: 3 } },
  };
  await apply(crObj as KubernetesObject, 'kubectl', true);
  await apply({ ...crObj, status: { clusterId: 'zzz' } } as KubernetesObject, 'kubectl', true);
  assert.equal(api.get('robustmq.io/v1alpha1', 'RobustMQCluster', NS, 'c')!.status, undefined, 'status ignored on the main resource');
  api.put(cm('child', { a: '1' }) as unknown as KObj);
  const owner = api.get('robustmq.io/v1alpha1', 'RobustMQCluster', NS, 'c')!;
  api.put({
    ...api.get('v1', 'ConfigMap', NS, 'child')!,
    metadata: {
      ...api.get('v1', 'ConfigMap', NS, 'child')!.metadata,
      ownerReferences: [{ apiVersion: owner.apiVersion, kind: owner.kind, name: 'c', uid: owner.metadata.uid }],
    },
  });
  await objects.delete({ apiVersion: 'robustmq.io/v1alpha1', kind: 'RobustMQCluster', metadata: { name: 'c', namespace: NS } });
  assert.ok(api.get('robustmq.io/v1alpha1', 'RobustMQCluster', NS, 'c')!.metadata.deletionTimestamp, 'finalizer holds it');
  assert.ok(api.get('v1', 'ConfigMap', NS, 'child'));
  await objects.patch(
    {
      apiVersion: 'robustmq.io/v1alpha1',
      kind: 'RobustMQCluster',
      metadata: { name: 'c', namespace: NS, finalizers: [] },
    } as KubernetesObject,
    undefined,
    undefined,
    'op',
    undefined,
    PatchStrategy.MergePatch,
  );
  assert.equal(api.get('robustmq.io/v1alpha1', 'RobustMQCluster', NS, 'c'), undefined);
  assert.equal(api.get('v1', 'ConfigMap', NS, 'child'), undefined, 'garbage collected');

  // Eviction honours PDBs.
  api.put({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'p', namespace: NS },
    spec: { maxUnavailable: 1, selector: { matchLabels: { app: 'd' } } },
  });
  await waitFor(
    '3 ready pods',
    () =>
      api
        .list('v1', 'Pod', NS)
        .filter((p) =>
          (p.status as { conditions?: { type: string; status: string }[] })?.conditions?.some(
            (c) => c.type === 'Ready' && c.status === 'True',
          ),
        ).length === 3,
  );
  const pods = api.list('v1', 'Pod', NS);
  mocks.setHealthy(NS, pods[0]!.metadata.name, false);
  await waitFor(
    'one unready',
    () =>
      api
        .list('v1', 'Pod', NS)
        .filter((p) =>
          (p.status as { conditions: { type: string; status: string }[] }).conditions.some(
            (c) => c.type === 'Ready' && c.status === 'False',
          ),
        ).length === 1,
  );
  const evict = (name: string) =>
    fetch(`${api.url}/api/v1/namespaces/${NS}/pods/${name}/eviction`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace: NS } }),
    });
  assert.equal((await evict(pods[1]!.metadata.name)).status, 429);
});

test(
  'kubectl apply --server-side and kubectl get work against the emulator',
  { skip: !existsSync(KUBECTL) && 'run `make tools` first' },
  async (t) => {
    const api = new ApiServer();
    await api.start();
    t.after(() => api.stop());
    const dir = await mkdtemp(join(tmpdir(), 'rmq-kubectl-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'kubeconfig'), api.kubeconfig(NS));
    await writeFile(join(dir, 'crd.json'), JSON.stringify(robustMQClusterCrd()));
    await writeFile(
      join(dir, 'cr.yaml'),
      'apiVersion: robustmq.io/v1alpha1\nkind: RobustMQCluster\nmetadata: {name: dev}\nspec: {meta: {replicas: 3}}\n',
    );
    const kubectl = (...args: string[]) =>
      run(KUBECTL, ['--kubeconfig', join(dir, 'kubeconfig'), '--cache-dir', join(dir, 'cache'), ...args], { timeout: 30_000 });
    await kubectl('apply', '--server-side', '--validate=false', '-f', join(dir, 'crd.json'));
    const r = await kubectl('apply', '--server-side', '--validate=false', '-f', join(dir, 'cr.yaml'));
    assert.match(r.stdout, /robustmqcluster.robustmq.io\/dev serverside-applied/);
    const got = JSON.parse((await kubectl('get', 'rmq', 'dev', '-o', 'json', '--show-managed-fields')).stdout) as KObj;
    assert.equal((got.spec as { meta: { replicas: number } }).meta.replicas, 3);
    assert.ok((got.metadata.managedFields as { manager: string }[]).some((m) => m.manager === 'kubectl'));
    const table = (await kubectl('get', 'robustmqclusters')).stdout;
    assert.match(table, /dev/);
  },
);
