/** @robustmq/bench: the robust-bench load generators as functions, for scripts that drive them in-process. */
export { runMqttBench, optionsFrom as mqttOptionsFrom, MqttModes, type MqttBenchOptions, type MqttBenchHooks } from './mqtt-bench.js';
export { runKafkaBench, kafkaOptionsFrom, KafkaModes, type KafkaBenchOptions } from './kafka-bench.js';
export { startSink, type SinkCounts } from './sink.js';
export { Histogram, median, percentileOf, type Summary, type LatencySummary } from './stats.js';
