import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uvTcpAvailable } from '@robustmq/common';
import { collect, connectClient, connectRefused, rawConnect, rawConnectPacket, startBroker, waitFor } from './helpers.js';

// The plain-TCP MQTT listener runs on the native transport (common/native/uvtcp.c) by default and
// on Node sockets with `mqtt.tcpTransport: node`; every MQTT suite runs on the default, and these
// cases run on both.
const native = uvTcpAvailable();

test('the MQTT listener uses the native transport by default (where the addon is built)', async (t) => {
  const { broker } = await startBroker(t);
  assert.equal(broker.listeners[0]?.name, 'mqtt');
  assert.equal((broker.listeners[0] as { transport?: string }).transport, native ? 'native' : 'node');
});

for (const tcpTransport of ['native', 'node'] as const) {
  test(`${tcpTransport}: publish and subscribe with QoS 0, 1 and 2, large payloads, and remote addresses`, async (t) => {
    const { broker, url } = await startBroker(t, { mqtt: { tcpTransport, sysIntervalMs: 0 } });
    const sub = await connectClient(t, url, { protocolVersion: 5 });
    await sub.subscribeAsync('t/#', { qos: 2 });
    const pub = await connectClient(t, url);
    const big = Buffer.alloc(900 * 1024, 7); // many reads (the default packet limit is 1 MiB)
    await pub.publishAsync('t/0', 'zero', { qos: 0 });
    await pub.publishAsync('t/1', 'one', { qos: 1 });
    await pub.publishAsync('t/2', 'two', { qos: 2 });
    await pub.publishAsync('t/big', big, { qos: 1 });
    const got = collect(sub);
    await waitFor(() => got.length === 4, 5000, 'four messages');
    assert.deepEqual(
      got.map((m) => m.topic),
      ['t/0', 't/1', 't/2', 't/big'],
    );
    assert.ok((got[3]?.payload as Buffer).equals(big));
    assert.equal(broker.listeners[0]?.connectionCount, 2);
  });

  test(`${tcpTransport}: the connection limit refuses at accept, a malformed packet closes only its connection`, async (t) => {
    const { broker, url, port } = await startBroker(t, {
      mqtt: { tcpTransport, sysIntervalMs: 0 },
      limits: { maxConnectionsPerListener: 2 },
    });
    const a = await connectClient(t, url);
    const raw = await rawConnect(t, port);
    raw.sock.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0x7f])); // remaining length over four bytes
    await waitFor(() => raw.closed(), 3000, 'malformed connection closed');
    assert.equal(a.connected, true, 'the other client is untouched');
    const b = await connectClient(t, url);
    assert.equal(b.connected, true);
    assert.notEqual(await connectRefused(url), 0, 'a third connection is refused');
    assert.equal(broker.listeners[0]?.connectionCount, 2);
  });

  test(`${tcpTransport}: a shutdown ends every connection and resolves`, async () => {
    const { broker, url, port } = await startBroker(undefined, { mqtt: { tcpTransport, sysIntervalMs: 0 } });
    const c = await connectClient(undefined, url);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    const started = Date.now();
    await broker.close(2000);
    await closed;
    assert.ok(Date.now() - started < 2000, 'closed before the grace period ran out');
    assert.notEqual(await connectRefused(`mqtt://127.0.0.1:${port}`), 0, 'nothing listens any more');
    c.end(true);
  });
}

test('native: a client that sends a CONNECT in many small pieces is served', { skip: !native }, async (t) => {
  const { port, broker } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  const raw = await rawConnect(t, port);
  const pkt = rawConnectPacket({ clientId: 'pieces' });
  for (const b of pkt) {
    raw.sock.write(Buffer.from([b]));
    await new Promise((r) => setTimeout(r, 1));
  }
  await waitFor(() => raw.data().length >= 4, 3000, 'CONNACK');
  assert.equal(raw.data()[0], 0x20);
  assert.ok(broker.mqtt.sessions.get('pieces') !== undefined);
});

test('native: a host name as bind address is resolved (localhost)', { skip: !native }, async (t) => {
  const { url } = await startBroker(t, { host: 'localhost', mqtt: { sysIntervalMs: 0 } });
  const c = await connectClient(t, url.replace('127.0.0.1', 'localhost'));
  assert.equal(c.connected, true);
});
