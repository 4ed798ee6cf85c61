import { test } from 'node:test';
import assert from 'node:assert/strict';
import { collect, connectClient, randomId, rawConnect, rawConnectPacket, RawClient, sleep, startBroker, waitFor } from './helpers.js';
import mqttPacket from 'mqtt-packet';

test('malformed input closes only that connection', async (t) => {
  const { url, port, broker } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  const bystander = await connectClient(t, url);
  const got = collect(bystander);
  await bystander.subscribeAsync('alive');

  const cases: Array<[string, Buffer]> = [
    ['reserved packet type 0', Buffer.from([0x00, 0x00])],
    ['PUBREL with flags 0', Buffer.from([0x60, 2, 0, 1])],
    ['remaining length over 4 bytes', Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])],
    ['PUBLISH QoS 3', Buffer.from([0x36, 5, 0, 1, 0x61, 0, 1])],
    ['topic longer than the packet', Buffer.from([0x30, 3, 0, 9, 0x61])],
    ['invalid UTF-8 topic', Buffer.from([0x30, 5, 0, 2, 0xc3, 0x28, 0x78])],
    ['U+0000 in topic', Buffer.from([0x30, 5, 0, 2, 0x61, 0x00, 0x78])],
    ['wildcard in topic name', Buffer.from([0x30, 5, 0, 3, 0x61, 0x2f, 0x23])],
    ['SUBSCRIBE with bad flags', Buffer.from([0x80, 6, 0, 1, 0, 1, 0x61, 0])],
    ['CONNACK from a client', Buffer.from([0x20, 2, 0, 0])],
    ['second CONNECT', rawConnectPacket({ clientId: 'again' })],
    ['PUBLISH QoS 1 with packet id 0', Buffer.from([0x32, 5, 0, 1, 0x61, 0, 0])],
  ];
  for (const [name, bytes] of cases) {
    await t.test(name, async (t) => {
      const r = await rawConnect(t, port);
      r.sock.write(rawConnectPacket({ clientId: randomId() }));
      await waitFor(() => r.data().length >= 4, 2000, 'connack');
      r.sock.write(bytes);
      await waitFor(() => r.closed(), 2000, 'close');
    });
  }

  await t.test('5.0: DISCONNECT 0x81 for a malformed packet', async (t) => {
    const c = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    c.sock.write(Buffer.from([0x30, 5, 0, 2, 0xc3, 0x28, 0x00]));
    assert.equal((await c.waitFor<{ cmd: 'disconnect'; reasonCode: number }>('disconnect')).reasonCode, 0x81);
  });

  await t.test('byte-by-byte input still works', async (t) => {
    const r = await rawConnect(t, port);
    const bytes = Buffer.concat([
      rawConnectPacket({ clientId: randomId() }),
      Buffer.from([0x30, 7, 0, 5, ...Buffer.from('alive')]),
      Buffer.from([0xc0, 0]),
    ]);
    for (const b of bytes) {
      r.sock.write(Buffer.from([b]));
      await sleep(1);
    }
    await waitFor(() => got.length === 1, 2000, 'message through byte-by-byte');
    await waitFor(
      () =>
        r
          .data()
          .subarray(4)
          .equals(Buffer.from([0xd0, 0])),
      2000,
      'PINGRESP',
    );
  });

  await t.test('the server and other clients are unaffected', async () => {
    await bystander.publishAsync('alive', 'yes', { qos: 1 });
    await waitFor(() => got.length === 2);
    assert.equal(broker.mqtt.connectedCount >= 1, true);
  });
});

test('a client that does not read is disconnected after the drain timeout', async (t) => {
  const { url, port, broker } = await startBroker(t, {
    mqtt: { sysIntervalMs: 0, drainTimeoutMs: 500, maxOutboundBufferBytes: 256 * 1024 },
  });
  const r = await rawConnect(t, port);
  r.sock.write(rawConnectPacket({ clientId: 'slow' }));
  await waitFor(() => r.data().length >= 4, 2000, 'connack');
  r.sock.write(Buffer.from([0x82, 8, 0, 1, 0, 3, 0x73, 0x2f, 0x23, 0])); // SUBSCRIBE s/# QoS 0
  await waitFor(() => r.data().length >= 9, 2000, 'suback');
  r.sock.pause();
  const pub = await connectClient(t, url);
  const payload = Buffer.alloc(16 * 1024, 1);
  const t0 = Date.now();
  let i = 0;
  const gone = (): boolean => broker.mqtt.sessions.get('slow') === undefined;
  while (!gone() && Date.now() - t0 < 8000) {
    for (let k = 0; k < 50; k++) pub.publish('s/x', payload);
    i++;
    await sleep(5);
  }
  assert.ok(gone(), 'slow consumer disconnected');
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  const dropped = await broker.mqtt.metrics.messagesDropped.get();
  assert.ok(dropped.values.some((v) => v.labels.reason === 'slow_consumer' && v.value > 0));
  assert.ok(i > 0);
  // memory stayed bounded: nothing more than the socket buffer limit was queued for it
});

test('5.0: a malformed CONNECT or a protocol error in it gets CONNACK with the reason code and a reason string, then the close', async (t) => {
  const { port } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  /** A 5.0 CONNECT: properties and payload bytes given raw. */
  const connect5 = (flags: number, props: number[], payload: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([5, flags, 0, 60, props.length, ...props]), payload]);
    return Buffer.concat([Buffer.from([0x10, body.length]), body]);
  };
  const str = (s: Buffer | string): Buffer => {
    const b = Buffer.isBuffer(s) ? s : Buffer.from(s);
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const cases: Array<[string, Buffer, number, RegExp]> = [
    ['receive maximum 0', connect5(0x02, [0x21, 0, 0], str('c1')), 0x82, /receive maximum 0/],
    ['maximum packet size 0', connect5(0x02, [0x27, 0, 0, 0, 0], str('c2')), 0x82, /maximum packet size 0/],
    ['ill-formed UTF-8 client id', connect5(0x02, [], str(Buffer.from([0x63, 0xc3, 0x28]))), 0x81, /UTF-8/],
    ['will QoS 3', connect5(0x02 | 0x04 | 0x18, [], Buffer.concat([str('c4'), Buffer.from([0]), str('w'), str('x')])), 0x81, /./],
    ['reserved flag set', connect5(0x03, [], str('c5')), 0x81, /./],
    ['property length beyond the packet', connect5(0x02, [0x11, 0, 0], Buffer.alloc(0)), 0x81, /./],
  ];
  for (const [name, bytes, code, why] of cases) {
    await t.test(name, async (t) => {
      const r = await rawConnect(t, port);
      r.sock.write(bytes);
      await waitFor(() => r.closed(), 2000, 'close');
      const data = r.data();
      assert.equal(data[0], 0x20, `a CONNACK first, got ${data.toString('hex')}`);
      const [connack] = parseAll(data, 5);
      assert.equal((connack as { reasonCode?: number }).reasonCode, code);
      assert.match((connack as { properties?: { reasonString?: string } }).properties?.reasonString ?? '', why);
    });
  }
  await t.test('3.1.1: a malformed CONNECT is closed without a CONNACK (3.1.1 has no code for it)', async (t) => {
    const r = await rawConnect(t, port);
    const body = Buffer.concat([Buffer.from([0, 4]), Buffer.from('MQTT'), Buffer.from([4, 0x03, 0, 60]), str('c6')]);
    r.sock.write(Buffer.concat([Buffer.from([0x10, body.length]), body]));
    await waitFor(() => r.closed(), 2000, 'close');
    assert.equal(r.data().length, 0);
  });
});

function parseAll(bytes: Buffer, protocolVersion: number): mqttPacket.Packet[] {
  const out: mqttPacket.Packet[] = [];
  const p = mqttPacket.parser({ protocolVersion });
  p.on('packet', (x: mqttPacket.Packet) => out.push(x));
  p.parse(bytes);
  return out;
}
