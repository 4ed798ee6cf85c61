import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { collect, connectClient, sleep, startBroker, waitFor } from './helpers.js';

const run = promisify(execFile);

test('mosquitto_pub and mosquitto_sub', async (t) => {
  const { url, port } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  const s = await connectClient(t, url);
  const got = collect(s);
  await s.subscribeAsync('mosq/#', { qos: 2 });
  for (const [v, q] of [
    ['mqttv31', 0],
    ['mqttv311', 1],
    ['mqttv5', 2],
  ] as const) {
    await run('/usr/bin/mosquitto_pub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(port),
      '-V',
      v,
      '-q',
      String(q),
      '-t',
      `mosq/${v}`,
      '-m',
      `hello ${v}`,
    ]);
  }
  await waitFor(() => got.length === 3);
  assert.deepEqual(
    got.map((m) => [m.topic, m.packet.qos]),
    [
      ['mosq/mqttv31', 0],
      ['mosq/mqttv311', 1],
      ['mosq/mqttv5', 2],
    ],
  );

  const sub = spawn('/usr/bin/mosquitto_sub', [
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '-V',
    'mqttv5',
    '-q',
    '1',
    '-t',
    'fromjs/#',
    '-C',
    '2',
    '-v',
  ]);
  t.after(() => void sub.kill());
  let out = '';
  sub.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const done = once(sub, 'exit');
  await sleep(300);
  await s.publishAsync('fromjs/a', 'one', { qos: 1 });
  await s.publishAsync('fromjs/b', 'two', { qos: 2 });
  await Promise.race([done, sleep(3000)]);
  assert.equal(out, 'fromjs/a one\nfromjs/b two\n');
});

test('python paho-mqtt', async (t) => {
  const { url, port } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  const s = await connectClient(t, url);
  await s.publishAsync('paho/retained', 'r', { qos: 1, retain: true });
  const script = `
import sys, time
import paho.mqtt.client as mqtt
got = []
def on_message(c, u, m): got.append((m.topic, m.payload.decode(), m.qos, m.retain))
c = mqtt.Client(client_id="paho-test", protocol=mqtt.MQTTv311, clean_session=True)
c.on_message = on_message
c.connect("127.0.0.1", ${port}, 30)
c.loop_start()
c.subscribe("paho/#", qos=2)
time.sleep(0.3)
info = c.publish("paho/echo", "hi from paho", qos=2)
info.wait_for_publish()
deadline = time.time() + 3
while len(got) < 2 and time.time() < deadline: time.sleep(0.05)
c.disconnect(); c.loop_stop()
for g in sorted(got): print("%s|%s|%d|%d" % g)
`;
  const { stdout } = await run('/usr/bin/python3', ['-c', script], { timeout: 10_000 });
  assert.deepEqual(stdout.trim().split('\n'), ['paho/echo|hi from paho|2|0', 'paho/retained|r|1|1']);
});
