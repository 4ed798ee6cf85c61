import { test } from 'node:test';
import assert from 'node:assert/strict';
import { robustMQClusterCrd } from './api/crd.js';
import { validateSpec, withDefaults } from './api/defaults.js';
import type { RobustMQCluster } from './api/types.js';
import { desiredObjects, bootstrapPeers, serverCertNames, type DesiredInputs } from './manifests.js';
import { sanList } from './certificates.js';
import { certificateCrd } from './testing/cert-manager.js';
import { crdValidator, validateBuiltin } from './testing/validate.js';

const cr = (spec: Record<string, unknown> = {}): RobustMQCluster => ({
  apiVersion: 'robustmq.io/v1alpha1',
  kind: 'RobustMQCluster',
  metadata: { name: 'prod', namespace: 'ns', uid: 'u-1', generation: 1 },
  spec: spec as never,
});
const inputs: DesiredInputs = {
  metaReplicas: 3,
  journalReplicas: 3,
  bootstrapMode: 'bootstrap',
  clusterId: 'c-1',
  adminToken: 't',
  operatorVersion: '0.1.0',
};
const full = {
  listeners: [
    { name: 'mqtt', protocol: 'mqtt', port: 1883 },
    { name: 'mqtts', protocol: 'mqtt', port: 8883, tls: true, type: 'loadbalancer' },
    { name: 'ws', protocol: 'mqtt-ws', port: 8083, type: 'nodeport' },
    { name: 'kafka', protocol: 'kafka', port: 9092 },
  ],
  tls: { secretName: 'tls' },
  broker: { autoscaling: { enabled: false }, replicas: 4 },
  meta: { template: { nodeSelector: { disk: 'ssd' } }, resources: { requests: { cpu: '500m' } } },
  metrics: { podMonitor: { enabled: true } },
  overrides: { broker: { metadata: { annotations: { a: 'b' } } }, services: { metadata: { annotations: { lb: 'x' } } } },
};

type PodSpecT = {
  volumes: { name: string; secret?: { secretName: string; items?: unknown[] } }[];
  containers: { env: { name: string; value?: string }[] }[];
};
const b64 = (s: string) => Buffer.from(s).toString('base64');
/** The three TLS modes' inputs as the reconciler hands them over. */
const tlsCases = (c: RobustMQCluster): [Record<string, unknown>, DesiredInputs][] => [
  [{}, inputs],
  [full, inputs],
  [
    {
      ...full,
      tls: {},
      listeners: [...full.listeners, { name: 'mtls', protocol: 'kafka', port: 9093, tls: true, authentication: { type: 'tls' } }],
    },
    {
      ...inputs,
      tls: {
        mode: 'generated',
        mountSecret: 'prod-broker-tls',
        secrets: [
          { name: 'prod-cluster-ca', type: 'Opaque', data: { 'ca.crt': b64('c'), 'ca.key': b64('k') } },
          { name: 'prod-clients-ca', type: 'Opaque', data: { 'ca.crt': b64('c'), 'ca.key': b64('k') } },
          { name: 'prod-broker-tls', type: 'kubernetes.io/tls', data: { 'tls.crt': b64('c'), 'tls.key': b64('k'), 'ca.crt': b64('c') } },
        ],
      },
    },
  ],
  [
    { ...full, tls: { issuerRef: { name: 'le', kind: 'ClusterIssuer' } } },
    {
      ...inputs,
      tls: {
        mode: 'cert-manager',
        mountSecret: 'prod-broker-tls',
        certificateSans: sanList([...serverCertNames(c, withDefaults({ ...full, tls: {} })), '203.0.113.1']),
      },
    },
  ],
];

test('every generated object validates against the Kubernetes schemas (Secrets, and the cert-manager Certificate against its CRD)', async () => {
  const certificate = crdValidator(certificateCrd() as never, 'v1');
  for (const [spec, inp] of tlsCases(cr(full))) {
    const c = cr(spec);
    const objs = desiredObjects(c, withDefaults(c.spec), inp, bootstrapPeers(c, 3));
    const kinds = new Set<string>();
    for (const o of objs) {
      if (o.kind === 'Certificate') {
        assert.deepEqual(certificate(o), [], 'Certificate');
        const cs = (o as unknown as { spec: { dnsNames: string[]; ipAddresses: string[] } }).spec;
        assert.ok(cs.dnsNames.includes('prod-mqtts.ns.svc.cluster.local'));
        assert.deepEqual(cs.ipAddresses, ['203.0.113.1']);
        kinds.add(o.kind);
        continue;
      }
      const r = await validateBuiltin(o as never);
      if (r.unknown) assert.equal(o.kind, 'PodMonitor', `no schema for ${o.kind}`);
      assert.deepEqual(r.errors, [], `${o.kind}/${o.metadata.name}`);
      kinds.add(o.kind);
      assert.equal((o.metadata.ownerReferences as { uid: string }[])[0]!.uid, 'u-1');
      assert.equal(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'robustmq-operator');
    }
    for (const k of ['StatefulSet', 'Deployment', 'Service', 'ConfigMap', 'Secret', 'PodDisruptionBudget']) assert.ok(kinds.has(k), k);
    const tls = inp.tls;
    if (tls?.mode === 'cert-manager') assert.ok(kinds.has('Certificate'));
    if (tls?.mode === 'generated') {
      const secrets = objs.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name);
      assert.deepEqual(secrets, ['prod-admin', 'prod-cluster-ca', 'prod-clients-ca', 'prod-broker-tls']);
      const pod = (objs.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: PodSpecT } } }).spec.template.spec;
      assert.ok(pod.volumes.some((v) => v.name === 'tls' && v.secret?.secretName === 'prod-broker-tls'));
      // Certificate authentication: the clients CA certificate (never its key) checks client certificates.
      assert.deepEqual(pod.volumes.find((v) => v.name === 'clients-ca')?.secret?.items, [{ key: 'ca.crt', path: 'ca.crt' }]);
      const env = Object.fromEntries(pod.containers[0]!.env.map((e) => [e.name, e.value]));
      assert.equal(env.ROBUSTMQ_TLS_CA_FILE, '/etc/robustmq/clients-ca/ca.crt');
      assert.equal(env.ROBUSTMQ_KAFKA_TLS_PORT, '9093');
    }
  }
  // The validator does catch mistakes.
  const bad = await validateBuiltin({
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'x' },
    spec: { replicas: 'three', template: {} },
  });
  assert.ok(bad.errors.length > 0);
});

test('builders: autoscaled brokers carry no replicas, listener ports map to server variables, overrides merge', () => {
  const c = cr(full);
  const objs = desiredObjects(c, withDefaults(c.spec), inputs, bootstrapPeers(c, 3));
  const dep = objs.find((o) => o.kind === 'Deployment')! as unknown as {
    spec: { replicas?: number; template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } };
    metadata: { annotations?: Record<string, string> };
  };
  assert.equal(dep.spec.replicas, 4, 'autoscaling off → replicas from the spec');
  assert.equal(dep.metadata.annotations?.a, 'b');
  const env = Object.fromEntries(
    dep.spec.template.spec.containers[0]!.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]),
  );
  assert.equal(env.ROBUSTMQ_MQTT_PORT, '1883');
  assert.equal(env.ROBUSTMQ_MQTTS_PORT, '8883');
  assert.equal(env.ROBUSTMQ_WS_PORT, '8083');
  assert.equal(env.ROBUSTMQ_KAFKA_PORT, '9092');
  assert.equal(env.ROBUSTMQ_TLS_CERT_FILE, '/etc/robustmq/tls/tls.crt');
  assert.equal(env.ROBUSTMQ_ROLES, 'broker');
  const auto = cr({});
  const d2 = desiredObjects(auto, withDefaults(auto.spec), inputs, '').find((o) => o.kind === 'Deployment') as unknown as {
    spec: Record<string, unknown>;
  };
  assert.equal('replicas' in d2.spec, false, 'autoscaling on → no replicas in our apply');
  const svc = objs
    .filter((o) => o.kind === 'Service')
    .map((o) => `${o.metadata.name}:${(o as unknown as { spec: { type?: string } }).spec.type ?? 'headless'}`);
  assert.deepEqual(svc, [
    'prod-meta-headless:headless',
    'prod-meta:ClusterIP',
    'prod-journal-headless:headless',
    'prod-broker:ClusterIP',
    'prod-mqtts:LoadBalancer',
    'prod-ws:NodePort',
  ]);
  // Every role's env uses only configuration keys robust-server knows (it rejects unknown ROBUSTMQ_*).
  const known = new Set([
    'ROBUSTMQ_ROLES',
    'ROBUSTMQ_NODE_ID',
    'ROBUSTMQ_DATA_DIR',
    'ROBUSTMQ_HTTP_PORT',
    'ROBUSTMQ_GRPC_PORT',
    'ROBUSTMQ_ADVERTISE_HOST',
    'ROBUSTMQ_META_ENDPOINTS',
    'ROBUSTMQ_META_CLUSTER_ID',
    'ROBUSTMQ_JOURNAL_ENDPOINT',
    'ROBUSTMQ_SHUTDOWN_TIMEOUT_MS',
    'ROBUSTMQ_MQTT_PORT',
    'ROBUSTMQ_MQTTS_PORT',
    'ROBUSTMQ_WS_PORT',
    'ROBUSTMQ_WSS_PORT',
    'ROBUSTMQ_KAFKA_PORT',
    'ROBUSTMQ_KAFKA_TLS_PORT',
    'ROBUSTMQ_TLS_CERT_FILE',
    'ROBUSTMQ_TLS_KEY_FILE',
    'ROBUSTMQ_TLS_CA_FILE',
    'ROBUSTMQ_AUTH_ADMIN_TOKEN_FILE',
  ]);
  for (const o of objs.filter((x) => x.kind === 'StatefulSet' || x.kind === 'Deployment'))
    for (const e of (o as unknown as { spec: { template: { spec: { containers: { env: { name: string }[] }[] } } } }).spec.template.spec
      .containers[0]!.env)
      if (e.name.startsWith('ROBUSTMQ_')) assert.ok(known.has(e.name), e.name);
});

test('spec validation mirrors the CRD (and the CRD schema + CEL rules agree)', () => {
  const v = crdValidator(robustMQClusterCrd() as never, 'v1alpha1');
  const doc = (spec: unknown) => ({ apiVersion: 'robustmq.io/v1alpha1', kind: 'RobustMQCluster', metadata: { name: 'x' }, spec });
  const cases: [unknown, boolean][] = [
    [{}, true],
    [full, true],
    [{ meta: { replicas: 4 } }, false],
    [{ meta: { replicas: 9 } }, false],
    [{ broker: { autoscaling: { minReplicas: 5, maxReplicas: 3 } } }, false],
    [
      {
        listeners: [
          { name: 'a', protocol: 'mqtt', port: 1 },
          { name: 'b', protocol: 'mqtt', port: 2 },
        ],
      },
      false,
    ],
    [
      {
        listeners: [
          { name: 'a', protocol: 'mqtt', port: 1 },
          { name: 'b', protocol: 'kafka', port: 1 },
        ],
      },
      false,
    ],
    [{ tls: { secretName: 'a', issuerRef: { name: 'i', kind: 'ClusterIssuer' } } }, false],
    [{ tls: { issuerRef: { name: 'i', kind: 'ClusterIssuer' } } }, true],
    [{ tls: { issuerRef: { name: 'i', kind: 'Issuer', group: 'cert-manager.io' } } }, true],
    [{ tls: { issuerRef: { name: 'i', kind: 'Certificate' } } }, false],
    [{ tls: { issuerRef: { name: 'i', kind: 'AWSPCAClusterIssuer', group: 'awspca.cert-manager.io' } } }, true],
    [{ tls: { validityDays: 30, renewalDays: 30 } }, false],
    [{ tls: { validityDays: 60, renewalDays: 20, alternativeNames: ['mq.example.com', '198.51.100.4'] } }, true],
    [{ tls: { clusterCa: { validityDays: 10, renewalDays: 20 } } }, false],
    [{ tls: { clusterCa: { validityDays: 31 } } }, false],
    [{ tls: { clientsCa: { generate: false, validityDays: 730, renewalDays: 60 } } }, true],
  ];
  for (const [spec, ok] of cases) {
    const crdErrors = v(doc(spec));
    const codeErrors = validateSpec(withDefaults(spec));
    assert.equal(crdErrors.length === 0, ok, `CRD: ${JSON.stringify(spec)} → ${crdErrors.join('; ')}`);
    assert.equal(codeErrors.length === 0, ok, `code: ${JSON.stringify(spec)} → ${codeErrors.join('; ')}`);
  }
  // Transition rules: storage never shrinks, clusterId immutable.
  assert.deepEqual(v(doc({ meta: { storage: { size: '20Gi' } } }), doc({ meta: { storage: { size: '10Gi' } } })), []);
  assert.match(v(doc({ meta: { storage: { size: '5Gi' } } }), doc({ meta: { storage: { size: '10Gi' } } })).join(), /never shrink/);
  const withStatus = (id: string) => ({ ...doc({}), status: { clusterId: id } });
  assert.deepEqual(v(withStatus('a'), withStatus('a')), []);
  assert.match(v(withStatus('b'), withStatus('a')).join(), /immutable/);
});
