import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { configKeys } from './config.js';

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

export const HELP = `robust-server ${VERSION} — RobustMQ: MQTT and Kafka over one storage layer

Usage:
  robust-server start [options]        run the roles of this node (all of them by default)
  robust-server config-reference       print the configuration reference (Markdown)
  robust-server --help | --version

With no options, \`start\` runs meta, journal and broker in one process with data in ./data,
MQTT on 1883, Kafka on 9092 and the admin HTTP API on 58080.

Options of start:
  --config FILE                YAML configuration file
${configKeys
  .map((k) => {
    const def = Array.isArray(k.defaultValue) ? k.defaultValue.join(',') : String(k.defaultValue);
    return `  ${`${k.flag} ${k.key === 'roles' ? 'LIST' : 'VALUE'}`.padEnd(28)} ${k.description} [default: ${def}]`;
  })
  .join('\n')}
  -h, --help                   show this help

Every key can also be set in the config file or as ROBUSTMQ_<KEY> in the environment
(precedence: flag > environment > file > default); see docs/configuration.md.
Port 0 means any free port; the bound ports are logged in the "listening" line.

Exit codes: 0 clean shutdown, 1 failure while running, 2 bad configuration or start-up problem.
SIGTERM or SIGINT shuts down gracefully (bounded by shutdownTimeoutMs); a second signal exits at once.
`;

export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'config-reference' }
  | { kind: 'start'; configFile: string | undefined; flags: Record<string, string> }
  | { kind: 'usage-error'; message: string };

/** Parses argv (without node and script). Never throws: bad usage becomes `usage-error`. */
export function parseCommand(argv: readonly string[]): Command {
  const flagKeys = configKeys;
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'V' },
  };
  for (const k of flagKeys) options[k.flag.slice(2)] = { type: 'string' };
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (err) {
    return { kind: 'usage-error', message: `${(err as Error).message}\nRun robust-server --help for usage.` };
  }
  const { values, positionals } = parsed;
  if (values.version === true) return { kind: 'version' };
  if (values.help === true) return { kind: 'help' };
  if (positionals.length === 0)
    return { kind: 'usage-error', message: 'missing command (try: robust-server start)\nRun robust-server --help for usage.' };
  const [cmd, ...rest] = positionals;
  if (rest.length > 0) return { kind: 'usage-error', message: `unexpected argument: ${rest.join(' ')}` };
  if (cmd === 'config-reference') return { kind: 'config-reference' };
  if (cmd !== 'start') return { kind: 'usage-error', message: `unknown command: ${cmd}\nRun robust-server --help for usage.` };
  const flags: Record<string, string> = {};
  for (const k of flagKeys) {
    const v = values[k.flag.slice(2)];
    if (typeof v === 'string') flags[k.key] = v;
  }
  return { kind: 'start', configFile: typeof values.config === 'string' ? values.config : undefined, flags };
}
