import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { issueServerCert, isSignedBy } from '../src/certificates.js';
import { certificateCrd } from '../src/testing/index.js';
import { crdValidator } from '../src/testing/validate.js';
import { clusterObject, NS, startEnv, waitFor, type Env } from './harness.js';

type Secret = {
  metadata: { ownerReferences?: { uid: string; kind: string }[]; labels?: Record<string, string> };
  data: Record<string, string>;
  type?: string;
};
const pem = (s: Secret, k: string) => Buffer.from(s.data[k]!, 'base64').toString('utf8');
const secret = (env: Env, name: string) => env.api.get('v1', 'Secret', NS, name) as unknown as Secret | undefined;
const brokerPods = (env: Env, c: string) =>
  env.api
    .list('v1', 'Pod', NS)
    .filter((p) => p.metadata.labels?.['robustmq.io/role'] === 'broker' && p.metadata.labels['app.kubernetes.io/instance'] === c)
    .map((p) => p.metadata.name)
    .sort();
type PodSpec = { volumes?: { name: string; secret?: { secretName: string } }[]; containers: { env: { name: string; value?: string }[] }[] };
const brokerTemplate = (env: Env, c: string) =>
  (env.api.get('apps/v1', 'Deployment', NS, `${c}-broker`)!.spec as { template: { spec: PodSpec } }).template.spec;
const gate = (env: Env, pod: string) =>
  (
    (env.api.get('v1', 'Pod', NS, pod)?.status as { conditions?: { type: string; status: string; reason?: string }[] })?.conditions ?? []
  ).find((c) => c.type === 'robustmq.io/registered');

test('generated TLS: CAs and broker certificate in owned Secrets, mounted; SAN change and expiry reissue without a roll; GC', async (t) => {
  const env = await startEnv('gen');
  t.after(() => env.close());
  await env.startOperator();
  env.api.put(clusterObject('gen'), 'kubectl'); // has an mqtts listener with tls: true, no secretName/issuerRef
  await waitFor('Ready', () => env.condition('gen', 'Ready')?.status === 'True', 20_000);

  const uid = env.cluster('gen')!.metadata.uid;
  const clusterCa = secret(env, 'gen-cluster-ca')!;
  const clientsCa = secret(env, 'gen-clients-ca')!;
  const leafSecret = secret(env, 'gen-broker-tls')!;
  for (const s of [clusterCa, clientsCa, leafSecret]) {
    assert.equal(s.metadata.ownerReferences?.[0]?.uid, uid, 'owned by the RobustMQCluster');
    assert.equal(s.metadata.labels?.['app.kubernetes.io/managed-by'], 'robustmq-operator');
  }
  assert.deepEqual(Object.keys(clusterCa.data).sort(), ['ca.crt', 'ca.key']);
  assert.deepEqual(Object.keys(clientsCa.data).sort(), ['ca.crt', 'ca.key']);
  assert.equal(leafSecret.type, 'kubernetes.io/tls');
  assert.deepEqual(Object.keys(leafSecret.data).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
  assert.notEqual(pem(clusterCa, 'ca.key'), pem(clientsCa, 'ca.key'));
  const caCert = new X509Certificate(pem(clusterCa, 'ca.crt'));
  const leaf = new X509Certificate(pem(leafSecret, 'tls.crt'));
  assert.ok(isSignedBy(leaf, caCert));
  assert.equal(pem(leafSecret, 'ca.crt'), pem(clusterCa, 'ca.crt'));
  for (const h of ['gen-broker', 'gen-broker.rmq-test', 'gen-broker.rmq-test.svc', 'gen-mqtts.rmq-test.svc.cluster.local'])
    assert.ok(leaf.checkHost(h), h);
  assert.equal(env.condition('gen', 'CertificatesValid')?.status, 'True');
  const st = env.cluster('gen')!.status as { tls: { mode: string; secretName: string; notAfter: string } };
  assert.equal(st.tls.mode, 'generated');
  assert.equal(st.tls.notAfter, new Date(leaf.validTo).toISOString().replace(/\.\d{3}Z$/, 'Z'));

  // The brokers mount it; meta and journal do not.
  const spec = brokerTemplate(env, 'gen');
  assert.ok(spec.volumes?.some((v) => v.name === 'tls' && v.secret?.secretName === 'gen-broker-tls'));
  const envVars = Object.fromEntries(spec.containers[0]!.env.map((e) => [e.name, e.value]));
  assert.equal(envVars.ROBUSTMQ_TLS_CERT_FILE, '/etc/robustmq/tls/tls.crt');
  assert.equal(envVars.ROBUSTMQ_TLS_CA_FILE, undefined, 'no client-certificate listener: clients are not asked for one');
  const pod = env.api.get('v1', 'Pod', NS, brokerPods(env, 'gen')[0]!)!;
  assert.ok((pod.spec as PodSpec).volumes?.some((v) => v.secret?.secretName === 'gen-broker-tls'));
  const metaSts = env.api.get('apps/v1', 'StatefulSet', NS, 'gen-meta')!.spec as { template: { spec: PodSpec } };
  assert.ok(!metaSts.template.spec.volumes?.some((v) => v.name === 'tls'));

  // A load-balancer address appears: the certificate is issued again with it; the brokers are not rolled
  // (robust-server reloads the mounted files, tls.reloadCheckMs).
  const podsBefore = brokerPods(env, 'gen');
  const templateBefore = JSON.stringify(brokerTemplate(env, 'gen'));
  const svc = env.api.get('v1', 'Service', NS, 'gen-mqtts')!;
  env.api.put({ ...svc, status: { loadBalancer: { ingress: [{ ip: '203.0.113.10' }] } } }, 'service-controller');
  await waitFor('reissued with the LB address', () =>
    new X509Certificate(pem(secret(env, 'gen-broker-tls')!, 'tls.crt')).checkIP('203.0.113.10'),
  );
  const reissued = new X509Certificate(pem(secret(env, 'gen-broker-tls')!, 'tls.crt'));
  assert.notEqual(reissued.serialNumber, leaf.serialNumber);
  assert.ok(isSignedBy(reissued, caCert));

  // A certificate within renewalDays of expiry is replaced.
  const ca = { certPem: pem(clusterCa, 'ca.crt'), keyPem: pem(clusterCa, 'ca.key') };
  const short = await issueServerCert(ca, { commonName: 'gen-broker', dnsNames: ['gen-broker'], ipAddresses: [], validityDays: 2 });
  const cur = env.api.get('v1', 'Secret', NS, 'gen-broker-tls')!;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  env.api.put({ ...cur, data: { ...(cur.data as object), 'tls.crt': b64(short.certPem), 'tls.key': b64(short.keyPem) } }, 'test');
  await waitFor('renewed', () => {
    const c = new X509Certificate(pem(secret(env, 'gen-broker-tls')!, 'tls.crt'));
    return new Date(c.validTo).getTime() > Date.now() + 60 * 86_400_000 && c.checkIP('203.0.113.10');
  });
  assert.deepEqual(brokerPods(env, 'gen'), podsBefore, 'no broker pod replaced');
  assert.equal(JSON.stringify(brokerTemplate(env, 'gen')), templateBefore, 'pod template unchanged');
  assert.equal(pem(secret(env, 'gen-cluster-ca')!, 'ca.key'), ca.keyPem, 'the CA is never replaced while valid');
  assert.equal(pem(secret(env, 'gen-cluster-ca')!, 'ca.crt'), ca.certPem);

  // Deleting the cluster garbage-collects the Secrets.
  env.api.remove('robustmq.io/v1alpha1', 'RobustMQCluster', NS, 'gen');
  await waitFor('secrets gone', () => ['gen-cluster-ca', 'gen-clients-ca', 'gen-broker-tls'].every((n) => secret(env, n) === undefined));
});

test('cert-manager TLS: a Certificate is applied; brokers wait for its Secret (WaitingForCertificate), then mount it', async (t) => {
  const env = await startEnv('cm', { certManager: true });
  t.after(() => env.close());
  env.certManager!.hold = true;
  await env.startOperator();
  env.api.put(
    clusterObject('cm', {
      broker: { autoscaling: { enabled: false }, replicas: 1 },
      tls: { issuerRef: { name: 'ca-issuer', kind: 'ClusterIssuer' } },
    }),
    'kubectl',
  );
  await waitFor('WaitingForCertificate', () => env.condition('cm', 'Progressing')?.reason === 'WaitingForCertificate');
  const cert = env.api.get('cert-manager.io/v1', 'Certificate', NS, 'cm-broker-tls')!;
  assert.deepEqual(crdValidator(certificateCrd() as never, 'v1')(cert), []);
  const cs = cert.spec as {
    secretName: string;
    dnsNames: string[];
    issuerRef: Record<string, string>;
    secretTemplate: { labels: Record<string, string> };
  };
  assert.equal(cs.secretName, 'cm-broker-tls');
  assert.deepEqual(cs.issuerRef, { name: 'ca-issuer', kind: 'ClusterIssuer', group: 'cert-manager.io' });
  assert.ok(cs.dnsNames.includes('cm-broker.rmq-test.svc') && cs.dnsNames.includes('cm-mqtts.rmq-test.svc.cluster.local'));
  assert.equal(cs.secretTemplate.labels['app.kubernetes.io/managed-by'], 'robustmq-operator');
  assert.equal((cert.metadata.ownerReferences as { kind: string }[])[0]!.kind, 'RobustMQCluster');
  assert.equal(env.condition('cm', 'CertificatesValid')?.status, 'False');
  assert.equal(env.condition('cm', 'Ready')?.status, 'False');
  await waitFor('broker Deployment', () => env.api.get('apps/v1', 'Deployment', NS, 'cm-broker'));
  assert.ok(!brokerTemplate(env, 'cm').volumes?.some((v) => v.name === 'tls'), 'no TLS before the Secret exists');
  assert.ok(
    env.api.list('v1', 'Event', NS).some((e) => (e as { reason?: string }).reason === 'WaitingForCertificate'),
    'an Event says why',
  );

  env.certManager!.release();
  await waitFor('Ready', () => env.condition('cm', 'Ready')?.status === 'True', 20_000);
  assert.ok(brokerTemplate(env, 'cm').volumes?.some((v) => v.name === 'tls' && v.secret?.secretName === 'cm-broker-tls'));
  assert.equal(env.condition('cm', 'CertificatesValid')?.reason, 'Issued');
  assert.equal((env.cluster('cm')!.status as { tls: { mode: string } }).tls.mode, 'cert-manager');
});

test('broker readiness gate follows meta registration: ready but unregistered stays False, registration flips it', async (t) => {
  const env = await startEnv('reg');
  t.after(() => env.close());
  env.meta.holdRegistrations = true;
  await env.startOperator();
  env.api.put(clusterObject('reg', { broker: { autoscaling: { enabled: false }, replicas: 2 } }), 'kubectl');
  await waitFor('broker pods running', () => {
    const pods = brokerPods(env, 'reg');
    return pods.length === 2 && pods.every((p) => gate(env, p)?.reason === 'NotRegistered');
  });
  await waitFor('BrokersAvailable NotRegistered', () => env.condition('reg', 'BrokersAvailable')?.reason === 'NotRegistered');
  assert.equal(env.condition('reg', 'BrokersAvailable')?.status, 'False');
  assert.equal(env.condition('reg', 'Ready')?.status, 'False');
  assert.equal((env.cluster('reg')!.status as { broker: { registered: number } }).broker.registered, 0);
  for (const p of brokerPods(env, 'reg')) assert.equal(gate(env, p)?.status, 'False');

  // One broker registers: its gate turns True without any Kubernetes event (the operator requeues).
  env.meta.holdRegistrations = false;
  const [first, second] = brokerPods(env, 'reg') as [string, string];
  env.meta.register(first);
  await waitFor('first gate True', () => gate(env, first)?.status === 'True');
  assert.equal(gate(env, second)?.status, 'False');
  await waitFor('BrokersAvailable', () => env.condition('reg', 'BrokersAvailable')?.status === 'True');
  env.meta.register(second);
  await waitFor('Ready', () => env.condition('reg', 'Ready')?.status === 'True', 20_000);
  await waitFor('both registered', () => (env.cluster('reg')!.status as { broker: { registered: number } }).broker.registered === 2);
  assert.equal(gate(env, second)?.status, 'True');

  // A broker that revokes its registration loses the gate.
  env.meta.deregister(first);
  await waitFor('gate False again', () => gate(env, first)?.status === 'False' && gate(env, first)?.reason === 'NotRegistered');
});
