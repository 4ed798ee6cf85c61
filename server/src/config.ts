import { z } from 'zod';
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError, LogLevels } from '@robustmq/common';
import { parseBindings } from '@robustmq/broker';

/**
 * The one configuration schema of robust-server. Every key can be set in the YAML config file
 * (nested as written here), in an environment variable `ROBUSTMQ_<KEY>` (sections joined by `_`,
 * camelCase turned into SCREAMING_SNAKE: `journal.segmentBytes` → `ROBUSTMQ_JOURNAL_SEGMENT_BYTES`),
 * and, for top-level keys, a command-line flag (`mqttPort` → `--mqtt-port`).
 * Precedence: flag > environment > file > default. docs/configuration.md is generated from this.
 */

export const Roles = ['meta', 'journal', 'broker'] as const;
export type Role = (typeof Roles)[number];

const num = () => z.coerce.number({ error: 'expected a number' }).int({ error: 'expected an integer' });
const port = (def: number, what: string) =>
  num().min(0, 'a port is 0–65535').max(65535, 'a port is 0–65535').default(def).describe(`${what} (0 = any free port)`);

const roleList = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0)
      : v,
  z
    .array(z.enum(Roles))
    .min(1, 'at least one role is required')
    .refine((a) => new Set(a).size === a.length, 'roles must not repeat'),
);

const bool = () =>
  z.preprocess(
    (v) => {
      if (typeof v !== 'string') return v;
      const t = v.trim().toLowerCase();
      return ['true', '1', 'yes', 'on'].includes(t) ? true : ['false', '0', 'no', 'off', ''].includes(t) ? false : v;
    },
    z.boolean({ error: 'expected true or false' }),
  );

const AuthMethods = ['users', 'jwt', 'webhook', 'cert', 'scram'] as const;
const splitList = (v: unknown): unknown =>
  typeof v === 'string'
    ? v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0)
    : v;
const methodListOrEmpty = z.preprocess(
  splitList,
  z.array(z.enum(AuthMethods)).refine((a) => new Set(a).size === a.length, 'authenticators must not repeat'),
);
const methodList = z.preprocess(
  splitList,
  z
    .array(z.enum(AuthMethods))
    .min(1, 'at least one authenticator (anonymous access is auth.allowAnonymous)')
    .refine((a) => new Set(a).size === a.length, 'authenticators must not repeat'),
);

const peerList = z
  .string()
  .refine(
    (s) => s.trim() === '' || s.split(',').every((p) => /^\s*\d+=[^\s=,]+:\d+\s*$/.test(p)),
    'expected id=host:port pairs separated by commas, e.g. 1=meta-0:1228,2=meta-1:1228',
  );

export const ConfigSchema = z.strictObject({
  nodeId: num().min(1, 'node ids start at 1').default(1).describe('Id of this node in the cluster'),
  roles: roleList.default([...Roles]).describe('Roles this process runs: any of meta, journal, broker'),
  dataDir: z.string().min(1).default('./data').describe('Directory for all persistent data of this node'),
  bindHost: z.string().min(1).default('0.0.0.0').describe('Address every listener binds to'),
  advertiseHost: z
    .string()
    .default('')
    .describe('Host name or address other nodes use to reach this one; empty = bindHost, or the host name when bindHost is 0.0.0.0'),
  mqttPort: port(1883, 'MQTT over TCP port'),
  mqttsPort: port(8883, 'MQTT over TLS port; bound only when tls.certFile and tls.keyFile are set'),
  wsPort: port(8083, 'MQTT over WebSocket port, path /mqtt, subprotocols mqtt and mqttv3.1'),
  wssPort: port(8084, 'MQTT over secure WebSocket port, path /mqtt; bound only when tls.certFile and tls.keyFile are set'),
  kafkaPort: port(9092, 'Kafka protocol port'),
  kafkaTlsPort: port(9093, 'Kafka over TLS port; bound only when tls.certFile and tls.keyFile are set'),
  httpPort: port(58080, 'Admin HTTP port: /health/live, /health/ready, /metrics, /api/v1'),
  grpcPort: port(1228, 'gRPC port for meta and journal services between nodes'),
  logLevel: z.enum(LogLevels).default('info').describe('Log level: fatal, error, warn, info, debug, trace, silent'),
  shutdownTimeoutMs: num()
    .min(0, 'must not be negative')
    .default(10_000)
    .describe('Longest a graceful shutdown may take before the process exits anyway, in milliseconds'),
  meta: z.strictObject({
    peers: peerList
      .default('')
      .describe('Initial members of a new meta cluster as id=host:port (gRPC) pairs; empty = this node alone (all-in-one)'),
    join: bool().default(false).describe('Start with an empty meta disk and wait to be added to an existing cluster; never bootstraps'),
    clusterId: z.string().default('').describe('Cluster id to bootstrap with; empty = generated. Nodes of another cluster are refused'),
    endpoints: z.string().default('').describe('gRPC endpoints (host:port, comma-separated) of meta nodes, for nodes that do not run meta'),
    sessionGroups: num()
      .min(1, 'at least 1')
      .max(64, 'at most 64')
      .default(2)
      .describe('Raft groups the session keyspace is hashed over (fixed at bootstrap)'),
    offsetGroups: num()
      .min(1, 'at least 1')
      .max(64, 'at most 64')
      .default(2)
      .describe('Raft groups the consumer-offset keyspace is hashed over (fixed at bootstrap)'),
    tickMs: num().min(1, 'at least 1').default(50).describe('Raft tick interval in milliseconds'),
    electionTicks: num()
      .min(3, 'at least 3')
      .default(10)
      .describe('Ticks without a leader before an election (randomised up to twice this)'),
    snapshotEntries: num()
      .min(10, 'at least 10')
      .default(100_000)
      .describe('Applied entries between snapshots (and log compactions) of a group'),
    proposalTimeoutMs: num()
      .min(1, 'at least 1')
      .default(5000)
      .describe('Longest a write waits for commit before failing with a retriable timeout, in milliseconds'),
  }),
  journal: z.strictObject({
    segmentBytes: num()
      .min(1024, 'at least 1024')
      .default(1024 * 1024 * 1024)
      .describe("Roll a shard's active segment file at this size, in bytes"),
    segmentMs: num()
      .min(1, 'at least 1')
      .default(7 * 24 * 3600 * 1000)
      .describe("Roll a shard's active segment once it is this old, in milliseconds"),
    fsyncPolicy: z
      .enum(['always', 'interval', 'never'])
      .default('interval')
      .describe('When appends reach the disk: always (group commit, ack after fsync), interval, never'),
    fsyncIntervalMs: num()
      .min(1, 'at least 1')
      .default(1000)
      .describe('With fsyncPolicy interval: fsync dirty files this often, in milliseconds'),
    retentionMs: num()
      .min(-1, '-1 or positive')
      .default(7 * 24 * 3600 * 1000)
      .describe('Delete sealed segments older than this, in milliseconds (-1 = keep forever)'),
    retentionBytes: num()
      .min(-1, '-1 or positive')
      .default(-1)
      .describe('Delete the oldest sealed segments while a shard is larger than this, in bytes (-1 = no limit)'),
    retentionCheckIntervalMs: num()
      .min(1, 'at least 1')
      .default(300_000)
      .describe('How often retention runs, in milliseconds (also on every segment roll)'),
    maxBatchBytes: num()
      .min(64, 'at least 64')
      .default(1024 * 1024 + 12)
      .describe('Largest accepted append, in bytes'),
    indexIntervalBytes: num().min(1, 'at least 1').default(4096).describe('Bytes of log between two sparse offset/time index entries'),
    verifyReads: bool()
      .default(true)
      .describe(
        "Check each batch's CRC-32C when reading segment files (once per byte per process: bytes appended or already checked are trusted)",
      ),
    inlineWrites: bool()
      .default(true)
      .describe(
        'Segment engine: copy appended bytes into the page cache with a synchronous write on the event loop (fsyncs still run on the thread pool); false sends every write through the thread pool, for data disks that can stall plain writes',
      ),
    memoryMaxBytes: num()
      .min(1, 'at least 1')
      .default(64 * 1024 * 1024)
      .describe('Memory engine: evict the oldest batches beyond this many bytes per shard'),
    memoryMaxRecords: num()
      .min(1, 'at least 1')
      .default(1_000_000)
      .describe('Memory engine: evict the oldest batches beyond this many records per shard'),
    compactionDirtyRatio: z.coerce
      .number({ error: 'expected a number' })
      .gt(0, 'between 0 and 1')
      .lt(1, 'between 0 and 1')
      .default(0.5)
      .describe('Compacted engine: rewrite the log when this fraction of it is dead'),
    endpoint: z.string().default('').describe('gRPC endpoint (host:port) of a journal node, for broker nodes that do not run the journal'),
  }),
  broker: z.strictObject({
    registrationTtlMs: num()
      .min(1000, 'at least 1000')
      .default(10_000)
      .describe(
        "Lease time to live of this broker's registration in meta (/brokers/<nodeId>), renewed every third of it; a broker that dies disappears from Kafka Metadata and GET /api/v1/brokers this long after, in milliseconds",
      ),
  }),
  mqtt: z.strictObject({
    maxConnections: num()
      .min(0, 'must not be negative')
      .default(100_000)
      .describe('Open MQTT connections per broker; beyond it CONNECT gets 0x97 Quota exceeded (3.x: server unavailable)'),
    maxPacketSizeBytes: num()
      .min(64, 'at least 64')
      .max(268_435_460, 'at most 268435460')
      .default(1024 * 1024)
      .describe('Largest packet accepted from a client, in bytes; larger → 0x95 and the connection is closed'),
    maxInflightMessages: num()
      .min(1, '1..65535')
      .max(65535, '1..65535')
      .default(32)
      .describe(
        "Outbound QoS 1/2 messages in flight per client (bounded by the client's Receive Maximum); further ones wait in the session queue",
      ),
    receiveMaximum: num()
      .min(1, '1..65535')
      .max(65535, '1..65535')
      .default(128)
      .describe('Inbound QoS 1/2 messages a client may leave unacknowledged (5.0 Receive Maximum); more → DISCONNECT 0x93'),
    maxQueuedMessages: num()
      .min(0, 'must not be negative')
      .default(1000)
      .describe(
        'Messages queued per session (offline, or in-flight window full); beyond it mqtt.queueDropPolicy applies; 0 = no limit (memory is then unbounded)',
      ),
    queueDropPolicy: z
      .enum(['drop-oldest', 'drop-new'])
      .default('drop-oldest')
      .describe('What a full session queue drops: drop-oldest or drop-new'),
    maxTopicLengthBytes: num().min(1, '1..65535').max(65535, '1..65535').default(65535).describe('Longest topic name or filter, in bytes'),
    maxTopicLevels: num().min(1, 'at least 1').default(128).describe('Most levels in a topic name or filter'),
    maxSubscriptionsPerClient: num()
      .min(0, 'must not be negative')
      .default(1000)
      .describe('Subscriptions per session; beyond it SUBACK 0x97 (3.x: 0x80)'),
    maxRetainedMessages: num()
      .min(0, 'must not be negative')
      .default(1_000_000)
      .describe('Retained messages per broker; a new retained topic beyond it is not retained'),
    topicAliasMaximum: num()
      .min(0, '0..65535')
      .max(65535, '0..65535')
      .default(65535)
      .describe('Highest topic alias a client may use (5.0); 0 disables inbound aliases'),
    maxOutboundTopicAliases: num()
      .min(0, 'must not be negative')
      .default(1024)
      .describe("Topic aliases the server uses per client at most (bounded by the client's maximum)"),
    maxKeepAliveSec: num()
      .min(0, '0..65535')
      .max(65535, '0..65535')
      .default(0)
      .describe("Server Keep Alive (5.0): a client asking for more (or 0) is told this value, in seconds; 0 = accept the client's"),
    maxSessionExpirySec: num()
      .min(0, 'must not be negative')
      .default(0)
      .describe(
        'Upper bound of Session Expiry Interval (5.0) and expiry of 3.x persistent sessions, in seconds; 0 = 3.x sessions never expire',
      ),
    maxOutboundBufferBytes: num()
      .min(1024, 'at least 1024')
      .default(8 * 1024 * 1024)
      .describe("Bytes buffered for one client's socket before QoS 0 messages to it are dropped"),
    connectTimeoutMs: num().min(1, 'at least 1').default(10_000).describe('Time allowed between TCP accept and CONNECT, in milliseconds'),
    sysIntervalMs: num()
      .min(0, 'must not be negative')
      .default(10_000)
      .describe('$SYS/ topics are published this often, in milliseconds; 0 disables them'),
    sharedStrategy: z
      .enum(['round_robin', 'random', 'sticky', 'hash_clientid', 'hash_topic'])
      .default('round_robin')
      .describe('Default dispatch strategy of $share/ and $queue/ groups'),
    allowMqtt31: bool().default(true).describe('Accept MQTT 3.1 clients (protocol name MQIsdp, level 3)'),
    tcpTransport: z
      .enum(['native', 'node'])
      .default('native')
      .describe(
        'Transport of the plain-TCP MQTT listener: native (our libuv addon, ~1 KB less memory per idle connection than a Node socket; falls back to node where the addon is not built) or node (net.Socket)',
      ),
    retainAvailable: bool().default(true).describe('Retained messages are supported (5.0 Retain Available)'),
    allowEmptyClientId: bool()
      .default(true)
      .describe('Accept empty client ids (3.1.1 with clean session; 5.0 gets an Assigned Client Identifier)'),
  }),
  kafka: z.strictObject({
    autoCreateTopics: bool()
      .default(true)
      .describe('Create a stream (Kafka topic) on the first Metadata or Produce that names an unknown one'),
    defaultPartitions: num()
      .min(1, 'at least 1')
      .max(100_000, 'at most 100000')
      .default(1)
      .describe('Partitions of auto-created streams and of CreateTopics without a partition count (Kafka num.partitions)'),
    streamEngine: z
      .enum(['segment', 'memory'])
      .default('segment')
      .describe('Journal engine of new streams: segment (files, durable) or memory (bounded, lost on restart)'),
    groupInitialRebalanceDelayMs: num()
      .min(0, 'must not be negative')
      .default(3000)
      .describe('Delay of the first rebalance of an empty consumer group, in milliseconds (Kafka group.initial.rebalance.delay.ms)'),
    groupMinSessionTimeoutMs: num()
      .min(1, 'at least 1')
      .default(6000)
      .describe('Smallest session timeout a consumer may ask for, in milliseconds'),
    groupMaxSessionTimeoutMs: num()
      .min(1, 'at least 1')
      .default(1_800_000)
      .describe('Largest session timeout a consumer may ask for, in milliseconds'),
    maxRequestBytes: num()
      .min(1024, 'at least 1024')
      .default(100 * 1024 * 1024)
      .describe('Largest Kafka request frame, in bytes; a larger one closes the connection (Kafka socket.request.max.bytes)'),
    drainTimeoutMs: num()
      .min(1, 'at least 1')
      .default(30_000)
      .describe('Longest a Kafka response may wait for a full socket buffer before the connection is closed, in milliseconds'),
    maxInflightProduceRequests: num()
      .min(1, 'at least 1')
      .max(1024, 'at most 1024')
      .default(16)
      .describe(
        'Produce requests of one connection served at once (their appends overlap, responses keep request order); reaching it stops reading that connection. A broker whose journal is remote (--roles broker) serves one at a time',
      ),
    producerIdleExpiryMs: num()
      .min(1, 'at least 1')
      .default(7 * 24 * 3600 * 1000)
      .describe('Idempotent-producer sequence state idle longer than this is forgotten, in milliseconds'),
    tcpTransport: z
      .enum(['native', 'node'])
      .default('native')
      .describe(
        'Transport of the plain-TCP Kafka listener: native (our libuv addon: responses go to the kernel without the net.Socket stream machinery; falls back to node where the addon is not built) or node (net.Socket). TLS always uses Node',
      ),
    bindings: z
      .string()
      .default('')
      .superRefine((spec, ctx) => {
        try {
          parseBindings(spec);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .describe(
        'MQTT/Kafka bindings written to meta at start, separated by ";": name:in:<mqtt filter>[,<filter>]=>stream or name:out:stream=>[mqtt topic prefix]. Checked at start (exit 2): names [A-Za-z0-9._-], Kafka topic names, valid MQTT filters, prefixes without wildcards',
      ),
    saslMechanisms: z
      .string()
      .default('')
      .refine(
        (s) => s.split(',').every((m) => ['', 'PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'].includes(m.trim().toUpperCase())),
        'expected a comma-separated list of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512',
      )
      .describe(
        'SASL mechanisms Kafka clients must authenticate with (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; the MQTT users); empty = no authentication',
      ),
  }),
  tls: z.strictObject({
    certFile: z
      .string()
      .default('')
      .describe('PEM certificate chain of the TLS listeners (mqtts, wss); empty = those listeners are not bound. Reloaded when it changes'),
    keyFile: z.string().default('').describe('PEM private key of the TLS listeners; reloaded when it changes'),
    caFile: z
      .string()
      .default('')
      .describe('PEM CA bundle that verifies client certificates; set = clients are asked for one (mTLS); empty = none'),
    requireClientCert: bool().default(false).describe('Refuse TLS clients without a certificate signed by tls.caFile'),
    certUsernameFrom: z
      .enum(['cn', 'san'])
      .default('cn')
      .describe('The cert authenticator takes the username from the certificate subject CN or its first SAN (DNS, email, URI)'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2').describe('Oldest TLS version accepted'),
    reloadCheckMs: num()
      .min(50, 'at least 50')
      .default(2000)
      .describe('How often the certificate, key, CA and JWT key files are checked for changes, in milliseconds'),
    handshakeTimeoutMs: num().min(100, 'at least 100').default(10_000).describe('Time allowed for a TLS handshake, in milliseconds'),
  }),
  auth: z.strictObject({
    allowAnonymous: bool()
      .default(false)
      .describe('Let MQTT clients without credentials connect. Off: they are refused (CONNACK 0x87 / 5) and the log says why'),
    chain: methodList
      .default(['users', 'jwt', 'webhook', 'scram'])
      .describe(
        'Authenticators tried in order on every MQTT listener: users, jwt, webhook, cert, scram (each ignores what it cannot judge)',
      ),
    mqttChain: methodListOrEmpty.default([]).describe('Chain of the mqtt listener; empty = auth.chain'),
    mqttsChain: methodListOrEmpty.default([]).describe('Chain of the mqtts listener; empty = auth.chain (add cert for mTLS login)'),
    wsChain: methodListOrEmpty.default([]).describe('Chain of the ws listener; empty = auth.chain'),
    wssChain: methodListOrEmpty.default([]).describe('Chain of the wss listener; empty = auth.chain'),
    aclDefault: z.enum(['allow', 'deny']).default('allow').describe('Decision when no ACL rule matches a PUBLISH or SUBSCRIBE'),
    cacheWaitMs: num()
      .min(0, 'must not be negative')
      .default(5000)
      .describe('Longest a CONNECT waits for users and ACLs to load from meta at start-up, in milliseconds'),
    adminTokenFile: z
      .string()
      .default('')
      .describe('File of admin API bearer tokens, one per line; empty = <dataDir>/admin-token, created (mode 0600) on first start'),
    jwt: z.strictObject({
      secretFile: z.string().default('').describe('File with the HS256 shared secret; empty = HS256 off'),
      publicKeyFile: z.string().default('').describe('PEM public key or certificate for RS256/ES256 tokens; empty = none'),
      jwksFile: z.string().default('').describe('JWKS file ({"keys": [...]}) for RS256/ES256 tokens, chosen by kid; empty = none'),
      usernameClaim: z.string().min(1).default('sub').describe('Claim that becomes the MQTT username'),
      aclClaim: z
        .string()
        .min(1)
        .default('acl')
        .describe('Claim with ACL rules [{action, topic, permission}] checked before the stored rules'),
      requireExp: bool().default(true).describe('Refuse tokens without an exp claim'),
      issuer: z.string().default('').describe('Required iss claim; empty = not checked'),
      audience: z.string().default('').describe('Required aud claim; empty = not checked'),
    }),
    webhook: z.strictObject({
      url: z.string().default('').describe('Auth webhook URL (POST JSON, answer allow/deny/ignore); empty = off'),
      timeoutMs: num()
        .min(1, 'at least 1')
        .default(2000)
        .describe('Webhook timeout in milliseconds; a timeout or error denies (fails closed)'),
      cacheTtlMs: num()
        .min(0, 'must not be negative')
        .default(60_000)
        .describe('How long a webhook answer is reused for the same credentials, in milliseconds'),
    }),
  }),
  limits: z.strictObject({
    maxConnectionsPerListener: num().min(0, 'must not be negative').default(0).describe('Open connections per MQTT listener; 0 = no limit'),
    connectRatePerIp: num()
      .min(0, 'must not be negative')
      .default(0)
      .describe('New MQTT connections per second from one IP address; 0 = no limit'),
    publishRatePerClient: num()
      .min(0, 'must not be negative')
      .default(0)
      .describe('PUBLISH packets per second per client (over it, reading pauses); 0 = no limit'),
    publishBytesPerSecPerClient: num()
      .min(0, 'must not be negative')
      .default(0)
      .describe('PUBLISH payload bytes per second per client (over it, reading pauses); 0 = no limit'),
    flapMaxConnects: num()
      .min(0, 'must not be negative')
      .default(0)
      .describe('CONNECTs of one client id within limits.flapWindowMs that ban it for limits.flapBanMs; 0 = off'),
    flapWindowMs: num().min(1, 'at least 1').default(60_000).describe('Flapping detection window, in milliseconds'),
    flapBanMs: num()
      .min(1, 'at least 1')
      .default(300_000)
      .describe('How long a flapping client id is banned (a deny-list entry), in milliseconds'),
    drainTimeoutMs: num()
      .min(1, 'at least 1')
      .default(30_000)
      .describe('A client whose socket does not drain for this long is disconnected (slow consumer), in milliseconds'),
  }),
});

export type Config = Readonly<z.infer<typeof ConfigSchema>>;

/** One leaf of the schema: a settable key. */
export interface ConfigKey {
  path: readonly string[];
  key: string; // dotted
  env: string;
  flag: string;
  schema: z.ZodType;
  description: string;
  defaultValue: unknown;
  type: string;
}

const snake = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
const kebab = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

interface DefLike {
  type: string;
  innerType?: z.ZodType;
  defaultValue?: unknown;
  shape?: Record<string, z.ZodType>;
  out?: z.ZodType;
  element?: z.ZodType;
  entries?: Record<string, string>;
}
const defOf = (s: z.ZodType): DefLike => (s as unknown as { def: DefLike }).def;

function typeName(s: z.ZodType): string {
  const d = defOf(s);
  switch (d.type) {
    case 'default':
    case 'optional':
      return typeName(d.innerType as z.ZodType);
    case 'pipe':
      return typeName(d.out as z.ZodType);
    case 'array':
      return `list of ${typeName(d.element as z.ZodType)}`;
    case 'enum':
      return `one of ${Object.values(d.entries ?? {}).join(', ')}`;
    default:
      return d.type;
  }
}

function walk(schema: z.ZodType, path: string[], out: ConfigKey[]): void {
  const d = defOf(schema);
  if (d.type === 'object') {
    for (const [k, child] of Object.entries(d.shape ?? {})) walk(child, [...path, k], out);
    return;
  }
  out.push({
    path,
    key: path.join('.'),
    env: `ROBUSTMQ_${path.map(snake).join('_')}`,
    flag: `--${path.map(kebab).join('-')}`,
    schema,
    description: schema.description ?? '',
    defaultValue: d.type === 'default' ? d.defaultValue : undefined,
    type: typeName(schema),
  });
}

/** Every settable key, in schema order. */
export const configKeys: readonly ConfigKey[] = (() => {
  const out: ConfigKey[] = [];
  walk(ConfigSchema, [], out);
  return out;
})();

export interface ConfigSources {
  /** Path of a YAML file; missing file is a problem. */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags, keyed by dotted config key. */
  flags?: Record<string, unknown>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Flattens a parsed file into dotted keys; reports keys the schema does not know. */
function flattenFile(
  obj: Record<string, unknown>,
  known: Map<string, ConfigKey>,
  sections: Set<string>,
  problems: string[],
  prefix = '',
): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (sections.has(key)) {
      if (!isPlainObject(v)) {
        problems.push(`${key}: expected a section (mapping), got ${JSON.stringify(v)}`);
        continue;
      }
      for (const [ck, cv] of flattenFile(v, known, sections, problems, key)) out.set(ck, cv);
    } else if (known.has(key)) {
      out.set(key, v);
    } else {
      problems.push(`${key}: unknown configuration key`);
    }
  }
  return out;
}

export interface LoadedConfig {
  config: Config;
  /** Where each key's value came from: default, file, env or flag. */
  origin: Record<string, 'default' | 'file' | 'env' | 'flag'>;
}

/**
 * Loads, validates and freezes the configuration. Every problem in every source is collected;
 * if there is any, a ConfigError lists them all. `partial` on the error holds the keys that did
 * validate, so the caller can run further start-up checks (ports, data dir) and report those too.
 */
export function loadConfig(src: ConfigSources = {}): LoadedConfig {
  const problems: string[] = [];
  const known = new Map(configKeys.map((k) => [k.key, k]));
  const sections = new Set<string>();
  for (const k of configKeys) for (let i = 1; i < k.path.length; i++) sections.add(k.path.slice(0, i).join('.'));

  const layers: { origin: 'file' | 'env' | 'flag'; values: Map<string, unknown> }[] = [];
  if (src.file !== undefined) {
    let text: string | undefined;
    try {
      text = readFileSync(src.file, 'utf8');
    } catch (err) {
      problems.push(`config file ${src.file}: cannot read it (${(err as Error).message})`);
    }
    if (text !== undefined) {
      try {
        const doc: unknown = parseYaml(text);
        if (doc === null || doc === undefined) layers.push({ origin: 'file', values: new Map() });
        else if (!isPlainObject(doc)) problems.push(`config file ${src.file}: expected a mapping of keys at the top level`);
        else layers.push({ origin: 'file', values: flattenFile(doc, known, sections, problems) });
      } catch (err) {
        problems.push(`config file ${src.file}: not valid YAML (${(err as Error).message.split('\n')[0]})`);
      }
    }
  }
  const env = src.env ?? {};
  const envValues = new Map<string, unknown>();
  const byEnv = new Map(configKeys.map((k) => [k.env, k]));
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('ROBUSTMQ_') || value === undefined) continue;
    const k = byEnv.get(name);
    if (k === undefined) problems.push(`${name}: unknown environment variable (no such configuration key)`);
    else envValues.set(k.key, value);
  }
  layers.push({ origin: 'env', values: envValues });
  layers.push({ origin: 'flag', values: new Map(Object.entries(src.flags ?? {})) });

  const origin: LoadedConfig['origin'] = {};
  const result: Record<string, unknown> = {};
  for (const k of configKeys) {
    let raw: unknown;
    let from: LoadedConfig['origin'][string] = 'default';
    for (const layer of layers) {
      if (layer.values.has(k.key)) {
        raw = layer.values.get(k.key);
        from = layer.origin;
      }
    }
    const r = k.schema.safeParse(raw);
    if (!r.success) {
      const where =
        from === 'env'
          ? ` (from ${k.env})`
          : from === 'flag'
            ? ` (from ${k.flag ?? 'flag'})`
            : from === 'file'
              ? ' (in the config file)'
              : '';
      for (const issue of r.error.issues) {
        const sub = issue.path.length > 0 ? `[${issue.path.join('.')}]` : '';
        problems.push(`${k.key}${sub}${where}: ${issue.message}; got ${JSON.stringify(raw)}`);
      }
      continue;
    }
    origin[k.key] = from;
    let cursor = result;
    for (const seg of k.path.slice(0, -1)) cursor = (cursor[seg] ??= {}) as Record<string, unknown>;
    cursor[k.path[k.path.length - 1] as string] = r.data;
  }
  if (problems.length === 0) problems.push(...crossChecks(result as z.infer<typeof ConfigSchema>));
  if (problems.length > 0) throw new ConfigError(problems, result);
  const config = ConfigSchema.parse(result);
  return { config: deepFreeze(config), origin };
}

/** Rules that involve more than one key. */
function crossChecks(c: z.infer<typeof ConfigSchema>): string[] {
  const problems: string[] = [];
  const peers = c.meta.peers.split(',').filter((p) => p.trim() !== '');
  const ids = peers.map((p) => Number(p.split('=')[0]));
  if (c.roles.includes('meta')) {
    if (peers.length > 1 && c.meta.clusterId === '' && !c.meta.join) {
      problems.push(
        'meta.clusterId: required when meta.peers names several members, so that every founding member bootstraps the same cluster',
      );
    }
    if (peers.length > 0 && !ids.includes(c.nodeId) && !c.meta.join)
      problems.push(`meta.peers: does not include this node (nodeId ${c.nodeId})`);
    if (new Set(ids).size !== ids.length) problems.push('meta.peers: a node id appears twice');
  }
  if (!c.roles.includes('meta') && c.meta.endpoints === '')
    problems.push('meta.endpoints: required when this node does not run the meta role');
  if (c.roles.includes('broker') && !c.roles.includes('journal') && c.journal.endpoint === '') {
    problems.push('journal.endpoint: required when a broker node does not run the journal role');
  }
  return problems;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const child of Object.values(v)) deepFreeze(child);
    Object.freeze(v);
  }
  return v;
}

/** The configuration reference (docs/configuration.md), generated from the schema. */
export function renderConfigReference(): string {
  const lines = [
    '# Configuration reference',
    '',
    '<!-- Generated by `robust-server config-reference`; a test fails when this file is stale. -->',
    '',
    'robust-server reads its settings from, in increasing precedence: the built-in defaults, the YAML',
    'file given with `--config FILE`, environment variables `ROBUSTMQ_<KEY>`, and command-line flags',
    '(`journal.segmentBytes` → `--journal-segment-bytes`). Unknown keys and unknown `ROBUSTMQ_*` variables are errors, so typos never',
    'go unnoticed. Every problem is reported at once and the server exits with code 2.',
    '',
    'Sections nest in the file (`tls:` then `certFile: …`) and join with `_` in variable names',
    '(`ROBUSTMQ_TLS_CERT_FILE`). Lists in variables and flags are comma-separated (`meta,broker`).',
    '',
    '| key | type | default | environment variable | flag | meaning |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const k of configKeys) {
    const def = Array.isArray(k.defaultValue) ? k.defaultValue.join(',') : JSON.stringify(k.defaultValue);
    lines.push(`| \`${k.key}\` | ${k.type} | \`${def}\` | \`${k.env}\` | \`${k.flag}\` | ${k.description} |`);
  }
  lines.push('', 'Units are in the key names: `…Ms` milliseconds, `…Bytes` bytes.', '');
  return lines.join('\n');
}
