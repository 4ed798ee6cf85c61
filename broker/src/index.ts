/** The broker: stateless MQTT and Kafka listeners. */
export { Broker, type BrokerOptions } from './broker.js';
export { TcpListener, type TcpListenerOptions } from './tcp-listener.js';
export { createListenerMetrics, type ListenerMetrics } from './metrics.js';
/** The MQTT protocol engine, its configuration and defaults. */
export { MqttEngine, type MqttEngineOptions } from './mqtt/engine.js';
export { MQTT_DEFAULTS, resolveMqttConfig, DropPolicy, SharedStrategy, type MqttConfig } from './mqtt/config.js';
export { ReasonCode, ConnectReturnCode } from './mqtt/reason-codes.js';
/** MQTT persistence seams (implement these over the journal and meta) and their in-memory and file implementations. */
export type {
  SessionStore,
  SessionRecord,
  SubscriptionRecord,
  WillRecord,
  InboxStore,
  InboxEntry,
  RetainStore,
  StoredMessage,
  MqttStores,
} from './mqtt/stores/types.js';
export type { PublishProperties, UserProperty } from './mqtt/codec.js';
export { MemorySessionStore, MemoryInboxStore, MemoryRetainStore, createMemoryStores } from './mqtt/stores/memory.js';
export { FileSessionStore, FileInboxStore, FileRetainStore, openFileStores } from './mqtt/stores/file.js';
export { MetaSessionStore, JournalInboxStore, JournalRetainStore, openClusterStores } from './mqtt/stores/cluster.js';
/** Security: listeners (TLS, WebSocket), authentication chain, ACLs, deny list, abuse limits. */
export { BrokerSecurity, ConnectionSecurity, type ConnectionInfo, type ConnectAttempt, type ConnectDecision } from './auth/security.js';
export {
  AuthMethod,
  AUTH_METHODS,
  AUTH_DEFAULTS,
  LIMITS_DEFAULTS,
  TLS_DEFAULTS,
  type AuthConfig,
  type LimitsConfig,
  type TlsConfig,
  type JwtConfig,
  type WebhookConfig,
} from './auth/config.js';
export { SecurityAdmin } from './auth/admin.js';
export { MemoryMeta, type SecurityMeta } from './auth/memory-meta.js';
export {
  DenyKind,
  DENY_KINDS,
  AclAction,
  checkAclRule,
  checkDenyEntry,
  type AclRule,
  type AclWho,
  type DenyEntry,
  type UserRecord,
} from './auth/records.js';
export { TlsContextSource } from './listeners/tls-context.js';
export type { Listener } from './listeners/types.js';
export { BINDINGS_PREFIX, BINDING_NAME, bindingProblems, parseBindings, type BindingRecord } from './kafka/bindings.js';
/** Cluster membership: broker registrations in meta, the live view, coordinator and leader placement. */
export {
  BrokerMembership,
  BROKERS_PREFIX,
  coordinatorOf,
  partitionLeaderOf,
  stableHash,
  type BrokerCluster,
  type BrokerMembershipOptions,
  type BrokerRegistration,
} from './cluster.js';
