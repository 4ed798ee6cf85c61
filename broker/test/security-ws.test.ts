import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { once } from 'node:events';
import { collect, connectClient, waitFor } from './helpers.js';
import { startSecureBroker } from './security-helpers.js';

test('MQTT over WebSocket: path /mqtt, subprotocols mqtt and mqttv3.1, same engine as TCP', async (t) => {
  const { ports, admin, broker } = await startSecureBroker(t, { wsPort: 0 });
  await admin.putUser('web', 'web-password', {});
  await new Promise((r) => setTimeout(r, 20));
  const ws = `ws://127.0.0.1:${ports.ws}/mqtt`;
  const tcpSub = await connectClient(t, `mqtt://127.0.0.1:${ports.mqtt}`, { username: 'web', password: 'web-password' });
  const got = collect(tcpSub);
  await tcpSub.subscribeAsync('ws/#', { qos: 1 });
  for (const protocolVersion of [4, 5] as const) {
    const c = await connectClient(t, ws, { username: 'web', password: 'web-password', protocolVersion });
    const mine = collect(c);
    await c.subscribeAsync('tcp/#');
    await c.publishAsync(`ws/v${protocolVersion}`, 'hello from ws', { qos: 1 });
    await tcpSub.publishAsync('tcp/x', 'hello from tcp');
    await waitFor(() => mine.length === 1, 3000, 'tcp → ws');
  }
  await waitFor(() => got.length === 2, 3000, 'ws → tcp');
  const v31 = await connectClient(t, ws, { username: 'web', password: 'web-password', protocolVersion: 3, protocolId: 'MQIsdp' });
  assert.equal(v31.connected, true);

  // wrong path, missing subprotocol: no upgrade
  for (const [url, protocols] of [
    [`ws://127.0.0.1:${ports.ws}/other`, ['mqtt']],
    [ws, ['chat']],
  ] as const) {
    const s = new WebSocket(url, [...protocols]);
    const [err] = (await once(s, 'error')) as [Error];
    assert.match(err.message, /Unexpected server response: (404|400)/);
  }
  // anonymous is refused over WebSocket too
  const anon = new WebSocket(ws, ['mqtt']);
  await once(anon, 'open');
  assert.equal(anon.protocol, 'mqtt');
  anon.send(Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 60, 0, 1, 0x78]));
  const [msg] = (await once(anon, 'message')) as [Buffer];
  assert.deepEqual([...msg], [0x20, 2, 0, 5]);
  await once(anon, 'close');
  assert.ok(broker.listeners.find((l) => l.name === 'ws')?.connectionCount !== undefined);
});
