import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import {
  collect,
  connectClient,
  connectRefused,
  onceEvent,
  randomId,
  rawConnect,
  rawConnectPacket,
  sleep,
  startBroker,
  waitFor,
} from './helpers.js';

test('CONNECT validation and CONNACK codes', async (t) => {
  const { url, port, broker } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });

  await t.test('3.1, 3.1.1 and 5.0 clients connect', async (t) => {
    for (const protocolVersion of [3, 4, 5] as const) {
      const c = await connectClient(t, url, { protocolVersion, ...(protocolVersion === 3 ? { protocolId: 'MQIsdp' } : {}) });
      assert.equal(c.connected, true);
    }
  });

  await t.test('3.1.1 empty client id needs clean session (else return code 2)', async (t) => {
    const r = await rawConnect(t, port);
    r.sock.write(rawConnectPacket({ clientId: '', clean: false }));
    await waitFor(() => r.closed(), 2000, 'close');
    assert.deepEqual([...r.data()], [0x20, 2, 0, 2]);
    const c = await connectClient(t, url, { protocolVersion: 4, clientId: '', clean: true });
    assert.equal(c.connected, true);
  });

  await t.test('5.0 empty client id gets an Assigned Client Identifier', async (t) => {
    const c = mqtt.connect(url, { protocolVersion: 5, clientId: '', reconnectPeriod: 0 });
    t.after(() => void c.end(true));
    const [connack] = await onceEvent<[mqtt.IConnackPacket]>(c, 'connect');
    assert.match(String(connack.properties?.assignedClientIdentifier), /^auto-/);
    assert.equal(connack.properties?.receiveMaximum, 128);
    assert.equal(connack.properties?.topicAliasMaximum, 65535);
  });

  await t.test('unsupported protocol level gets return code 1 and the connection closes', async (t) => {
    const r = await rawConnect(t, port);
    // CONNECT, protocol name MQTT, level 6, clean session, keep alive 60, client id "x"
    r.sock.write(Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 6, 0x02, 0, 60, 0, 1, 0x78]));
    await waitFor(() => r.closed(), 2000, 'close');
    assert.deepEqual([...r.data()], [0x20, 2, 0, 1]);
  });

  await t.test('reserved connect flag set closes the connection without CONNACK', async (t) => {
    const r = await rawConnect(t, port);
    r.sock.write(Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x03, 0, 60, 0, 1, 0x78]));
    await waitFor(() => r.closed(), 2000, 'close');
    assert.equal(r.data().length, 0);
  });

  await t.test('first packet must be CONNECT', async (t) => {
    const r = await rawConnect(t, port);
    r.sock.write(Buffer.from([0xc0, 0])); // PINGREQ
    await waitFor(() => r.closed(), 2000, 'close');
    assert.equal(r.data().length, 0);
  });

  await t.test('unsupported authentication method gets CONNACK 0x8C', async () => {
    const code = await connectRefused(url, { protocolVersion: 5, properties: { authenticationMethod: 'SCRAM-SHA-1' } });
    assert.equal(code, 0x8c);
  });

  await t.test('session present flag follows the session', async (t) => {
    const clientId = randomId();
    const a = mqtt.connect(url, { clientId, clean: false, reconnectPeriod: 0 });
    const [ca] = await onceEvent<[mqtt.IConnackPacket]>(a, 'connect');
    assert.equal(ca.sessionPresent, false);
    await new Promise<void>((r) => a.end(false, {}, () => r()));
    const b = mqtt.connect(url, { clientId, clean: false, reconnectPeriod: 0 });
    t.after(() => void b.end(true));
    const [cb] = await onceEvent<[mqtt.IConnackPacket]>(b, 'connect');
    assert.equal(cb.sessionPresent, true);
  });

  await t.test('session takeover: the old 5.0 connection gets DISCONNECT 0x8E', async (t) => {
    const clientId = randomId();
    const a = await connectClient(t, url, { clientId, protocolVersion: 5 });
    const gotDisconnect = onceEvent<[mqtt.IDisconnectPacket]>(a, 'disconnect');
    await connectClient(t, url, { clientId, protocolVersion: 5 });
    const [d] = await gotDisconnect;
    assert.equal(d.reasonCode, 0x8e);
  });

  await t.test('keep alive is enforced at 1.5x', async (t) => {
    const r = await rawConnect(t, port);
    // keep alive 1 s
    r.sock.write(Buffer.from([0x10, 13, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 1, 0, 1, 0x78]));
    await waitFor(() => r.data().length >= 4, 2000, 'connack');
    const t0 = Date.now();
    await waitFor(() => r.closed(), 4000, 'keep alive close');
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 1400 && elapsed < 2700, `closed after ${elapsed} ms`);
  });

  await t.test('server keep alive is announced to 5.0 clients', async (t) => {
    const b2 = await startBroker(t, { mqtt: { maxKeepAliveSec: 30, sysIntervalMs: 0 } });
    const c = mqtt.connect(b2.url, { protocolVersion: 5, keepalive: 0, reconnectPeriod: 0 });
    t.after(() => void c.end(true));
    const [connack] = await onceEvent<[mqtt.IConnackPacket]>(c, 'connect');
    assert.equal(connack.properties?.serverKeepAlive, 30);
  });

  await t.test('max connections: 0x97 for 5.0, return code 3 for 3.1.1', async (t) => {
    const b2 = await startBroker(t, { mqtt: { maxConnections: 1, sysIntervalMs: 0 } });
    await connectClient(t, b2.url);
    assert.equal(await connectRefused(b2.url, { protocolVersion: 5 }), 0x97);
    assert.equal(await connectRefused(b2.url, { protocolVersion: 4 }), 3);
  });

  await t.test('clients keep working after the refusals', async (t) => {
    const c = await connectClient(t, url);
    const got = collect(c);
    await c.subscribeAsync('ok/test');
    await c.publishAsync('ok/test', 'hi');
    await waitFor(() => got.length === 1);
    assert.equal(broker.mqtt.connectedCount >= 1, true);
    await sleep(10);
  });
});
