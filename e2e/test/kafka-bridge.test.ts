import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { adminHeaders, startServer, waitReady } from '../src/index.js';

const run = promisify(execFile);

test(
  'mosquitto_pub → binding → kcat: what an MQTT client publishes, a Kafka client reads byte for byte',
  { timeout: 60_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'robustmq-bridge-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const srv = await startServer(
      ['start', '--data-dir', dir, '--http-port', '0', '--mqtt-port', '0', '--kafka-port', '0', '--grpc-port', '0', '--ws-port', '0'],
      { env: { ROBUSTMQ_AUTH_ALLOW_ANONYMOUS: 'true' } },
    );
    t.after(() => srv.proc.kill('SIGKILL'));
    const http = `http://127.0.0.1:${srv.ports.http}`;
    await waitReady(srv.ports.http as number);

    // the admin API creates the binding; bad ones are refused with every problem named
    const bad = await fetch(`${http}/api/v1/bindings?name=bad`, {
      method: 'PUT',
      headers: adminHeaders(dir),
      body: JSON.stringify({ direction: 'sideways' }),
    });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /direction: .*stream: /);
    const badNames = await fetch(`${http}/api/v1/bindings?name=${encodeURIComponent('bad name')}`, {
      method: 'PUT',
      headers: adminHeaders(dir),
      body: JSON.stringify({ direction: 'in', stream: 'no/slashes', filters: ['ok/#', 'a/b#'] }),
    });
    assert.equal(badNames.status, 400);
    const badText = ((await badNames.json()) as { error: string }).error;
    assert.match(badText, /name "bad name": 1–128 letters/);
    assert.match(badText, /stream "no\/slashes": topic name contains characters/);
    assert.match(badText, /filter "a\/b#": "\+" must fill a whole level and "#" must be the last level alone/);
    assert.doesNotMatch(badText, /ok\/#/);
    const badPrefix = await fetch(`${http}/api/v1/bindings?name=out1`, {
      method: 'PUT',
      headers: adminHeaders(dir),
      body: JSON.stringify({ direction: 'out', stream: 'cmds', topicPrefix: 'devices/+/' }),
    });
    assert.equal(badPrefix.status, 400);
    assert.match(
      ((await badPrefix.json()) as { error: string }).error,
      /topicPrefix "devices\/\+\/": an MQTT topic prefix has no wildcards/,
    );
    const put = await fetch(`${http}/api/v1/bindings?name=sensors`, {
      method: 'PUT',
      headers: adminHeaders(dir),
      body: JSON.stringify({ direction: 'in', stream: 'sensors', filters: ['sensors/#'] }),
    });
    assert.equal(put.status, 200, await put.text());
    const list = (await (await fetch(`${http}/api/v1/bindings`, { headers: adminHeaders(dir) })).json()) as {
      bindings: { name: string }[];
    };
    assert.deepEqual(
      list.bindings.map((b) => b.name),
      ['sensors'],
    );
    const create = await run('kcat', ['-b', `127.0.0.1:${srv.ports.kafka}`, '-L', '-t', 'sensors'], { timeout: 15_000 });
    assert.match(create.stdout, /topic "sensors"/);
    await new Promise((r) => setTimeout(r, 300)); // the broker's binding watch

    const payload = 'temp=21.5°C;ok\ttab';
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(srv.ports.mqtt), '-q', '1', '-t', 'sensors/hall/1', '-m', payload], {
      timeout: 15_000,
    });
    const { stdout } = await run(
      'kcat',
      ['-b', `127.0.0.1:${srv.ports.kafka}`, '-C', '-t', 'sensors', '-o', 'beginning', '-c', '1', '-e', '-f', '%k\\n%s'],
      { timeout: 20_000, encoding: 'buffer' },
    );
    assert.equal(
      (stdout as unknown as Buffer).toString('hex'),
      Buffer.from(`sensors/hall/1\n${payload}`).toString('hex'),
      'key = MQTT topic, value = payload, byte-exact',
    );

    assert.equal((await fetch(`${http}/api/v1/bindings?name=sensors`, { method: 'DELETE', headers: adminHeaders(dir) })).status, 200);
    assert.equal((await fetch(`${http}/api/v1/bindings?name=sensors`, { method: 'DELETE', headers: adminHeaders(dir) })).status, 404);
    assert.equal(await srv.stop(), 0);
  },
);
