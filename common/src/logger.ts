import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };
export const LogLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LogLevels)[number];

/**
 * The one root logger of a process: JSON lines on stdout (or `dest`), secrets redacted.
 * Components take `log.child({ component })`.
 */
export function createLogger(opts: { level: LogLevel; service: string; dest?: DestinationStream }): Logger {
  return pino(
    {
      level: opts.level,
      base: { service: opts.service, pid: process.pid },
      redact: ['*.password', '*.token', '*.secret', 'password', 'token'],
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.dest ?? pino.destination({ dest: 1, sync: true }),
  );
}
