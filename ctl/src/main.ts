#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP = `robust-ctl ${VERSION} — administer a RobustMQ cluster over its admin HTTP API

Usage:
  robust-ctl status [--server HOST:PORT] [--json]   readiness of a node and of each role it runs
  robust-ctl --help | --version

Options:
  --server HOST:PORT   admin HTTP address of any node [default: 127.0.0.1:58080, env ROBUSTMQ_CTL_SERVER]
  --json               print the server's JSON answer instead of a table
  --timeout-ms N       give up after N milliseconds [default: 5000]

Exit codes: 0 ok, 1 the node answered "not ready" or the request failed, 2 bad usage.
`;

function fail(message: string, code = 1): never {
  process.stderr.write(`robust-ctl: ${message}\n`);
  process.exit(code);
}

let parsed;
try {
  parsed = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      server: { type: 'string' },
      json: { type: 'boolean' },
      'timeout-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'V' },
    },
  });
} catch (err) {
  fail(`${(err as Error).message}\nRun robust-ctl --help for usage.`, 2);
}
const { values, positionals } = parsed;
if (values.help === true) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (values.version === true) {
  process.stdout.write(`robust-ctl ${VERSION}\n`);
  process.exit(0);
}
const server = values.server ?? process.env.ROBUSTMQ_CTL_SERVER ?? '127.0.0.1:58080';
const timeoutMs = Number(values['timeout-ms'] ?? 5000);
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) fail('--timeout-ms must be a positive integer', 2);
const [command, ...rest] = positionals;
if (command === undefined) fail('missing command\nRun robust-ctl --help for usage.', 2);
if (rest.length > 0) fail(`unexpected argument: ${rest.join(' ')}`, 2);

if (command === 'status') {
  let res: Response;
  try {
    res = await fetch(`http://${server}/health/ready`, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    fail(
      `cannot reach ${server}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`,
    );
  }
  const body = (await res.json()) as { status: string; roles: Record<string, string>; reasons?: string[] };
  if (values.json === true) process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
  else {
    process.stdout.write(`node ${server}: ${body.status}\n`);
    const width = Math.max(4, ...Object.keys(body.roles).map((r) => r.length));
    process.stdout.write(`${'ROLE'.padEnd(width)}  STATE\n`);
    for (const [role, state] of Object.entries(body.roles)) process.stdout.write(`${role.padEnd(width)}  ${state}\n`);
  }
  process.exit(res.status === 200 ? 0 : 1);
}
fail(`unknown command: ${command}\nRun robust-ctl --help for usage.`, 2);
