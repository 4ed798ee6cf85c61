/**
 * Command-line options of the robust-bench subcommands: one table per command gives each
 * option's type, default and help line; every problem is reported at once (ConfigError).
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '@robustmq/common';

export interface OptionSpec {
  type: 'string' | 'boolean' | 'number';
  default?: string | number | boolean;
  help: string;
  /** Allowed values for strings. */
  choices?: readonly string[];
  min?: number;
  max?: number;
  short?: string;
}

export type OptionTable = Record<string, OptionSpec>;
export type OptionValues = Record<string, string | number | boolean | undefined>;

/** The connection options every load generator shares. */
export const targetOptions = {
  host: { type: 'string', default: '127.0.0.1', help: 'broker host', short: 'h' },
  port: { type: 'number', help: 'broker port (MQTT 1883, or 8883 with --tls; Kafka 9092)', min: 1, max: 65535, short: 'p' },
  tls: { type: 'boolean', default: false, help: 'connect over TLS' },
  ca: { type: 'string', help: 'PEM CA bundle to verify the broker with (implies --tls)' },
  cert: { type: 'string', help: 'PEM client certificate (implies --tls)' },
  key: { type: 'string', help: 'PEM private key of --cert' },
  insecure: { type: 'boolean', default: false, help: 'do not verify the broker certificate' },
  username: { type: 'string', short: 'u', help: 'user name (MQTT CONNECT; Kafka SASL is not supported)' },
  password: { type: 'string', short: 'P', help: 'password' },
  json: { type: 'boolean', default: false, help: 'print the summary as JSON on stdout, no progress line' },
  help: { type: 'boolean', default: false, help: 'show this help' },
} as const satisfies OptionTable;

export function renderHelp(usage: string, table: OptionTable): string {
  const rows = Object.entries(table).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'boolean' ? '' : ` <${o.choices ? o.choices.join('|') : o.type === 'number' ? 'n' : 'value'}>`}`;
    const def = o.default !== undefined && o.default !== false ? ` (default ${String(o.default)})` : '';
    return `  ${flag.padEnd(36)} ${o.help}${def}`;
  });
  return `${usage}\n\nOptions:\n${rows.join('\n')}\n`;
}

/** Parses `argv` against `table`; throws ConfigError listing every problem. */
export function parseOptions(argv: string[], table: OptionTable): { values: OptionValues; positionals: string[] } {
  const spec: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, o] of Object.entries(table))
    spec[name] = { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.short ? { short: o.short } : {}) };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options: spec, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError([(err as Error).message], {});
  }
  const problems: string[] = [];
  const values: OptionValues = {};
  for (const [name, o] of Object.entries(table)) {
    const raw = parsed.values[name] as string | boolean | undefined;
    if (raw === undefined) {
      values[name] = o.default;
      continue;
    }
    if (o.type === 'number') {
      const n = Number(raw);
      if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n))
        problems.push(`--${name}: expected a number, got ${JSON.stringify(raw)}`);
      else if (o.min !== undefined && n < o.min) problems.push(`--${name}: at least ${o.min}, got ${n}`);
      else if (o.max !== undefined && n > o.max) problems.push(`--${name}: at most ${o.max}, got ${n}`);
      else values[name] = n;
    } else if (o.type === 'string' && o.choices && !o.choices.includes(raw as string)) {
      problems.push(`--${name}: one of ${o.choices.join(', ')}, got ${JSON.stringify(raw)}`);
    } else values[name] = raw;
  }
  if (problems.length > 0) throw new ConfigError(problems, values);
  return { values, positionals: parsed.positionals };
}

/** TLS settings from the shared options, or null for plain TCP. */
export interface TlsSettings {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  insecure: boolean;
}

export function tlsFrom(v: OptionValues): TlsSettings | null {
  if (!v.tls && v.ca === undefined && v.cert === undefined) return null;
  return {
    ca: v.ca as string | undefined,
    cert: v.cert as string | undefined,
    key: v.key as string | undefined,
    insecure: v.insecure === true,
  };
}

/** Prints a usage error the way every subcommand does and returns exit code 2. */
export function usageError(cmd: string, err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(
      `robust-bench ${cmd}: invalid options\n${err.problems.map((p) => `  ${p}`).join('\n')}\nRun robust-bench ${cmd} --help.\n`,
    );
    return 2;
  }
  throw err;
}
