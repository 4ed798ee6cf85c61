import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { health } from '@robustmq/proto';
import { adminHeaders, runServer, startServer, waitReady, ANY_PORTS } from '../src/index.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'robustmq-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const anyPorts = ANY_PORTS;

test('start on free ports, answer health and metrics, stop on SIGTERM with exit 0', async (t) => {
  const dir = tempDir(t);
  const srv = await startServer(['start', '--data-dir', dir, ...anyPorts]);
  t.after(() => srv.proc.kill('SIGKILL'));
  for (const name of ['http', 'mqtt', 'kafka', 'grpc']) assert.ok((srv.ports[name] ?? 0) > 0, `port ${name} bound`);
  const base = `http://127.0.0.1:${srv.ports.http}`;

  const live = await fetch(`${base}/health/live`);
  assert.equal(live.status, 200);
  assert.deepEqual(await waitReady(srv.ports.http as number), {
    status: 'ready',
    roles: { meta: 'ready', journal: 'ready', broker: 'ready' },
  });

  // a connection shows up in the project's own metrics, beside the runtime ones
  const sock = createConnection({ host: '127.0.0.1', port: srv.ports.mqtt as number });
  await once(sock, 'connect');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  assert.match(metrics, /^robustmq_process_cpu_user_seconds_total\{node="1"\} /m);
  assert.match(metrics, /^robustmq_nodejs_eventloop_lag_seconds\{node="1"\} /m);
  assert.match(metrics, /^robustmq_broker_connections\{listener="mqtt",node="1"\} 1$/m);
  sock.destroy();

  const notFound = await fetch(`${base}/nope`);
  assert.equal(notFound.status, 404);
  const wrongMethod = await fetch(`${base}/metrics`, { method: 'POST' });
  assert.equal(wrongMethod.status, 405);

  // gRPC health for Kubernetes probes
  const client = new grpc.Client(`127.0.0.1:${srv.ports.grpc}`, grpc.credentials.createInsecure());
  const HealthClient = grpc.makeGenericClientConstructor(health.HealthService, 'Health');
  const hc = new HealthClient(`127.0.0.1:${srv.ports.grpc}`, grpc.credentials.createInsecure()) as unknown as health.HealthClient;
  const res = await new Promise<health.HealthCheckResponse>((resolve, reject) =>
    hc.check({ service: '' }, (err, r) => (err ? reject(err) : resolve(r))),
  );
  assert.equal(res.status, health.HealthCheckResponse_ServingStatus.SERVING);
  client.close();
  (hc as unknown as grpc.Client).close();

  assert.ok(existsSync(join(dir, 'LOCK')), 'data dir is locked while running');
  const code = await srv.stop('SIGTERM');
  assert.equal(code, 0);
  assert.ok(
    srv.logs.some((l) => l.msg === 'stopped'),
    'logs that it stopped',
  );
  assert.ok(!existsSync(join(dir, 'LOCK')), 'lock released on shutdown');
});

test('SIGINT also stops gracefully', async (t) => {
  const dir = tempDir(t);
  const srv = await startServer(['start', '--data-dir', dir, ...anyPorts]);
  t.after(() => srv.proc.kill('SIGKILL'));
  assert.equal(await srv.stop('SIGINT'), 0);
});

test('a broken config file reports every problem at once and exits 2', async (t) => {
  const dir = tempDir(t);
  // hold a port so that "port in use" is one of the problems
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.after(() => holder.close());
  const busy = (holder.address() as { port: number }).port;
  const file = join(dir, 'robustmq.yaml');
  writeFileSync(
    file,
    ['mqttPort: "eighteen"', 'kafkaPrt: 9092', `httpPort: ${busy}`, 'bindHost: 127.0.0.1', `dataDir: ${join(dir, 'data')}`].join('\n'),
  );
  const r = await runServer(['start', '--config', file, '--grpc-port', '0', '--kafka-port', '0']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /mqttPort \(in the config file\): expected a number; got "eighteen"/);
  assert.match(r.stderr, /kafkaPrt: unknown configuration key/);
  assert.match(r.stderr, new RegExp(`httpPort: http: port ${busy} on 127.0.0.1 is already in use`));
});

test('an unwritable data directory and an unknown environment variable are reported together', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'a-file'), 'x');
  const r = await runServer(['start', '--data-dir', join(dir, 'a-file', 'data'), ...anyPorts], {
    ROBUSTMQ_MQTT_PROT: '1',
    ROBUSTMQ_BIND_HOST: '127.0.0.1',
  });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /ROBUSTMQ_MQTT_PROT: unknown environment variable/);
  assert.match(r.stderr, /dataDir .*a-file\/data: not a writable directory/);
});

test('a port in use after validation stops the start with exit 2 and the port named', async (t) => {
  const dir = tempDir(t);
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  t.after(() => holder.close());
  const busy = (holder.address() as { port: number }).port;
  const r = await runServer(['start', '--data-dir', dir, ...anyPorts, '--kafka-port', String(busy)], { ROBUSTMQ_BIND_HOST: '127.0.0.1' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`kafka: port ${busy} on 127.0.0.1 is already in use`));
  assert.ok(!existsSync(join(dir, 'LOCK')), 'the lock is released after a failed start');
});

test('two servers cannot share a data directory', async (t) => {
  const dir = tempDir(t);
  const first = await startServer(['start', '--data-dir', dir, ...anyPorts]);
  t.after(() => first.proc.kill('SIGKILL'));
  const second = await runServer(['start', '--data-dir', dir, ...anyPorts], { ROBUSTMQ_BIND_HOST: '127.0.0.1' });
  assert.equal(second.code, 2);
  assert.match(second.stderr, /in use by another robust-server \(pid \d+\)/);
  assert.equal(await first.stop(), 0);
});

test('a lock left by a killed server is taken over', async (t) => {
  const dir = tempDir(t);
  const first = await startServer(['start', '--data-dir', dir, ...anyPorts]);
  first.proc.kill('SIGKILL');
  await first.exited;
  const second = await startServer(['start', '--data-dir', dir, ...anyPorts]);
  t.after(() => second.proc.kill('SIGKILL'));
  assert.equal(await second.stop(), 0);
});

test('settings come from environment variables, and flags win over them', async (t) => {
  const dir = tempDir(t);
  const srv = await startServer(['start', '--data-dir', dir, '--http-port', '0', '--roles', 'meta'], {
    env: { ROBUSTMQ_GRPC_PORT: '0', ROBUSTMQ_HTTP_PORT: '1', ROBUSTMQ_ROLES: 'broker', ROBUSTMQ_META_SESSION_GROUPS: '1' },
  });
  t.after(() => srv.proc.kill('SIGKILL'));
  assert.deepEqual(Object.keys(srv.ports).sort(), ['grpc', 'http'], 'a meta-only node has no client listeners');
  assert.deepEqual(await waitReady(srv.ports.http as number), { status: 'ready', roles: { meta: 'ready' } });
  const status = (await (await fetch(`http://127.0.0.1:${srv.ports.http}/api/v1/meta/status`, { headers: adminHeaders(dir) })).json()) as {
    groups: unknown[];
  };
  assert.equal(status.groups.length, 4, 'one cluster group, one session group, two offset groups');
  assert.equal(await srv.stop(), 0);
});

test('help, version and usage errors', async () => {
  const help = await runServer(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /robust-server start \[options\]/);
  for (const flag of [
    '--config',
    '--data-dir',
    '--roles',
    '--node-id',
    '--mqtt-port',
    '--mqtts-port',
    '--ws-port',
    '--wss-port',
    '--kafka-port',
    '--http-port',
    '--grpc-port',
  ]) {
    assert.ok(help.stdout.includes(flag), `help lists ${flag}`);
  }
  const version = await runServer(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^robust-server \d+\.\d+\.\d+\n$/);
  const unknown = await runServer(['launch']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command: launch/);
  const badFlag = await runServer(['start', '--mqtt-prot', '1']);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /Unknown option '--mqtt-prot'/);
});

test('a meta cluster of several members needs an explicit cluster id; a broker without journal needs an endpoint', async (t) => {
  const dir = tempDir(t);
  const r = await runServer([
    'start',
    '--data-dir',
    dir,
    ...anyPorts,
    '--meta-peers',
    '1=127.0.0.1:1,2=127.0.0.1:2',
    '--roles',
    'meta,broker',
  ]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /meta\.clusterId: required when meta\.peers names several members/);
  assert.match(r.stderr, /journal\.endpoint: required when a broker node does not run the journal role/);
});
