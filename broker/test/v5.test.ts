import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IPublishPacket } from 'mqtt-packet';
import { collect, connectClient, randomId, RawClient, sleep, startBroker, waitFor } from './helpers.js';

test('MQTT 5.0 features', async (t) => {
  const { url, port } = await startBroker(t, { mqtt: { sysIntervalMs: 0, receiveMaximum: 3, topicAliasMaximum: 5 } });

  await t.test('inbound topic aliases resolve; unknown alias is a protocol error', async (t) => {
    const s = await connectClient(t, url, { protocolVersion: 5 });
    const got = collect(s);
    await s.subscribeAsync('alias/#');
    const p = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    p.send({
      cmd: 'publish',
      topic: 'alias/one',
      payload: Buffer.from('1'),
      qos: 0,
      dup: false,
      retain: false,
      properties: { topicAlias: 2 },
    });
    p.send({ cmd: 'publish', topic: '', payload: Buffer.from('2'), qos: 0, dup: false, retain: false, properties: { topicAlias: 2 } });
    await waitFor(() => got.length === 2);
    assert.deepEqual(
      got.map((m) => m.topic),
      ['alias/one', 'alias/one'],
    );
    p.send({ cmd: 'publish', topic: '', payload: Buffer.from('3'), qos: 0, dup: false, retain: false, properties: { topicAlias: 3 } });
    assert.equal((await p.waitFor<{ cmd: 'disconnect'; reasonCode: number }>('disconnect')).reasonCode, 0x82);
    const q = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    q.send({ cmd: 'publish', topic: 'a', payload: Buffer.from('3'), qos: 0, dup: false, retain: false, properties: { topicAlias: 6 } });
    assert.equal((await q.waitFor<{ cmd: 'disconnect'; reasonCode: number }>('disconnect')).reasonCode, 0x94);
  });

  await t.test('outbound topic aliases when the client allows them', async (t) => {
    const s = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5, properties: { topicAliasMaximum: 10 } });
    await s.subscribe('oa/#', 0);
    const pub = await connectClient(t, url, { protocolVersion: 5 });
    await pub.publishAsync('oa/long/topic/name', 'a');
    await pub.publishAsync('oa/long/topic/name', 'b');
    const [a, b] = [await s.waitFor<IPublishPacket>('publish', 1), await s.waitFor<IPublishPacket>('publish', 2)];
    assert.equal(a.topic, 'oa/long/topic/name');
    assert.equal(a.properties?.topicAlias, 1);
    assert.equal(b.topic, '');
    assert.equal(b.properties?.topicAlias, 1);
  });

  await t.test('message expiry: expired messages are not delivered, the rest carry the remaining interval', async (t) => {
    const clientId = randomId();
    const s1 = await connectClient(t, url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
    await s1.subscribeAsync('me/#', { qos: 1 });
    await new Promise<void>((r) => s1.end(false, {}, () => r()));
    const pub = await connectClient(t, url, { protocolVersion: 5 });
    await pub.publishAsync('me/short', 's', { qos: 1, properties: { messageExpiryInterval: 1 } });
    await pub.publishAsync('me/long', 'l', { qos: 1, properties: { messageExpiryInterval: 100 } });
    await sleep(1100);
    const s2 = await connectClient(t, url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } });
    const got = collect(s2);
    await waitFor(() => got.length >= 1);
    await sleep(100);
    assert.deepEqual(
      got.map((m) => m.topic),
      ['me/long'],
    );
    const left = got[0]?.packet.properties?.messageExpiryInterval ?? 0;
    assert.ok(left <= 99 && left >= 97, String(left));
  });

  await t.test("receive maximum: exceeding ours is DISCONNECT 0x93; the client's limits our in-flight", async (t) => {
    const p = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    const sub = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5, properties: { receiveMaximum: 2 } });
    await sub.subscribe('rm/#', 2);
    // QoS 2 without PUBREL keeps each in the count
    for (let i = 1; i <= 4; i++)
      p.send({ cmd: 'publish', topic: 'rm/x', payload: Buffer.from(String(i)), qos: 2, messageId: i, dup: false, retain: false });
    assert.equal((await p.waitFor<{ cmd: 'disconnect'; reasonCode: number }>('disconnect')).reasonCode, 0x93);
    await sleep(100);
    assert.equal(sub.of('publish').length, 2);
  });

  await t.test('maximum packet size: too large for a client is dropped for that client only', async (t) => {
    const small = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5, properties: { maximumPacketSize: 64 } });
    await small.subscribe('mps/#', 1);
    const big = await connectClient(t, url, { protocolVersion: 5 });
    const gotBig = collect(big);
    await big.subscribeAsync('mps/#', { qos: 1 });
    const pub = await connectClient(t, url, { protocolVersion: 5 });
    await pub.publishAsync('mps/x', 'x'.repeat(200), { qos: 1 });
    await pub.publishAsync('mps/x', 'small', { qos: 1 });
    await waitFor(() => gotBig.length === 2);
    await small.waitFor('publish');
    await sleep(50);
    assert.deepEqual(
      small.of<IPublishPacket>('publish').map((p) => String(p.payload)),
      ['small'],
    );
  });

  await t.test('packets larger than our maximum: DISCONNECT 0x95', async (t) => {
    const b2 = await startBroker(t, { mqtt: { sysIntervalMs: 0, maxPacketSizeBytes: 1024 } });
    const p = await RawClient.connect(t, b2.port, { clientId: randomId(), protocolVersion: 5 });
    p.send({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(2000), qos: 0, dup: false, retain: false });
    assert.equal((await p.waitFor<{ cmd: 'disconnect'; reasonCode: number }>('disconnect')).reasonCode, 0x95);
  });

  await t.test('no local', async (t) => {
    const c = await connectClient(t, url, { protocolVersion: 5 });
    const got = collect(c);
    await c.subscribeAsync('nl/#', { qos: 0, nl: true });
    await c.subscribeAsync('nl2/#', { qos: 0 });
    await c.publishAsync('nl/x', 'mine');
    await c.publishAsync('nl2/x', 'mine too');
    await waitFor(() => got.length === 1);
    await sleep(50);
    assert.deepEqual(
      got.map((m) => m.topic),
      ['nl2/x'],
    );
  });

  await t.test('properties forwarded: user properties in order, response topic, correlation data, content type, format', async (t) => {
    const s = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    await s.subscribe('props/#', 1);
    // A hand-encoded PUBLISH whose user properties interleave keys: a=1, b=2, a=3
    const sock = (await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 })).sock;
    const { encodePublish } = await import('../src/mqtt/codec.js');
    sock.write(
      encodePublish({
        protocolVersion: 5,
        topic: 'props/x',
        qos: 1,
        retain: false,
        dup: false,
        packetId: 1,
        payload: Buffer.from('héllo'),
        properties: {
          payloadFormatIndicator: 1,
          contentType: 'text/plain',
          responseTopic: 'reply/here',
          correlationData: Buffer.from([1, 2, 3]),
          userProperties: [
            ['a', '1'],
            ['b', '2'],
            ['a', '3'],
          ],
        },
      }).bytes,
    );
    const m = await s.waitFor<IPublishPacket>('publish');
    assert.equal(m.properties?.contentType, 'text/plain');
    assert.equal(m.properties?.responseTopic, 'reply/here');
    assert.deepEqual([...(m.properties?.correlationData ?? [])], [1, 2, 3]);
    assert.equal(m.properties?.payloadFormatIndicator, true);
    // mqtt-packet groups values by key; check the raw order on the wire instead
    const raw = await rawPublishBytes(t, port, 'props/#', () =>
      sock.write(
        encodePublish({
          protocolVersion: 5,
          topic: 'props/y',
          qos: 0,
          retain: false,
          dup: false,
          packetId: 0,
          payload: Buffer.alloc(0),
          properties: {
            userProperties: [
              ['a', '1'],
              ['b', '2'],
              ['a', '3'],
            ],
          },
        }).bytes,
      ),
    );
    const s2 = raw.toString('latin1');
    assert.ok(
      s2.indexOf('a\u0000\u00011') < s2.indexOf('b\u0000\u00012') && s2.indexOf('b\u0000\u00012') < s2.indexOf('a\u0000\u00013'),
      'order kept',
    );
  });

  await t.test('payload format indicator 1 with invalid UTF-8: PUBACK 0x99', async (t) => {
    const p = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    p.send({
      cmd: 'publish',
      topic: 'pfi',
      payload: Buffer.from([0xff, 0xfe]),
      qos: 1,
      messageId: 5,
      dup: false,
      retain: false,
      properties: { payloadFormatIndicator: true },
    });
    const ack = await p.waitFor<{ cmd: 'puback'; reasonCode: number }>('puback');
    assert.equal(ack.reasonCode, 0x99);
  });

  await t.test('no matching subscribers: PUBACK 0x10', async (t) => {
    const p = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    p.send({ cmd: 'publish', topic: 'nobody/here', payload: Buffer.from('x'), qos: 1, messageId: 5, dup: false, retain: false });
    assert.equal((await p.waitFor<{ cmd: 'puback'; reasonCode: number }>('puback')).reasonCode, 0x10);
  });

  await t.test('request response information', async (t) => {
    const p = await RawClient.connect(t, port, { clientId: 'rri', protocolVersion: 5, properties: { requestResponseInformation: true } });
    const ack = p.of<{ cmd: 'connack'; sessionPresent: boolean; properties?: { responseInformation?: string } }>('connack')[0];
    assert.equal(ack?.properties?.responseInformation, '$response/rri/');
  });

  await t.test('AUTH packet without a method is a protocol error', async (t) => {
    const p = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    p.send({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: 'X' } } as never);
    assert.equal((await p.waitFor<{ cmd: 'disconnect'; reasonCode: number }>('disconnect')).reasonCode, 0x82);
  });

  await t.test(
    'reason strings: sent by default; not with Request Problem Information 0; never beyond the client Maximum Packet Size',
    async (t) => {
      type Disconnect = { cmd: 'disconnect'; reasonCode: number; properties?: { reasonString?: string } };
      type Connack = { cmd: 'connack'; sessionPresent: boolean; reasonCode: number; properties?: { reasonString?: string } };
      const badAlias = async (props: Record<string, unknown>): Promise<Disconnect> => {
        const c = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5, properties: props });
        const chunks: Buffer[] = [];
        c.sock.on('data', (d: Buffer) => chunks.push(d));
        c.send({ cmd: 'publish', topic: 'a', payload: Buffer.from('x'), qos: 0, dup: false, retain: false, properties: { topicAlias: 6 } });
        const d = await c.waitFor<Disconnect>('disconnect');
        const limit = props.maximumPacketSize as number | undefined;
        if (limit !== undefined) assert.ok(Buffer.concat(chunks).length <= limit, 'the DISCONNECT fits the limit');
        return d;
      };
      const plain = await badAlias({});
      assert.equal(plain.reasonCode, 0x94);
      assert.match(plain.properties?.reasonString ?? '', /alias/i);
      const quiet = await badAlias({ requestProblemInformation: false });
      assert.deepEqual([quiet.reasonCode, quiet.properties?.reasonString], [0x94, undefined]);
      const small = await badAlias({ maximumPacketSize: 8 });
      assert.deepEqual([small.reasonCode, small.properties?.reasonString], [0x94, undefined]);

      const refused = async (props: Record<string, unknown>): Promise<Connack> => {
        const c = await RawClient.connect(t, port, {
          clientId: randomId(),
          protocolVersion: 5,
          properties: { authenticationMethod: 'NOPE', ...props },
        });
        return c.of<Connack>('connack')[0]!;
      };
      const withWhy = await refused({});
      assert.equal(withWhy.reasonCode, 0x8c);
      assert.ok((withWhy.properties?.reasonString ?? '').length > 0, 'a refusing CONNACK says why');
      const tight = await refused({ maximumPacketSize: 8 });
      assert.deepEqual([tight.reasonCode, tight.properties?.reasonString], [0x8c, undefined]);
    },
  );

  await t.test('unsubscribe reason codes', async (t) => {
    const c = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
    await c.subscribe('u/a', 0);
    c.send({ cmd: 'unsubscribe', messageId: 9, unsubscriptions: ['u/a', 'u/b'] });
    const ack = await c.waitFor<{ cmd: 'unsuback'; granted: number[] }>('unsuback');
    assert.deepEqual(ack.granted, [0x00, 0x11]);
  });
});

/** Bytes a raw subscriber to `filter` receives while `act` runs. */
async function rawPublishBytes(t: import('node:test').TestContext, port: number, filter: string, act: () => void): Promise<Buffer> {
  const c = await RawClient.connect(t, port, { clientId: randomId(), protocolVersion: 5 });
  await c.subscribe(filter, 0);
  const chunks: Buffer[] = [];
  c.sock.on('data', (d: Buffer) => chunks.push(d));
  act();
  await c.waitFor('publish');
  return Buffer.concat(chunks);
}
