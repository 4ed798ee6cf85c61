import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type mqttPacket from 'mqtt-packet';
import { collect, connectClient, randomId, RawClient, rawConnect, sleep, startBroker, waitFor } from './helpers.js';

/*
 * Malformed packets mqtt-packet lets through (it checks no lengths of acknowledgements and turns
 * bad UTF-8 into U+FFFD), sent as raw bytes over TCP. Each "closes" case stayed open before.
 */

/** A packet with a one-byte remaining length (every body here is shorter than 128 bytes). */
function pkt(header: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  assert.ok(b.length < 128);
  return Buffer.concat([Buffer.from([header, b.length]), b]);
}

/** A UTF-8 Encoded String of the given bytes (which may be ill-formed on purpose). */
function str(bytes: Buffer | string): Buffer {
  const b = Buffer.from(bytes);
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** A property block of one-byte length. */
function props(...p: Buffer[]): Buffer {
  const b = Buffer.concat(p);
  return Buffer.concat([Buffer.from([b.length]), b]);
}

const userProperty = (k: Buffer | string, v: Buffer | string): Buffer => Buffer.concat([Buffer.from([0x26]), str(k), str(v)]);

const BAD_UTF8 = Buffer.from([0xff, 0xfe]);
const NUL = Buffer.from([0x61, 0x00]);
/** A genuine U+FFFD, which must not be mistaken for a replaced bad byte. */
const REPLACEMENT_CHAR = Buffer.from('a\ufffd');

const PINGREQ = Buffer.from([0xc0, 0]);

type Disconnect = mqttPacket.IDisconnectPacket & { reasonCode: number };

async function client(t: TestContext, port: number, level: 4 | 5): Promise<RawClient> {
  return RawClient.connect(t, port, { clientId: randomId('ack'), protocolVersion: level });
}

/** Sends `bytes` after CONNACK and waits until the server closes the connection. */
async function assertCloses(t: TestContext, port: number, level: 4 | 5, bytes: Buffer): Promise<RawClient> {
  const c = await client(t, port, level);
  c.sock.write(bytes);
  await waitFor(() => c.closed, 2000, 'the server to close the connection');
  // Nothing was answered to the malformed packet (the 65535 bug answered PUBREL `62 01 05`).
  assert.deepEqual(
    c.packets.map((p) => p.cmd).filter((cmd) => cmd !== 'connack' && cmd !== 'disconnect'),
    [],
  );
  if (level === 5) assert.equal(c.of<Disconnect>('disconnect')[0]?.reasonCode, 0x81, 'DISCONNECT 0x81 first');
  return c;
}

/** Sends `bytes`, then PINGREQ: the connection stays open and PINGRESP comes back. */
async function assertAccepted(t: TestContext, port: number, level: 4 | 5, bytes: Buffer): Promise<RawClient> {
  const c = await client(t, port, level);
  c.sock.write(Buffer.concat([bytes, PINGREQ]));
  await c.waitFor('pingresp');
  assert.equal(c.closed, false);
  return c;
}

test('PUBACK, PUBREC, PUBREL and PUBCOMP are checked before they are handled', async (t) => {
  const { port } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });

  const v3Malformed: Array<[string, Buffer]> = [
    ['PUBREL remaining length 1', Buffer.from([0x62, 0x01, 0x05])],
    ['PUBREL remaining length 0', Buffer.from([0x62, 0x00])],
    ['PUBREL remaining length 3', Buffer.from([0x62, 0x03, 0x00, 0x05, 0x00])],
    ['PUBACK remaining length 3', Buffer.from([0x40, 0x03, 0x00, 0x01, 0x00])],
    ['PUBREC remaining length 1', Buffer.from([0x50, 0x01, 0x05])],
    ['PUBCOMP remaining length 0', Buffer.from([0x70, 0x00])],
    ['PUBACK packet id 0', Buffer.from([0x40, 0x02, 0x00, 0x00])],
    ['PUBREL packet id 0', Buffer.from([0x62, 0x02, 0x00, 0x00])],
    ['PUBCOMP with flags 2', Buffer.from([0x72, 0x02, 0x00, 0x01])],
  ];
  for (const [name, bytes] of v3Malformed) {
    await t.test(`3.1.1 ${name} closes the connection`, async (t) => {
      await assertCloses(t, port, 4, bytes);
    });
  }

  const v5Malformed: Array<[string, Buffer]> = [
    ['PUBREL remaining length 1', Buffer.from([0x62, 0x01, 0x05])],
    ['PUBREC remaining length 1', Buffer.from([0x50, 0x01, 0x05])],
    ['PUBACK packet id 0', Buffer.from([0x40, 0x02, 0x00, 0x00])],
    ['PUBACK properties shorter than the packet', Buffer.from([0x40, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00])],
    ['PUBACK properties longer than the packet', Buffer.from([0x40, 0x05, 0x00, 0x01, 0x00, 0x05, 0x1f])],
    ['PUBREL reason code 0x10', Buffer.from([0x62, 0x03, 0x00, 0x01, 0x10])],
    ['PUBACK reason string with ill-formed UTF-8', pkt(0x40, Buffer.from([0, 1, 0]), props(Buffer.from([0x1f]), str(BAD_UTF8)))],
    ['PUBACK with a topic alias property', pkt(0x40, Buffer.from([0, 1, 0]), props(Buffer.from([0x23, 0, 1])))],
  ];
  for (const [name, bytes] of v5Malformed) {
    await t.test(`5.0 ${name} gets DISCONNECT 0x81`, async (t) => {
      await assertCloses(t, port, 5, bytes);
    });
  }

  await t.test('well-formed acknowledgements are still answered', async (t) => {
    const c3 = await assertAccepted(t, port, 4, Buffer.from([0x62, 0x02, 0x00, 0x05]));
    assert.equal(c3.of<mqttPacket.IPubcompPacket>('pubcomp')[0]?.messageId, 5);
    // 5.0: remaining length 2, 3 and 4+ (reason code, properties); unknown ids get 0x92
    const c5 = await assertAccepted(
      t,
      port,
      5,
      Buffer.concat([
        Buffer.from([0x62, 0x02, 0x00, 0x05]),
        Buffer.from([0x62, 0x03, 0x00, 0x06, 0x00]),
        Buffer.from([0x62, 0x04, 0x00, 0x07, 0x00, 0x00]),
        pkt(0x62, Buffer.from([0, 8, 0]), props(Buffer.from([0x1f]), str('why'), userProperty('k', REPLACEMENT_CHAR))),
        Buffer.from([0x40, 0x04, 0x00, 0x09, 0x10, 0x00]),
      ]),
    );
    const comps = c5.of<mqttPacket.IPubcompPacket>('pubcomp');
    assert.deepEqual(
      comps.map((p) => [p.messageId, p.reasonCode]),
      [
        [5, 0x92],
        [6, 0x92],
        [7, 0x92],
        [8, 0x92],
      ],
    );
  });
});

test('a 3.x DISCONNECT with a body is malformed and the will is published', async (t) => {
  const { url, port } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  const watcher = await connectClient(t, url);
  const got = collect(watcher);
  await watcher.subscribeAsync('mwill/#');
  const withWill = (topic: string): Promise<RawClient> =>
    RawClient.connect(t, port, {
      clientId: randomId('will'),
      will: { topic, payload: Buffer.from('gone'), qos: 0, retain: false },
    });

  await t.test('DISCONNECT e0 01 00', async () => {
    const c = await withWill('mwill/malformed');
    c.sock.write(Buffer.from([0xe0, 0x01, 0x00]));
    await waitFor(() => c.closed, 2000, 'close');
    await waitFor(() => got.some((m) => m.topic === 'mwill/malformed'), 2000, 'the will');
  });

  await t.test('a well-formed DISCONNECT still discards the will', async () => {
    const c = await withWill('mwill/normal');
    c.sock.write(Buffer.from([0xe0, 0x00]));
    await waitFor(() => c.closed, 2000, 'close');
    // A marker published after the close arrives after any will would have.
    await watcher.publishAsync('mwill/marker', 'm');
    await waitFor(() => got.some((m) => m.topic === 'mwill/marker'), 2000, 'marker');
    assert.equal(
      got.some((m) => m.topic === 'mwill/normal'),
      false,
    );
  });
});

test('UNSUBSCRIBE topic filters must be well-formed UTF-8 and not empty', async (t) => {
  const { port } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  const unsub3 = (filter: Buffer | string): Buffer => pkt(0xa2, Buffer.from([0, 1]), str(filter));
  const unsub5 = (filter: Buffer | string, p = props()): Buffer => pkt(0xa2, Buffer.from([0, 1]), p, str(filter));

  for (const [name, filter] of [
    ['ill-formed UTF-8', BAD_UTF8],
    ['U+0000', NUL],
    ['an overlong encoding', Buffer.from([0xc0, 0x80])],
  ] as const) {
    await t.test(`3.1.1 filter with ${name} closes the connection`, async (t) => {
      await assertCloses(t, port, 4, unsub3(filter));
    });
    await t.test(`5.0 filter with ${name} gets DISCONNECT 0x81`, async (t) => {
      await assertCloses(t, port, 5, unsub5(filter));
    });
  }

  await t.test('3.1.1 empty filter closes the connection', async (t) => {
    const c = await client(t, port, 4);
    c.sock.write(Buffer.concat([unsub3('a'), pkt(0xa2, Buffer.from([0, 2]), str('b'), str(''))]));
    await waitFor(() => c.closed, 2000, 'close');
    assert.equal(c.of('unsuback').length, 1, 'only the good UNSUBSCRIBE is answered');
  });

  await t.test('5.0 empty filter gets DISCONNECT 0x82', async (t) => {
    const c = await client(t, port, 5);
    c.sock.write(unsub5(''));
    assert.equal((await c.waitFor<Disconnect>('disconnect')).reasonCode, 0x82);
    await waitFor(() => c.closed, 2000, 'close');
  });

  await t.test('5.0 user property with U+0000 gets DISCONNECT 0x81', async (t) => {
    await assertCloses(t, port, 5, unsub5('a', props(userProperty('k', NUL))));
  });

  await t.test('a good UNSUBSCRIBE is answered', async (t) => {
    const c = await assertAccepted(t, port, 5, unsub5('a/b', props(userProperty('k', REPLACEMENT_CHAR))));
    assert.equal(c.of('unsuback').length, 1);
  });
});

test('string properties of SUBSCRIBE and CONNECT are checked on the raw bytes', async (t) => {
  const { port } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  const subscribe = (p: Buffer): Buffer => pkt(0x82, Buffer.from([0, 1]), p, str('a'), Buffer.from([0]));

  await t.test('5.0 SUBSCRIBE user property value with ill-formed UTF-8', async (t) => {
    await assertCloses(t, port, 5, subscribe(props(userProperty('k', BAD_UTF8))));
  });
  await t.test('5.0 SUBSCRIBE user property name with U+0000', async (t) => {
    await assertCloses(t, port, 5, subscribe(props(userProperty(NUL, 'v'))));
  });
  await t.test('5.0 SUBSCRIBE user property with a genuine U+FFFD is accepted', async (t) => {
    const c = await assertAccepted(t, port, 5, subscribe(props(userProperty('k', REPLACEMENT_CHAR))));
    assert.deepEqual(c.of<mqttPacket.ISubackPacket>('suback')[0]?.granted, [0]);
  });

  /** A 5.0 CONNECT with the given CONNECT properties and, when `will` is set, will properties. */
  const connect5 = (p: Buffer, will?: Buffer): Buffer =>
    pkt(
      0x10,
      str('MQTT'),
      Buffer.from([5, will === undefined ? 0x02 : 0x06, 0, 60]),
      p,
      str(randomId('props')),
      ...(will === undefined ? [] : [will, str('w/t'), str('x')]),
    );
  const connectCases: Array<[string, Buffer, boolean]> = [
    ['user property with ill-formed UTF-8', connect5(props(userProperty('k', BAD_UTF8))), false],
    ['authentication method with U+0000', connect5(props(Buffer.from([0x15]), str(NUL))), false],
    ['will content type with ill-formed UTF-8', connect5(props(), props(Buffer.from([0x03]), str(BAD_UTF8))), false],
    ['will user property with U+0000', connect5(props(), props(userProperty('k', NUL))), false],
    ['user property with a genuine U+FFFD', connect5(props(userProperty('k', REPLACEMENT_CHAR))), true],
    ['will user property with a genuine U+FFFD', connect5(props(), props(userProperty('k', REPLACEMENT_CHAR))), true],
  ];
  for (const [name, bytes, ok] of connectCases) {
    await t.test(`5.0 CONNECT ${name} ${ok ? 'is accepted' : 'gets CONNACK 0x81, then the close'}`, async (t) => {
      const r = await rawConnect(t, port);
      r.sock.write(bytes);
      if (ok) {
        await waitFor(() => r.data().length >= 4, 2000, 'CONNACK');
        assert.equal(r.data()[0], 0x20);
        assert.equal(r.data()[3], 0x00, 'CONNACK reason code 0');
      } else {
        await waitFor(() => r.closed(), 2000, 'close');
        const d = r.data();
        assert.equal(d[0], 0x20, 'a CONNACK');
        assert.equal(d[3], 0x81, 'CONNACK reason code 0x81 (malformed packet)');
      }
    });
  }
});

test('MQTT 3.1 refuses a client identifier longer than 23 characters', async (t) => {
  const { port } = await startBroker(t, { mqtt: { sysIntervalMs: 0 } });
  const connack = async (t: TestContext, level: 3 | 4 | 5, clientId: string): Promise<RawClient> => {
    const c = await RawClient.connect(t, port, { clientId, protocolVersion: level });
    await sleep(50);
    return c;
  };
  const code = (c: RawClient): number | undefined => {
    const p = c.of<mqttPacket.IConnackPacket>('connack')[0];
    return p?.returnCode ?? p?.reasonCode;
  };

  await t.test('3.1 with 24 characters gets return code 2 and is closed', async (t) => {
    const c = await connack(t, 3, 'x'.repeat(24));
    assert.equal(code(c), 2);
    await waitFor(() => c.closed, 2000, 'close');
  });
  await t.test('3.1 with 23 characters is accepted', async (t) => {
    const c = await connack(t, 3, 'y'.repeat(23));
    assert.equal(code(c), 0);
    assert.equal(c.closed, false);
  });
  await t.test('3.1.1 and 5.0 accept 24 characters and more', async (t) => {
    for (const level of [4, 5] as const) {
      const c = await connack(t, level, `${level}`.repeat(64));
      assert.equal(code(c), 0);
      assert.equal(c.closed, false);
    }
  });
});
