import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments, parse } from 'yaml';
import { robustMQClusterCrd } from '../src/api/crd.js';
import { CHART_CRD_PATH, CRD_PATH } from '../src/render-crds.js';
import { crdValidator, validateBuiltin } from '../src/testing/validate.js';

const run = promisify(execFile);
const ROOT = new URL('../../../', import.meta.url).pathname;
const HELM = join(ROOT, '.tools/helm/helm');
const CHART = join(ROOT, 'charts/robustmq-operator');
const skip = !existsSync(HELM) && 'run `make tools` first';

async function helm(args: string[]): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'rmq-helm-'));
  try {
    const env = {
      ...process.env,
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
    };
    return (await run(HELM, args, { env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 })).stdout;
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

const valueFiles = async () => [undefined, ...(await readdir(join(CHART, 'ci'))).map((f) => join(CHART, 'ci', f))];

test('the CRD files are up to date with operator/src/api/crd.ts (npm run crds -w operator)', async () => {
  assert.deepEqual(parse(await readFile(CRD_PATH, 'utf8')), robustMQClusterCrd());
  const chartCopy = (await readFile(CHART_CRD_PATH, 'utf8')).replace(/^\{\{-.*\}\}$/gm, '');
  const parsed = parse(chartCopy) as { metadata: { annotations: Record<string, string> } };
  assert.equal(parsed.metadata.annotations['helm.sh/resource-policy'], 'keep');
  delete (parsed.metadata as { annotations?: unknown }).annotations;
  assert.deepEqual(parsed, robustMQClusterCrd());
});

test('helm lint --strict passes for every values file and fails on a bad value', { skip }, async () => {
  for (const f of await valueFiles()) await helm(['lint', '--strict', CHART, ...(f ? ['-f', f] : [])]);
  await assert.rejects(helm(['lint', '--strict', CHART, '--set', 'replicaCount=zero']));
  await assert.rejects(helm(['template', 'x', CHART, '--set', 'image.pullPolicy=Sometimes']));
});

test(
  'helm template output validates against the Kubernetes schemas; the example CRs against the CRD (schema + CEL)',
  { skip },
  async () => {
    const kinds = new Set<string>();
    for (const f of await valueFiles()) {
      const out = await helm(['template', 'rmq', CHART, '--namespace', 'robustmq-system', ...(f ? ['-f', f] : [])]);
      for (const d of parseAllDocuments(out)) {
        const doc = d.toJS() as { apiVersion: string; kind: string } | null;
        if (doc === null) continue;
        kinds.add(doc.kind);
        const r = await validateBuiltin(doc);
        if (r.unknown) assert.ok(['PodMonitor', 'PrometheusRule'].includes(doc.kind), `no schema for ${doc.kind}`);
        assert.deepEqual(r.errors, [], `${doc.kind} (${f ?? 'default values'})`);
      }
    }
    // RBAC: cert-manager Certificates (apply + delete), nothing broader.
    const out = await helm(['template', 'rmq', CHART, '--namespace', 'robustmq-system']);
    const role = parseAllDocuments(out)
      .map((d) => d.toJS() as { kind: string; rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[] } | null)
      .find((d) => d?.kind === 'ClusterRole')!;
    const cm = role.rules!.filter((r) => r.apiGroups.includes('cert-manager.io'));
    assert.deepEqual(cm, [{ apiGroups: ['cert-manager.io'], resources: ['certificates'], verbs: ['get', 'create', 'patch', 'delete'] }]);
    assert.ok(role.rules!.some((r) => r.resources.includes('secrets') && ['create', 'patch', 'update'].every((v) => r.verbs.includes(v))));
    for (const k of [
      'CustomResourceDefinition',
      'Deployment',
      'ServiceAccount',
      'ClusterRole',
      'Role',
      'RoleBinding',
      'ConfigMap',
      'PodMonitor',
      'PrometheusRule',
    ])
      assert.ok(kinds.has(k), k);
    const validate = crdValidator(robustMQClusterCrd() as never, 'v1alpha1');
    for (const f of await readdir(join(CHART, 'examples'))) {
      for (const d of parseAllDocuments(await readFile(join(CHART, 'examples', f), 'utf8'))) assert.deepEqual(validate(d.toJS()), [], f);
    }
  },
);

test('dashboard and alert rules use only metric names the code registers', async () => {
  const sources: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (['node_modules', 'dist', 'gen', 'testing'].includes(e.name) || e.name.endsWith('.test.ts')) continue;
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.endsWith('.ts')) sources.push(await readFile(p, 'utf8'));
    }
  };
  for (const ws of ['broker', 'meta', 'journal', 'server', 'common', 'operator'])
    if (existsSync(join(ROOT, ws, 'src'))) await walk(join(ROOT, ws, 'src'));
  const code = sources.join('\n').replace(/\$\{p\}/g, 'robustmq_operator_');
  const used = new Set<string>();
  for (const file of ['dashboards/robustmq.json', 'alerts/robustmq.rules.yaml'])
    for (const m of (await readFile(join(CHART, file), 'utf8')).matchAll(/robustmq_[a-z_]+/g))
      used.add(m[0].replace(/_(bucket|sum|count)$/, ''));
  assert.ok(used.size >= 10);
  for (const name of used)
    assert.ok(code.includes(`${name}'`) || code.includes(`${name}\``) || code.includes(`'${name}`), `${name} is not registered anywhere`);
});
