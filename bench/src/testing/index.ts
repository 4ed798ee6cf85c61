/** Test helpers of robust-bench: a fake Kafka broker, the discarding MQTT sink. */
export { startFakeKafka, type FakeKafka } from './fake-kafka.js';
export { startSink, type SinkCounts } from '../sink.js';
