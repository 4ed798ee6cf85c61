/** The broker: stateless MQTT and Kafka listeners. */
export { Broker, type BrokerOptions } from './broker.js';
export { TcpListener, type TcpListenerOptions } from './tcp-listener.js';
export { createListenerMetrics, type ListenerMetrics } from './metrics.js';
