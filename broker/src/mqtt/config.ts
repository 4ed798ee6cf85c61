import { ConfigError } from '@robustmq/common';

/** What to do when a session's message queue is full. */
export const DropPolicy = { DropOldest: 'drop-oldest', DropNew: 'drop-new' } as const;
export type DropPolicy = (typeof DropPolicy)[keyof typeof DropPolicy];

/** Strategies for choosing one member of a shared subscription group. */
export const SharedStrategy = {
  RoundRobin: 'round_robin',
  Random: 'random',
  Sticky: 'sticky',
  HashClientId: 'hash_clientid',
  HashTopic: 'hash_topic',
} as const;
export type SharedStrategy = (typeof SharedStrategy)[keyof typeof SharedStrategy];

/**
 * MQTT engine configuration. Every key has a default (`MQTT_DEFAULTS`); units are in the names.
 * A limit of 0 means "no limit" only where stated.
 */
export interface MqttConfig {
  /** Open MQTT connections; beyond it CONNECT gets 0x97 Quota exceeded (3.x: 0x03 unavailable). */
  maxConnections: number;
  /** Largest packet accepted from a client (bytes, whole packet); larger → 0x95, connection closed. */
  maxPacketSizeBytes: number;
  /** Outbound QoS 1/2 messages in flight per client (further ones wait in the session queue). */
  maxInflightMessages: number;
  /** Inbound QoS 1/2 messages a client may have unacknowledged (5.0 Receive Maximum sent in CONNACK). */
  receiveMaximum: number;
  /** Messages queued per session (offline or window full); beyond it `queueDropPolicy` applies; 0 = no limit. */
  maxQueuedMessages: number;
  queueDropPolicy: DropPolicy;
  /** Topic name/filter length in bytes and number of levels. */
  maxTopicLengthBytes: number;
  maxTopicLevels: number;
  /** Subscriptions per session; beyond it SUBACK 0x97 (3.x: 0x80). */
  maxSubscriptionsPerClient: number;
  /** Retained messages in the broker; a new retained topic beyond it is not retained (counted). */
  maxRetainedMessages: number;
  /** Highest topic alias a client may use (5.0 Topic Alias Maximum in CONNACK); 0 disables. */
  topicAliasMaximum: number;
  /** Outbound topic aliases the server uses per client at most (bounded by the client's maximum). */
  maxOutboundTopicAliases: number;
  /** Server Keep Alive: a client asking for more (or 0) is told this value (5.0); 0 = accept the client's. */
  maxKeepAliveSec: number;
  /** Session Expiry Interval upper bound (5.0) and the expiry of 3.x persistent sessions; 0 = never expire 3.x sessions. */
  maxSessionExpirySec: number;
  /** Bytes buffered for a client's socket before QoS 0 messages to it are dropped. */
  maxOutboundBufferBytes: number;
  /** A client whose socket does not drain for this long is disconnected. */
  drainTimeoutMs: number;
  /** Time allowed between TCP accept and CONNECT. */
  connectTimeoutMs: number;
  /** `$SYS/` publication interval; 0 disables. */
  sysIntervalMs: number;
  /** Default strategy of `$share/` and `$queue/` groups. */
  sharedStrategy: SharedStrategy;
  /** Accept MQTT 3.1 (MQIsdp, level 3). */
  allowMqtt31: boolean;
  /**
   * The plain-TCP MQTT listener's transport: `native` holds connections in our libuv addon
   * (common/native/uvtcp.c, ~1 KB less per idle connection than a Node socket), `node` uses
   * `net.Socket`. `native` falls back to `node` where the addon was not built.
   */
  tcpTransport: 'native' | 'node';
  /** Retain available (5.0 Retain Available). */
  retainAvailable: boolean;
  /** Allow empty client ids (3.1.1 with clean session, 5.0 assigned id). */
  allowEmptyClientId: boolean;
}

export const MQTT_DEFAULTS: Readonly<MqttConfig> = Object.freeze({
  maxConnections: 100_000,
  maxPacketSizeBytes: 1024 * 1024,
  maxInflightMessages: 32,
  receiveMaximum: 128,
  maxQueuedMessages: 1000,
  queueDropPolicy: DropPolicy.DropOldest,
  maxTopicLengthBytes: 65535,
  maxTopicLevels: 128,
  maxSubscriptionsPerClient: 1000,
  maxRetainedMessages: 1_000_000,
  topicAliasMaximum: 65535,
  maxOutboundTopicAliases: 1024,
  maxKeepAliveSec: 0,
  maxSessionExpirySec: 0,
  maxOutboundBufferBytes: 8 * 1024 * 1024,
  drainTimeoutMs: 30_000,
  connectTimeoutMs: 10_000,
  sysIntervalMs: 10_000,
  sharedStrategy: SharedStrategy.RoundRobin,
  allowMqtt31: true,
  tcpTransport: 'native',
  retainAvailable: true,
  allowEmptyClientId: true,
});

const STRATEGIES = new Set<string>(Object.values(SharedStrategy));
const POLICIES = new Set<string>(Object.values(DropPolicy));

/** Defaults overlaid with `opts`, validated (all problems reported together) and frozen. */
export function resolveMqttConfig(opts: Partial<MqttConfig> = {}): Readonly<MqttConfig> {
  const c: MqttConfig = { ...MQTT_DEFAULTS, ...opts };
  const problems: string[] = [];
  const nonNegative = [
    'maxConnections',
    'maxPacketSizeBytes',
    'maxInflightMessages',
    'receiveMaximum',
    'maxQueuedMessages',
    'maxTopicLengthBytes',
    'maxTopicLevels',
    'maxSubscriptionsPerClient',
    'maxRetainedMessages',
    'topicAliasMaximum',
    'maxOutboundTopicAliases',
    'maxKeepAliveSec',
    'maxSessionExpirySec',
    'maxOutboundBufferBytes',
    'drainTimeoutMs',
    'connectTimeoutMs',
    'sysIntervalMs',
  ] as const;
  for (const k of nonNegative) {
    if (!Number.isInteger(c[k]) || c[k] < 0) problems.push(`mqtt.${k}: must be a non-negative integer`);
  }
  if (c.receiveMaximum < 1 || c.receiveMaximum > 65535) problems.push('mqtt.receiveMaximum: must be 1..65535');
  if (c.maxInflightMessages < 1 || c.maxInflightMessages > 65535) problems.push('mqtt.maxInflightMessages: must be 1..65535');
  if (c.topicAliasMaximum > 65535) problems.push('mqtt.topicAliasMaximum: must be 0..65535');
  if (c.maxKeepAliveSec > 65535) problems.push('mqtt.maxKeepAliveSec: must be 0..65535');
  if (c.maxPacketSizeBytes < 64 || c.maxPacketSizeBytes > 268_435_460) problems.push('mqtt.maxPacketSizeBytes: must be 64..268435460');
  if (c.maxTopicLengthBytes > 65535) problems.push('mqtt.maxTopicLengthBytes: must be at most 65535');
  if (!STRATEGIES.has(c.sharedStrategy)) problems.push(`mqtt.sharedStrategy: one of ${[...STRATEGIES].join(', ')}`);
  if (c.tcpTransport !== 'native' && c.tcpTransport !== 'node') problems.push('mqtt.tcpTransport: one of native, node');
  if (!POLICIES.has(c.queueDropPolicy)) problems.push(`mqtt.queueDropPolicy: one of ${[...POLICIES].join(', ')}`);
  if (problems.length > 0) throw new ConfigError(problems, c as unknown as Record<string, unknown>);
  return Object.freeze(c);
}
