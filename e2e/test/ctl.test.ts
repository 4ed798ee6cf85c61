import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, startServer } from '../src/index.js';

async function ctl(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [`${REPO_ROOT}bin/robust-ctl`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = await once(proc, 'exit');
  return { code: code as number | null, stdout, stderr };
}

test('robust-ctl status shows each role of a running node, as a table and as JSON', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-ctl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const srv = await startServer([
    'start',
    '--data-dir',
    dir,
    '--http-port',
    '0',
    '--mqtt-port',
    '0',
    '--kafka-port',
    '0',
    '--grpc-port',
    '0',
  ]);
  t.after(() => srv.proc.kill('SIGKILL'));
  const server = `127.0.0.1:${srv.ports.http}`;
  const table = await ctl(['status', '--server', server]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /: ready\n/);
  assert.match(table.stdout, /^ROLE +STATE$/m);
  assert.match(table.stdout, /^journal +ready$/m);
  const json = await ctl(['status', '--server', server, '--json']);
  assert.equal(json.code, 0);
  assert.deepEqual(JSON.parse(json.stdout).roles, { meta: 'ready', journal: 'ready', broker: 'ready' });
  assert.equal(await srv.stop(), 0);
  const down = await ctl(['status', '--server', server, '--timeout-ms', '2000']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot reach 127\.0\.0\.1:\d+/);
});

test('robust-ctl and robust-bench answer --help, and refuse unknown commands with exit 2', async () => {
  const help = await ctl(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /robust-ctl status/);
  assert.equal((await ctl(['frobnicate'])).code, 2);
  const bench = spawn(process.execPath, [`${REPO_ROOT}bin/robust-bench`, '--help'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  bench.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const [code] = await once(bench, 'exit');
  assert.equal(code, 0);
  assert.match(out, /robust-bench <benchmark>/);
});
