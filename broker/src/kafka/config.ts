/**
 * Kafka listener configuration (server keys `kafka.<name>`, documented in docs/configuration.md).
 * Units are in the names.
 */
export interface KafkaConfig {
  /** Create a stream on first Metadata/Produce for an unknown topic (Kafka `auto.create.topics.enable`). */
  autoCreateTopics: boolean;
  /** Partitions of auto-created streams and of CreateTopics with −1 (Kafka `num.partitions`). */
  defaultPartitions: number;
  /** Journal engine of new streams' shards: `segment` (files) or `memory`. */
  streamEngine: 'segment' | 'memory';
  /** Delay of the first rebalance of an empty group, so members starting together join one generation. */
  groupInitialRebalanceDelayMs: number;
  /** Bounds of the session timeout members may ask for (Kafka `group.min/max.session.timeout.ms`). */
  groupMinSessionTimeoutMs: number;
  groupMaxSessionTimeoutMs: number;
  /** Largest request frame; a larger one closes the connection (Kafka `socket.request.max.bytes`). */
  maxRequestBytes: number;
  /** Longest a response write may wait for a full socket buffer before the connection is closed. */
  drainTimeoutMs: number;
  /**
   * Produce requests of one connection served at once (their appends overlap; responses keep
   * request order); reaching it stops reading the connection. 1 = one request at a time.
   */
  maxInflightProduceRequests: number;
  /** Idempotent-producer state idle longer than this is forgotten (Kafka `transactional.id.expiration.ms`-like). */
  producerIdleExpiryMs: number;
  /**
   * MQTT ↔ Kafka bindings written to meta at start (`/bindings/<name>`), `;`-separated:
   * `name:in:<mqtt filter>[,<filter>…]=>stream` or `name:out:stream=>[mqtt topic prefix]`.
   */
  bindings: string;
  /**
   * SASL mechanisms clients must authenticate with, comma-separated (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`),
   * against the MQTT users in meta; empty = no authentication (anonymous Kafka clients).
   */
  saslMechanisms: string;
  /**
   * Transport of the plain-TCP Kafka listener: `native` (common/native/uvtcp.c: writes go to the
   * kernel from the addon, no net.Socket stream machinery per request) or `node` (net.Socket).
   * Falls back to `node` with a warning where the addon is not built. TLS always uses Node.
   */
  tcpTransport: 'native' | 'node';
}

export const KAFKA_DEFAULTS: Readonly<KafkaConfig> = Object.freeze({
  autoCreateTopics: true,
  defaultPartitions: 1,
  streamEngine: 'segment',
  groupInitialRebalanceDelayMs: 3000,
  groupMinSessionTimeoutMs: 6000,
  groupMaxSessionTimeoutMs: 1_800_000,
  maxRequestBytes: 100 * 1024 * 1024,
  drainTimeoutMs: 30_000,
  maxInflightProduceRequests: 16,
  producerIdleExpiryMs: 7 * 24 * 3600 * 1000,
  bindings: '',
  saslMechanisms: '',
  tcpTransport: 'native',
});

export function resolveKafkaConfig(c: Partial<KafkaConfig> = {}): Readonly<KafkaConfig> {
  return Object.freeze({ ...KAFKA_DEFAULTS, ...c });
}
