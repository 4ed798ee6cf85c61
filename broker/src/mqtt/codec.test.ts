import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import mqttPacket from 'mqtt-packet';
import {
  Framer,
  PacketDecoder,
  decodeConnectV3,
  decodePublish,
  encodePublish,
  withPacketId,
  type OutboundPublish,
  type PublishPacket,
} from './codec.js';
import { MqttProtocolError } from './reason-codes.js';

// Fixtures live beside the sources (dist/src/mqtt → src/mqtt/fixtures).
const fixture = (name: string): Buffer =>
  Buffer.from(readFileSync(new URL(`../../../src/mqtt/fixtures/${name}`, import.meta.url), 'utf8').trim(), 'hex');

const v4: OutboundPublish = {
  protocolVersion: 4,
  topic: 'a/b',
  qos: 1,
  retain: false,
  dup: false,
  packetId: 10,
  payload: Buffer.from('hi'),
  properties: undefined,
};
const v5: OutboundPublish = {
  protocolVersion: 5,
  topic: 's/t',
  qos: 0,
  retain: true,
  dup: false,
  packetId: 0,
  payload: Buffer.from('{}'),
  properties: { payloadFormatIndicator: 1, messageExpiryInterval: 60, contentType: 'application/json', userProperties: [['k', 'v']] },
};

function decodeAll(bytes: Buffer, chunks: Buffer[], protocolVersion: number): PublishPacket[] {
  const framer = new Framer(1024 * 1024);
  const out: PublishPacket[] = [];
  for (const c of chunks) for (const f of framer.push(c)) out.push(decodePublish(f, protocolVersion));
  assert.equal(framer.pendingBytes, 0, `all of ${bytes.length} bytes consumed`);
  return out;
}

for (const [name, pkt] of [
  ['publish-v4-qos1.hex', v4],
  ['publish-v5-props.hex', v5],
] as const) {
  test(`PUBLISH ${name}: encode matches the golden bytes (captured from mqtt-packet)`, () => {
    assert.equal(encodePublish(pkt).bytes.toString('hex'), fixture(name).toString('hex'));
  });

  test(`PUBLISH ${name}: decodes whole, in two chunks and byte by byte`, () => {
    const bytes = fixture(name);
    const expect = (p: PublishPacket | undefined): void => {
      assert.ok(p);
      assert.equal(p.topic, pkt.topic);
      assert.equal(p.qos, pkt.qos);
      assert.equal(p.retain, pkt.retain);
      assert.equal(p.packetId, pkt.packetId);
      assert.deepEqual(p.payload, pkt.payload);
      if (pkt.properties) {
        assert.equal(p.properties?.payloadFormatIndicator, 1);
        assert.equal(p.properties?.messageExpiryInterval, 60);
        assert.equal(p.properties?.contentType, 'application/json');
        assert.deepEqual(p.properties?.userProperties, [['k', 'v']]);
      }
    };
    expect(decodeAll(bytes, [bytes], pkt.protocolVersion)[0]);
    for (let cut = 1; cut < bytes.length; cut++)
      expect(decodeAll(bytes, [bytes.subarray(0, cut), bytes.subarray(cut)], pkt.protocolVersion)[0]);
    expect(
      decodeAll(
        bytes,
        [...bytes].map((b) => Buffer.from([b])),
        pkt.protocolVersion,
      )[0],
    );
  });

  test(`PUBLISH ${name}: a truncated packet is held, never decoded`, () => {
    const bytes = fixture(name);
    for (let cut = 0; cut < bytes.length; cut++) {
      const framer = new Framer(1024);
      assert.deepEqual(framer.push(bytes.subarray(0, cut)), [], `no frame from ${cut} bytes`);
    }
  });
}

test('a patched packet id changes only those two bytes', () => {
  const e = encodePublish(v4);
  const copy = withPacketId(e, 0xbeef);
  assert.equal(copy.readUInt16BE(e.packetIdOffset), 0xbeef);
  assert.equal(e.bytes.readUInt16BE(e.packetIdOffset), 10, 'the original is untouched');
  assert.deepEqual(copy.subarray(0, e.packetIdOffset), e.bytes.subarray(0, e.packetIdOffset));
});

test('bad input fails with a protocol error: 5-byte remaining length, oversize packet, malformed topic length', () => {
  assert.throws(() => new Framer(1 << 20).push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])), MqttProtocolError);
  assert.throws(() => new Framer(16).push(Buffer.from([0x30, 0x20])), MqttProtocolError);
  const [f] = new Framer(1024).push(Buffer.from([0x30, 0x03, 0x00, 0x09, 0x61])); // topic length 9 > body
  assert.ok(f);
  assert.throws(() => decodePublish(f, 4), MqttProtocolError);
});

test('property: random PUBLISH packets from an independent encoder (mqtt-packet) decode to what was sent', () => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const framer = new Framer(1 << 20);
  for (let i = 0; i < 500; i++) {
    const version = rnd(2) === 0 ? 4 : 5;
    const qos = rnd(3) as 0 | 1 | 2;
    const topic = Array.from({ length: 1 + rnd(4) }, () =>
      Math.random()
        .toString(36)
        .slice(2, 2 + 1 + rnd(6)),
    ).join('/');
    const payload = Buffer.from(Array.from({ length: rnd(300) }, () => rnd(256)));
    const userProperties = rnd(2) === 0 ? { a: String(rnd(100)), b: 'x' } : undefined;
    const bytes = mqttPacket.generate(
      {
        cmd: 'publish',
        topic,
        payload,
        qos,
        messageId: qos > 0 ? 1 + rnd(65535) : undefined,
        retain: rnd(2) === 1,
        dup: false,
        ...(version === 5 && userProperties ? { properties: { userProperties } } : {}),
      } as mqttPacket.IPublishPacket,
      { protocolVersion: version },
    );
    // feed in random pieces
    const frames = [];
    for (let pos = 0; pos < bytes.length;) {
      const n = 1 + rnd(bytes.length - pos);
      frames.push(...framer.push(bytes.subarray(pos, pos + n)));
      pos += n;
    }
    assert.equal(frames.length, 1);
    const p = decodePublish(frames[0] as NonNullable<(typeof frames)[0]>, version);
    assert.equal(p.topic, topic);
    assert.equal(p.qos, qos);
    assert.deepEqual(p.payload, payload);
    if (version === 5 && userProperties) assert.deepEqual(p.properties?.userProperties, Object.entries(userProperties));
  }
});

test('fuzz: random bytes never crash the framer or the decoder with anything but a protocol error', () => {
  let seed = 99;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let i = 0; i < 2000; i++) {
    const framer = new Framer(4096);
    const bytes = Buffer.from(Array.from({ length: 1 + rnd(64) }, () => rnd(256)));
    bytes[0] = 0x30 | (rnd(16) & 0x0f); // make it look like a PUBLISH
    try {
      for (const f of framer.push(bytes)) decodePublish(f, rnd(2) === 0 ? 4 : 5);
    } catch (err) {
      assert.ok(err instanceof MqttProtocolError, `unexpected ${(err as Error).name}: ${(err as Error).message}`);
    }
  }
});

test('decodeConnectV3 agrees with mqtt-packet on 3.1 and 3.1.1 CONNECTs, valid or not', () => {
  const frame = (bytes: Buffer) => new Framer(1024 * 1024).push(bytes)[0]!;
  const outcome = (fn: () => unknown): unknown => {
    try {
      return { ok: fn() };
    } catch (err) {
      assert.ok(err instanceof MqttProtocolError);
      return { err: err.message };
    }
  };
  const cases: Buffer[] = [];
  for (const level of [3, 4] as const)
    for (const will of [false, true])
      for (const username of [undefined, 'user', 'ü'])
        for (const password of [undefined, Buffer.from('secret')])
          for (const clean of [false, true]) {
            if (password !== undefined && username === undefined) continue; // mqtt-packet will not encode it
            const p = mqttPacket.generate({
              cmd: 'connect',
              protocolId: level === 3 ? 'MQIsdp' : 'MQTT',
              protocolVersion: level,
              clean,
              clientId: 'client-1',
              keepalive: 30,
              ...(will ? { will: { topic: 'w/t', payload: Buffer.from('bye'), qos: 1 as const, retain: true } } : {}),
              ...(username !== undefined ? { username } : {}),
              ...(password !== undefined ? { password } : {}),
            });
            cases.push(p);
            // truncated inside the payload (the remaining length patched to match), and bad flags
            for (const cut of [3, 9, 12, p.length - 4, p.length - 1]) {
              if (cut >= p.length || cut < 3) continue;
              const t = Buffer.from(p.subarray(0, cut));
              t[1] = cut - 2;
              cases.push(t);
            }
            for (const flagsXor of [0x01, 0x20, 0x18]) {
              const b = Buffer.from(p);
              b[9 + (level === 3 ? 2 : 0)]! ^= flagsXor;
              cases.push(b);
            }
          }
  const badHeader = Buffer.from(cases[0]!);
  badHeader[0] = 0x12;
  cases.push(badHeader);
  let refused = 0;
  for (const bytes of cases) {
    const f = frame(bytes);
    const level = bytes[8 + (bytes[3] === 6 ? 2 : 0)]!;
    const decoder = new PacketDecoder();
    decoder.protocolVersion = level;
    const want = outcome(() => decoder.decode(f));
    const got = outcome(() => decodeConnectV3(f));
    if ((want as { err?: string }).err !== undefined) refused++;
    assert.deepEqual(JSON.parse(JSON.stringify(got)), JSON.parse(JSON.stringify(want)), `CONNECT ${bytes.toString('hex')}`);
  }
  // both outcomes were exercised
  assert.ok(refused > 20 && refused < cases.length - 20, `${refused} of ${cases.length} refused`);
});
