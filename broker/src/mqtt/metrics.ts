import { Counter, Gauge, type Registry } from 'prom-client';

/** Metrics of the MQTT engine (names are part of the dashboards; see broker/README.md). */
export interface MqttMetrics {
  connections: Gauge;
  sessions: Gauge;
  messagesReceived: Counter<'qos'>;
  messagesSent: Counter<'qos'>;
  bytesReceived: Counter;
  bytesSent: Counter;
  messagesDropped: Counter<'reason'>;
  subscriptions: Gauge;
  retained: Gauge;
  inboxDepth: Gauge;
  inflight: Gauge;
  limitHits: Counter<'limit'>;
  disconnects: Counter<'reason'>;
}

/**
 * Registers the MQTT metrics on `registry`. A registry already holding them (two engines in one
 * test process) gets the existing instances back.
 */
export function createMqttMetrics(registry: Registry): MqttMetrics {
  const gauge = (name: string, help: string): Gauge =>
    (registry.getSingleMetric(name) as Gauge | undefined) ?? new Gauge({ name, help, registers: [registry] });
  const counter = <L extends string>(name: string, help: string, labelNames: L[]): Counter<L> =>
    (registry.getSingleMetric(name) as Counter<L> | undefined) ?? new Counter({ name, help, labelNames, registers: [registry] });
  return {
    connections: gauge('robustmq_mqtt_connections', 'Open MQTT connections that completed CONNECT'),
    sessions: gauge('robustmq_mqtt_sessions', 'MQTT sessions held (online and offline)'),
    messagesReceived: counter('robustmq_mqtt_messages_received_total', 'PUBLISH packets received from clients', ['qos']),
    messagesSent: counter('robustmq_mqtt_messages_sent_total', 'PUBLISH packets sent to clients', ['qos']),
    bytesReceived: counter('robustmq_mqtt_bytes_received_total', 'Bytes read from MQTT connections', []),
    bytesSent: counter('robustmq_mqtt_bytes_sent_total', 'Bytes written to MQTT connections', []),
    messagesDropped: counter('robustmq_mqtt_messages_dropped_total', 'Messages not delivered to a session, by reason', ['reason']),
    subscriptions: gauge('robustmq_mqtt_subscriptions', 'Subscriptions held (all sessions)'),
    retained: gauge('robustmq_mqtt_retained_messages', 'Retained messages held'),
    inboxDepth: gauge('robustmq_mqtt_inbox_queue_depth', 'Messages queued for sessions (offline or window full)'),
    inflight: gauge('robustmq_mqtt_inflight_messages', 'Outbound QoS 1/2 messages awaiting acknowledgement'),
    limitHits: counter('robustmq_mqtt_limit_hits_total', 'Times a configured limit was reached, by limit', ['limit']),
    disconnects: counter('robustmq_mqtt_disconnects_total', 'Connections ended, by reason', ['reason']),
  };
}

/** Drop reasons (label values of robustmq_mqtt_messages_dropped_total). */
export const DropReason = {
  QueueFull: 'queue_full',
  Expired: 'expired',
  PacketTooLarge: 'packet_too_large',
  SlowConsumer: 'slow_consumer',
  OfflineQos0: 'offline_qos0',
  NoSubscribers: 'no_subscribers',
  RetainedLimit: 'retained_limit',
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];
