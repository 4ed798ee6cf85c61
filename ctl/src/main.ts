#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { existsSync, readFileSync } from 'node:fs';
import { AdminApi, CtlError } from './admin-api.js';
import { printTable } from './table.js';
import { runMeta, META_HELP } from './meta-commands.js';
import { runAcl, runDenylist, runUser, SECURITY_HELP } from './security-commands.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP = `robust-ctl ${VERSION} — administer a RobustMQ cluster over its admin HTTP API

Usage:
  robust-ctl status [--json]                 readiness of a node and of each role it runs
  robust-ctl brokers [--json]                live brokers (registered in meta): id, name, host, ports, version
${META_HELP}
${SECURITY_HELP}
  robust-ctl --help | --version

Options:
  --server HOST:PORT   admin HTTP address of any node [default: 127.0.0.1:58080, env ROBUSTMQ_CTL_SERVER]
  --token TOKEN        admin API bearer token [env ROBUSTMQ_CTL_TOKEN]
  --token-file FILE    read the token from FILE [default: ./data/admin-token when it exists]
  --json               print JSON instead of a table
  --timeout-ms N       give up after N milliseconds [default: 5000]
  --prefix             (meta get/del/watch) act on every key starting with KEY
  --limit N            (meta get) at most N keys
  --rev N              (meta watch) replay history from revision N first
  --lease ID           (meta put) attach the key to a lease

Exit codes: 0 ok, 1 the request failed or the node is not ready, 2 bad usage.
`;

let parsed;
try {
  parsed = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      server: { type: 'string' },
      json: { type: 'boolean' },
      'timeout-ms': { type: 'string' },
      prefix: { type: 'boolean' },
      limit: { type: 'string' },
      rev: { type: 'string' },
      lease: { type: 'string' },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      password: { type: 'string' },
      'password-stdin': { type: 'boolean' },
      superuser: { type: 'boolean' },
      username: { type: 'string' },
      clientid: { type: 'string' },
      ip: { type: 'string' },
      position: { type: 'string' },
      reason: { type: 'string' },
      'ttl-ms': { type: 'string' },
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
const timeoutMs = Number(values['timeout-ms'] ?? 5000);
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) fail('--timeout-ms must be a positive integer', 2);
const api = new AdminApi(values.server ?? process.env.ROBUSTMQ_CTL_SERVER ?? '127.0.0.1:58080', timeoutMs, adminToken());
const [command, ...rest] = positionals;

try {
  if (command === undefined) fail('missing command\nRun robust-ctl --help for usage.', 2);
  else if (command === 'status') {
    if (rest.length > 0) fail(`unexpected argument: ${rest.join(' ')}`, 2);
    const { status, body } = await api.request('GET', '/health/ready', { allowStatus: [503] });
    const b = body as { status: string; roles: Record<string, string> };
    if (values.json === true) process.stdout.write(`${JSON.stringify(b, null, 2)}\n`);
    else {
      process.stdout.write(`node ${api.server}: ${b.status}\n`);
      printTable(
        ['ROLE', 'STATE'],
        Object.entries(b.roles).map(([r, s]) => [r, s]),
      );
    }
    process.exit(status === 200 ? 0 : 1);
  } else if (command === 'brokers') {
    if (rest.length > 0) fail(`unexpected argument: ${rest.join(' ')}`, 2);
    const { body } = await api.request('GET', '/api/v1/brokers');
    const b = body as {
      brokers: { nodeId: number; name: string; host: string; ports: Record<string, number>; version: string; startedAt: string }[];
    };
    if (values.json === true) process.stdout.write(`${JSON.stringify(b, null, 2)}\n`);
    else {
      printTable(
        ['ID', 'NAME', 'HOST', 'PORTS', 'VERSION', 'STARTED'],
        b.brokers.map((x) => [
          x.nodeId,
          x.name,
          x.host,
          Object.entries(x.ports)
            .map(([k, v]) => `${k}=${v}`)
            .join(','),
          x.version,
          x.startedAt,
        ]),
      );
    }
    process.exit(0);
  } else if (command === 'meta') {
    process.exit(await runMeta(api, rest, values));
  } else if (command === 'user') {
    process.exit(await runUser(api, rest, values));
  } else if (command === 'acl') {
    process.exit(await runAcl(api, rest, values));
  } else if (command === 'denylist') {
    process.exit(await runDenylist(api, rest, values));
  } else fail(`unknown command: ${command}\nRun robust-ctl --help for usage.`, 2);
} catch (err) {
  if (err instanceof CtlError) fail(err.message, err.exitCode);
  throw err;
}

/** --token, then ROBUSTMQ_CTL_TOKEN, then --token-file, then ./data/admin-token if it exists. */
function adminToken(): string | undefined {
  if (values.token !== undefined) return values.token;
  const env = process.env.ROBUSTMQ_CTL_TOKEN;
  if (env !== undefined && env !== '') return env;
  const file = values['token-file'] ?? (existsSync('./data/admin-token') ? './data/admin-token' : undefined);
  if (file === undefined) return undefined;
  try {
    const first = readFileSync(file, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '' && !l.startsWith('#'));
    if (first === undefined) fail(`token file ${file} holds no token`, 2);
    return first;
  } catch (err) {
    return fail(`cannot read token file ${file}: ${(err as Error).message}`, 2);
  }
}

function fail(message: string, code = 1): never {
  process.stderr.write(`robust-ctl: ${message}\n`);
  process.exit(code);
}
