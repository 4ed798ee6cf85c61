import type { Logger } from '@robustmq/common';
import type { MetaClient } from '@robustmq/meta';
import type { JournalClient } from '@robustmq/journal';
import type { KafkaConfig } from './config.js';
import type { StreamRegistry } from './streams.js';
import type { GroupCoordinator } from './groups.js';
import type { OffsetStore } from './offsets.js';
import type { ProducerStateManager } from './producers.js';
import type { BindingManager } from './bindings.js';
import type { KafkaMetrics } from './metrics.js';
import type { SaslConnection } from './sasl.js';

/** What request handlers work with: one per Kafka listener, shared by its connections. */
export interface KafkaContext {
  readonly config: Readonly<KafkaConfig>;
  readonly meta: MetaClient;
  readonly journal: JournalClient;
  readonly streams: StreamRegistry;
  readonly groups: GroupCoordinator;
  readonly offsets: OffsetStore;
  readonly producers: ProducerStateManager;
  readonly bindings: BindingManager;
  readonly metrics: KafkaMetrics;
  readonly log: Logger;
  readonly nodeId: number;
  readonly clusterId: string;
  /** Host and port clients are told to connect to (Metadata, FindCoordinator, DescribeCluster). */
  advertisedHost(): string;
  advertisedPort(): number;
  /**
   * Live brokers as clients of this listener reach them, sorted by node id; this broker is
   * always one of them (alone in the all-in-one server).
   */
  brokers(): KafkaBrokerAddress[];
  /** Does this broker coordinate the group (the broker its id hashes to among the live ones)? */
  isCoordinator(groupId: string): boolean;
}

/** A broker in Metadata, DescribeCluster and FindCoordinator answers. */
export interface KafkaBrokerAddress {
  nodeId: number;
  host: string;
  port: number;
}

/** The connection a request came in on. */
export interface RequestInfo {
  apiVersion: number;
  clientId: string;
  clientHost: string;
  /** Aborted when the connection closes (long polls end). */
  signal: AbortSignal;
  /** The connection's SASL state (SaslHandshake, SaslAuthenticate). */
  sasl?: SaslConnection | undefined;
}

/** A request handler: the decoded request in, the response body out (undefined = no response, acks=0). */
export type Handler = (ctx: KafkaContext, req: never, info: RequestInfo) => Promise<unknown>;
