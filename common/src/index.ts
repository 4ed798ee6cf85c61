/** Shared building blocks: errors, logger, metrics registry, small async helpers. */
export { ErrorCode, RobustError, ConfigError, TruncatedError, isErrno } from './errors.js';
export { createLogger, LogLevels, type LogLevel, type Logger } from './logger.js';
export { createMetricsRegistry, hotCounter, hotCounterFamily, METRIC_PREFIX, Registry, type HotCounter } from './metrics.js';
export { crc32c, crc32cImplementation } from './crc32c.js';
export { listen, listenError, closeServer } from './net.js';
export { UvSocket, UvTcpServer, uvTcpAvailable, uvTcpLoadError, uvTcpOpenCount } from './uv-tcp.js';
