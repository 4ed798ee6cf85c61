import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { statSync } from 'node:fs';
import mqtt from 'mqtt';
import { REPO_ROOT, adminTokenFile, startServer, waitReady, runCtl } from '../src/index.js';

const ctl = runCtl;

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
    '--ws-port',
    '0',
  ]);
  t.after(() => srv.proc.kill('SIGKILL'));
  const server = `127.0.0.1:${srv.ports.http}`;
  await waitReady(srv.ports.http as number);
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

test('security: admin token on first start, users, ACL rules and the deny list with robust-ctl; MQTT login', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-ctl-sec-'));
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
    '--ws-port',
    '0',
  ]);
  await waitReady(srv.ports.http as number);
  t.after(() => srv.proc.kill('SIGKILL'));
  const server = `127.0.0.1:${srv.ports.http}`;
  const tokenFile = adminTokenFile(dir);
  assert.equal(statSync(tokenFile).mode & 0o777, 0o600, 'only the owner can read the token');
  assert.ok(
    srv.logs.some((l) => l.msg === 'admin api token created' && l.tokenFile === tokenFile),
    'the log says where',
  );
  assert.ok((srv.ports.ws ?? 0) > 0 && srv.ports.mqtts === undefined, 'ws bound; mqtts not without a certificate');

  // no token, a wrong token: refused (no exception for localhost); probes stay open
  const anon = await fetch(`http://${server}/api/v1/users`);
  assert.equal(anon.status, 401);
  assert.equal(((await anon.json()) as { code: string }).code, 'ERR_UNAUTHENTICATED');
  assert.equal((await fetch(`http://${server}/api/v1/users`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status, 401);
  assert.equal((await fetch(`http://${server}/health/ready`)).status, 200);
  assert.equal((await fetch(`http://${server}/metrics`)).status, 200);
  const noToken = await ctl(['user', 'list', '--server', server]);
  assert.equal(noToken.code, 1);
  assert.match(noToken.stderr, /401 .*ERR_UNAUTHENTICATED/);

  const tf = ['--server', server, '--token-file', tokenFile];
  const created = await ctl(['user', 'create', 'eve', '--password', 'eve-password-1', ...tf]);
  assert.equal(created.code, 0, created.stderr);
  const token = (await import('node:fs')).readFileSync(tokenFile, 'utf8').trim();
  const list = await ctl(['user', 'list', '--server', server], { ROBUSTMQ_CTL_TOKEN: token });
  assert.match(list.stdout, /^USERNAME +SUPERUSER +CREATED$/m);
  assert.match(list.stdout, /^eve +no +/m);
  assert.equal((await ctl(['user', 'create', 'eve', '--password', 'another-password', ...tf])).code, 1, 'exists already');
  const rule = await ctl(['acl', 'add', 'deny', 'publish', 'forbidden/#', '--username', 'eve', '--json', ...tf]);
  assert.equal(rule.code, 0, rule.stderr);
  const ruleId = (JSON.parse(rule.stdout) as { id: string }).id;
  const acl = await ctl(['acl', 'list', ...tf]);
  assert.match(acl.stdout, new RegExp(`^${ruleId} +10 +username=eve +publish +forbidden/# +deny$`, 'm'));
  assert.equal((await ctl(['denylist', 'add', 'clientid', 'evil-1', '--reason', 'test', '--ttl-ms', '60000', ...tf])).code, 0);
  const deny = JSON.parse((await ctl(['denylist', 'list', '--json', ...tf])).stdout) as { entries: { kind: string; value: string }[] };
  assert.deepEqual(
    deny.entries.map((e) => `${e.kind}:${e.value}`),
    ['clientid:evil-1'],
  );

  // MQTT: anonymous refused by default, the user logs in, the denied client id does not
  const url = `mqtt://127.0.0.1:${srv.ports.mqtt}`;
  const outcome = (opts: mqtt.IClientOptions): Promise<number | 'ok'> =>
    new Promise((resolve) => {
      const c = mqtt.connect(url, { reconnectPeriod: 0, ...opts });
      c.once('connect', () => (c.end(true), resolve('ok')));
      c.once('error', (err: Error & { code?: number }) => (c.end(true), resolve(err.code ?? -1)));
    });
  assert.equal(await outcome({}), 5);
  assert.ok(srv.logs.some((l) => l.msg === 'mqtt connect refused' && /anonymous access is off/.test(String(l.why))));
  assert.equal(await outcome({ username: 'eve', password: 'eve-password-1' }), 'ok');
  assert.equal(await outcome({ username: 'eve', password: 'eve-password-1', clientId: 'evil-1' }), 5);
  assert.equal((await ctl(['denylist', 'delete', 'clientid', 'evil-1', ...tf])).code, 0);
  assert.equal((await ctl(['user', 'passwd', 'eve', '--password', 'eve-password-2', ...tf])).code, 0);
  assert.equal(await outcome({ username: 'eve', password: 'eve-password-1' }), 4);
  assert.equal(await outcome({ username: 'eve', password: 'eve-password-2', clientId: 'evil-1' }), 'ok');
  assert.equal((await ctl(['acl', 'delete', ruleId, ...tf])).code, 0);
  assert.equal((await ctl(['user', 'delete', 'eve', ...tf])).code, 0);
  assert.equal(await srv.stop(), 0);
});
