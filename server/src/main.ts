#!/usr/bin/env node
import { ConfigError, createLogger, createMetricsRegistry } from '@robustmq/common';
import { HELP, VERSION, parseCommand } from './cli.js';
import { loadConfig, renderConfigReference } from './config.js';
import { RobustNode, StartupError } from './node.js';

const cmd = parseCommand(process.argv.slice(2));
switch (cmd.kind) {
  case 'help':
    process.stdout.write(HELP);
    process.exit(0);
  // eslint-disable-next-line no-fallthrough
  case 'version':
    process.stdout.write(`robust-server ${VERSION}\n`);
    process.exit(0);
  // eslint-disable-next-line no-fallthrough
  case 'config-reference':
    process.stdout.write(renderConfigReference());
    process.exit(0);
  // eslint-disable-next-line no-fallthrough
  case 'usage-error':
    process.stderr.write(`robust-server: ${cmd.message}\n`);
    process.exit(2);
  // eslint-disable-next-line no-fallthrough
  case 'start':
    break;
}

let loaded;
try {
  loaded = loadConfig({ file: cmd.configFile, env: process.env, flags: cmd.flags });
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  // Report start-up problems of the valid part too (ports in use, data dir), all in one message.
  const extra = await preflight(err.partial);
  process.stderr.write(`robust-server: ${err.message}${extra.map((p) => `\n  - ${p}`).join('')}\n`);
  process.exit(2);
}
const { config } = loaded;

const log = createLogger({ level: config.logLevel, service: 'robust-server' });
const registry = createMetricsRegistry({ node: String(config.nodeId) });
// POD_NAME (Kubernetes downward API) names the broker's registration, which the operator matches to the pod.
const node = new RobustNode(config, log, registry, { podName: process.env.POD_NAME || undefined });

process.on('uncaughtException', (err) => {
  log.fatal({ err }, 'uncaught exception; exiting');
  process.exit(1);
});
process.on('unhandledRejection', (err) => {
  log.fatal({ err }, 'unhandled rejection; exiting');
  process.exit(1);
});

let stopping = false;
const onSignal = (signal: NodeJS.Signals): void => {
  if (stopping) {
    log.warn({ signal }, 'second signal; exiting now');
    process.exit(1);
  }
  stopping = true;
  log.info({ signal, shutdownTimeoutMs: config.shutdownTimeoutMs }, 'shutting down');
  const timer = setTimeout(() => {
    log.error({ shutdownTimeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out; exiting');
    process.exit(1);
  }, config.shutdownTimeoutMs);
  timer.unref();
  node.stop(Math.max(0, config.shutdownTimeoutMs - 500)).then(
    () => {
      log.info('stopped');
      process.exit(0);
    },
    (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

try {
  const ports = await node.start();
  log.info({ ports, roles: config.roles, nodeId: config.nodeId, dataDir: config.dataDir, version: VERSION }, 'listening');
} catch (err) {
  if (!(err instanceof StartupError)) throw err;
  process.stderr.write(`robust-server: ${err.message}\n`);
  process.exit(2);
}

/** Checks what can be checked of a configuration that failed validation: ports and data dir. */
async function preflight(partial: Readonly<Record<string, unknown>>): Promise<string[]> {
  const { checkPorts } = await import('./preflight.js');
  return checkPorts(partial);
}
