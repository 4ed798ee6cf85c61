import { GROUP, KIND, PLURAL, VERSION } from './types.js';

/**
 * The RobustMQCluster CustomResourceDefinition, built here so code and schema cannot drift:
 * `crds/robustmq.io_robustmqclusters.yaml` and the chart's copy are rendered from it (a test fails
 * when either is stale). The schema is structural, carries the defaults, and CEL rules
 * (x-kubernetes-validations) hold what OpenAPI cannot say.
 */

type Schema = Record<string, unknown>;
const str = (extra: Schema = {}): Schema => ({ type: 'string', ...extra });
const int = (extra: Schema = {}): Schema => ({ type: 'integer', format: 'int32', ...extra });
const bool = (def: boolean, description: string): Schema => ({ type: 'boolean', default: def, description });
const obj = (properties: Record<string, Schema>, extra: Schema = {}): Schema => ({ type: 'object', properties, ...extra });
const free = (description: string): Schema => ({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true, description });
const freeList = (description: string): Schema => ({ type: 'array', items: free('item'), description });
const stringMap = (description: string): Schema => ({ type: 'object', additionalProperties: str(), description });
const quantity = (description: string): Schema => ({
  'x-kubernetes-int-or-string': true,
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  pattern: '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$',
  description,
});

const resources = obj(
  { requests: stringMap('Minimum resources, e.g. cpu: 500m'), limits: stringMap('Maximum resources, e.g. memory: 1Gi') },
  { description: 'Container resources (requests and limits)' },
);

const template = obj(
  {
    labels: stringMap('Extra pod labels'),
    annotations: stringMap('Extra pod annotations'),
    nodeSelector: stringMap('Pod nodeSelector'),
    tolerations: freeList('Pod tolerations'),
    affinity: free('Pod affinity; default: spread the role over nodes (preferred anti-affinity)'),
    topologySpreadConstraints: freeList('Pod topologySpreadConstraints'),
    priorityClassName: str({ description: 'Pod priorityClassName' }),
    terminationGracePeriodSeconds: int({ minimum: 0, description: 'Grace period for the preStop hook and shutdown' }),
  },
  { description: 'Scheduling and metadata added to the pods of this role' },
);

const storage = (defaultSize: string): Schema =>
  obj(
    {
      size: {
        ...str({ default: defaultSize }),
        pattern: quantity('').pattern as string,
        description: 'PVC size per node; may grow, never shrink',
      },
      storageClassName: str({ description: 'StorageClass of the PVCs; empty = the cluster default' }),
      deleteClaimOnScaleDown: bool(true, 'Delete the PVC of a node removed by a scale-down'),
      deleteClaimOnDelete: bool(false, 'Delete every PVC of this role when the RobustMQCluster is deleted'),
    },
    {
      default: {},
      'x-kubernetes-validations': [
        {
          rule: '!has(oldSelf.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0',
          message: 'storage size may grow but never shrink',
          reason: 'FieldValueForbidden',
        },
      ],
    },
  );

const listener = obj(
  {
    name: str({
      pattern: '^[a-z]([-a-z0-9]{0,13}[a-z0-9])?$',
      description: 'Listener name (DNS label, ≤ 15 characters: it names the Service port)',
    }),
    protocol: str({ enum: ['mqtt', 'mqtt-ws', 'kafka'], description: 'Wire protocol' }),
    port: int({ minimum: 1, maximum: 65535, description: 'Port on the broker pods and on the Service' }),
    tls: bool(false, 'Serve TLS on this listener'),
    type: str({ enum: ['internal', 'loadbalancer', 'nodeport'], default: 'internal', description: 'How clients reach it' }),
    authentication: obj({ type: str({ enum: ['password', 'tls', 'scram-sha-512'] }) }, { required: ['type'] }),
  },
  { required: ['name', 'protocol', 'port'] },
);

const days = (def: number, description: string): Schema => int({ minimum: 1, maximum: 36500, default: def, description });
const ca = (what: string): Schema =>
  obj(
    {
      generate: bool(true, `Generate and renew the ${what} (false: provide it as a Secret with ca.crt and ca.key)`),
      validityDays: days(365, 'Lifetime of the CA certificate'),
      renewalDays: days(30, 'Renew the CA certificate (same key) this many days before it expires'),
    },
    {
      default: {},
      description: `The ${what} of the generated TLS mode`,
      'x-kubernetes-validations': [{ rule: 'self.renewalDays < self.validityDays', message: 'renewalDays must be less than validityDays' }],
    },
  );

const spec = obj(
  {
    version: str({ default: '0.1.0', description: 'RobustMQ version; picks the image tag unless image is set' }),
    image: str({ description: 'Image for every role (robust-server); default ghcr.io/robustmq/robustmq:<version>' }),
    imagePullPolicy: str({ enum: ['Always', 'IfNotPresent', 'Never'] }),
    meta: obj(
      {
        replicas: int({ minimum: 1, maximum: 7, default: 3, description: 'Raft voters (odd: 1, 3, 5 or 7)' }),
        storage: storage('10Gi'),
        resources,
        template,
        maxLearnerLagEntries: int({ minimum: 0, default: 100, description: 'Promote a learner once it is this close to the leader' }),
      },
      {
        default: {},
        'x-kubernetes-validations': [{ rule: 'self.replicas % 2 == 1', message: 'meta.replicas must be odd (1, 3, 5 or 7)' }],
      },
    ),
    journal: obj(
      {
        replicas: int({ minimum: 1, default: 3, description: 'Journal nodes' }),
        storage: storage('50Gi'),
        resources,
        template,
        scaleDown: str({ enum: ['Drain', 'Block'], default: 'Drain', description: 'Drain a node before removing it, or refuse' }),
      },
      { default: {} },
    ),
    broker: obj(
      {
        replicas: int({ minimum: 0, default: 2, description: 'Broker pods while autoscaling is off (the scale subresource)' }),
        resources,
        template,
        autoscaling: obj(
          {
            enabled: bool(true, 'Create a HorizontalPodAutoscaler for the brokers'),
            minReplicas: int({ minimum: 1, default: 2 }),
            maxReplicas: int({ minimum: 1, default: 10 }),
            metrics: freeList('autoscaling/v2 metrics; default: 70 % average CPU'),
            behavior: free('autoscaling/v2 behavior; default: scale down slowly (one pod per 2 minutes)'),
          },
          {
            default: {},
            'x-kubernetes-validations': [
              { rule: 'self.minReplicas <= self.maxReplicas', message: 'minReplicas must not exceed maxReplicas' },
            ],
          },
        ),
        drain: obj(
          {
            timeoutSeconds: int({ minimum: 0, default: 60, description: 'Longest a stopping broker takes to move its clients' }),
            disconnectRatePerSecond: int({ minimum: 1, default: 500, description: 'Clients disconnected per second while draining' }),
          },
          { default: {} },
        ),
      },
      { default: {} },
    ),
    listeners: {
      type: 'array',
      items: listener,
      maxItems: 8,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['name'],
      default: [
        { name: 'mqtt', protocol: 'mqtt', port: 1883, tls: false, type: 'internal' },
        { name: 'kafka', protocol: 'kafka', port: 9092, tls: false, type: 'internal' },
      ],
      'x-kubernetes-validations': [
        {
          rule: 'self.all(a, self.exists_one(b, a.protocol == b.protocol && a.tls == b.tls))',
          message: 'at most one listener per protocol and tls setting (robust-server has one port for each)',
        },
        { rule: 'self.all(a, self.exists_one(b, a.port == b.port))', message: 'listener ports must differ' },
      ],
    },
    tls: obj(
      {
        clusterCa: ca("cluster CA (<name>-cluster-ca), which signs the brokers' server certificate"),
        clientsCa: ca('clients CA (<name>-clients-ca), which client certificates are checked against (mTLS)'),
        validityDays: days(90, 'Lifetime of the generated or cert-manager server certificate'),
        renewalDays: days(30, 'Issue the server certificate again this many days before it expires'),
        alternativeNames: {
          type: 'array',
          maxItems: 64,
          items: str({ maxLength: 253 }),
          description: 'Extra DNS names or IP addresses of the server certificate (NodePort addresses, ingress names)',
        },
        secretName: str({
          minLength: 1,
          description: 'Existing Secret (tls.crt, tls.key; ca.crt for mTLS) for the TLS listeners, mounted as it is',
        }),
        issuerRef: obj(
          {
            name: str({ minLength: 1 }),
            kind: str({ minLength: 1, description: 'Issuer or ClusterIssuer (any kind for an external issuer group)' }),
            group: str({ default: 'cert-manager.io' }),
          },
          {
            required: ['name', 'kind'],
            description: 'cert-manager issuer that signs the server certificate (a cert-manager.io/v1 Certificate is applied)',
            'x-kubernetes-validations': [
              {
                rule: "(has(self.group) && self.group != 'cert-manager.io') || self.kind in ['Issuer', 'ClusterIssuer']",
                message: 'kind must be Issuer or ClusterIssuer for group cert-manager.io',
              },
            ],
          },
        ),
      },
      {
        description: 'Certificates of the TLS listeners: generated (default), an existing Secret (secretName) or cert-manager (issuerRef)',
        'x-kubernetes-validations': [
          { rule: '!(has(self.secretName) && has(self.issuerRef))', message: 'secretName and issuerRef are mutually exclusive' },
          {
            rule: '!has(self.validityDays) || !has(self.renewalDays) || self.renewalDays < self.validityDays',
            message: 'renewalDays must be less than validityDays',
          },
          {
            rule: '!has(self.clusterCa) || !has(self.clusterCa.validityDays) || !has(self.renewalDays) || self.clusterCa.validityDays > self.renewalDays + 1',
            message: 'clusterCa.validityDays must exceed renewalDays + 1 (a server certificate never outlives its CA)',
          },
        ],
      },
    ),
    config: free('Extra robust-server configuration keys (docs/configuration.md), rendered into the ConfigMap'),
    metrics: obj(
      {
        enabled: bool(true, 'Expose the metrics port (58080) on every pod'),
        podMonitor: obj(
          { enabled: bool(false, 'Create a PodMonitor (needs the Prometheus operator)'), labels: stringMap('Labels of the PodMonitor') },
          { default: {} },
        ),
      },
      { default: {} },
    ),
    overrides: obj(
      {
        meta: free('JSON merge patch onto the meta StatefulSet'),
        journal: free('JSON merge patch onto the journal StatefulSet'),
        broker: free('JSON merge patch onto the broker Deployment'),
        services: free('JSON merge patch onto every client Service'),
      },
      { description: 'Escape hatch: merged onto the generated objects' },
    ),
  },
  { default: {} },
);

const memberList = {
  type: 'array',
  items: obj({ nodeId: int(), pod: str(), incarnation: str() }, { required: ['nodeId'] }),
};

const status = obj({
  observedGeneration: { type: 'integer', format: 'int64' },
  clusterId: str(),
  version: str(),
  operatorVersion: str(),
  conditions: {
    type: 'array',
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
    items: obj(
      {
        type: str({ maxLength: 316 }),
        status: str({ enum: ['True', 'False', 'Unknown'] }),
        reason: str({ maxLength: 1024 }),
        message: str({ maxLength: 32768 }),
        observedGeneration: { type: 'integer', format: 'int64', minimum: 0 },
        lastTransitionTime: str({ format: 'date-time' }),
      },
      { required: ['type', 'status', 'reason', 'message', 'lastTransitionTime'] },
    ),
  },
  meta: obj({
    replicas: int(),
    readyReplicas: int(),
    updatedReplicas: int(),
    currentRevision: str(),
    updateRevision: str(),
    leader: obj({ nodeId: int(), pod: str() }, { nullable: true }),
    voters: memberList,
    learners: memberList,
    pendingChange: obj({ op: str(), nodeId: int(), phase: str(), startedAt: str() }, { nullable: true }),
  }),
  journal: obj({ replicas: int(), readyReplicas: int(), draining: { type: 'array', items: int() } }),
  broker: obj({ replicas: int(), readyReplicas: int(), registered: int(), selector: str() }),
  tls: obj({
    mode: str({ enum: ['generated', 'secret', 'cert-manager'] }),
    secretName: str(),
    notAfter: str({ format: 'date-time' }),
    clusterCaNotAfter: str({ format: 'date-time' }),
    clientsCaNotAfter: str({ format: 'date-time' }),
  }),
  listeners: {
    type: 'array',
    items: obj({
      name: str(),
      type: str(),
      bootstrap: str(),
      addresses: { type: 'array', items: obj({ host: str(), port: int() }) },
    }),
  },
});

/** The CRD as an object (apiextensions.k8s.io/v1). */
export function robustMQClusterCrd(): Record<string, unknown> {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${PLURAL}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'robustmq' } },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: 'robustmqcluster',
        shortNames: ['rmq'],
        categories: ['robustmq'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: {
            status: {},
            scale: {
              specReplicasPath: '.spec.broker.replicas',
              statusReplicasPath: '.status.broker.replicas',
              labelSelectorPath: '.status.broker.selector',
            },
          },
          additionalPrinterColumns: [
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Meta', type: 'string', jsonPath: '.status.meta.readyReplicas', description: 'Ready meta voters' },
            { name: 'Brokers', type: 'integer', jsonPath: '.status.broker.readyReplicas' },
            { name: 'Leader', type: 'string', jsonPath: '.status.meta.leader.pod' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: obj(
              {
                apiVersion: str(),
                kind: str(),
                metadata: { type: 'object' },
                spec,
                status: {
                  ...status,
                  'x-kubernetes-validations': [
                    {
                      rule: '!has(oldSelf.clusterId) || oldSelf.clusterId == "" || (has(self.clusterId) && self.clusterId == oldSelf.clusterId)',
                      message: 'clusterId is immutable once set',
                    },
                  ],
                },
              },
              { description: 'A RobustMQ cluster: meta (Raft), journal (storage) and brokers (MQTT, Kafka)' },
            ),
          },
        },
      ],
    },
  };
}
