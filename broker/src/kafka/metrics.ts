import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { hotCounter, type HotCounter } from '@robustmq/common';

/** Metrics of the Kafka listener (names are part of the dashboards; see broker/README.md). */
export interface KafkaMetrics {
  requests: Counter<'api' | 'version' | 'outcome'>;
  requestDuration: Histogram<'api'>;
  /** Per-request counters are hot counters: plain adds, moved into Prometheus on scrape. */
  bytesIn: HotCounter;
  bytesOut: HotCounter;
  parkedFetches: Gauge;
  producedRecords: HotCounter;
  bridgedRecords: Counter<'direction'>;
}

/** Registers the Kafka metrics (a registry already holding them returns the existing ones). */
export function createKafkaMetrics(registry: Registry): KafkaMetrics {
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    requests: get(
      'robustmq_kafka_requests_total',
      () =>
        new Counter({
          name: 'robustmq_kafka_requests_total',
          help: 'Kafka requests served, by API, version and outcome (ok, error, closed)',
          labelNames: ['api', 'version', 'outcome'],
          registers: [registry],
        }),
    ),
    requestDuration: get(
      'robustmq_kafka_request_duration_seconds',
      () =>
        new Histogram({
          name: 'robustmq_kafka_request_duration_seconds',
          help: 'Time from a Kafka request read to its response written, by API (long polls included)',
          labelNames: ['api'],
          buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
          registers: [registry],
        }),
    ),
    bytesIn: hotCounter(
      get(
        'robustmq_kafka_bytes_received_total',
        () => new Counter({ name: 'robustmq_kafka_bytes_received_total', help: 'Bytes of Kafka requests read', registers: [registry] }),
      ),
    ),
    bytesOut: hotCounter(
      get(
        'robustmq_kafka_bytes_sent_total',
        () => new Counter({ name: 'robustmq_kafka_bytes_sent_total', help: 'Bytes of Kafka responses written', registers: [registry] }),
      ),
    ),
    parkedFetches: get(
      'robustmq_kafka_parked_fetches',
      () =>
        new Gauge({ name: 'robustmq_kafka_parked_fetches', help: 'Fetch requests waiting for data (long poll)', registers: [registry] }),
    ),
    producedRecords: hotCounter(
      get(
        'robustmq_kafka_produced_records_total',
        () =>
          new Counter({
            name: 'robustmq_kafka_produced_records_total',
            help: 'Records appended by Kafka Produce requests',
            registers: [registry],
          }),
      ),
    ),
    bridgedRecords: get(
      'robustmq_kafka_bridged_records_total',
      () =>
        new Counter({
          name: 'robustmq_kafka_bridged_records_total',
          help: 'Records bridged between MQTT and Kafka, by direction (mqtt_to_kafka, kafka_to_mqtt)',
          labelNames: ['direction'],
          registers: [registry],
        }),
    ),
  };
}
