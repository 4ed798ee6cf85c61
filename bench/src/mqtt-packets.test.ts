import { test } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt-packet';
import {
  encodeAck,
  encodeConnack,
  encodeConnect,
  encodePublishTemplate,
  encodeSuback,
  encodeSubscribe,
  PacketType,
  patchPublish,
  repeatTemplate,
  StampField,
} from './mqtt-packets.js';
import { MqttParser, publishPayloadOffset, publishTopic, type PacketHandler } from './mqtt-parser.js';

const hex = (b: Buffer): string => b.toString('hex');

test('CONNECT matches mqtt-packet for 3.1, 3.1.1 and 5.0', () => {
  // golden bytes for 3.1.1 with credentials, so a change in both encoders still shows
  assert.equal(
    hex(encodeConnect({ level: 4, clientId: 'c1', keepaliveS: 60, username: 'u', password: 'p' })),
    '101400044d51545404c2003c00026331000175000170',
  );
  for (const level of [3, 4, 5] as const) {
    const ours = encodeConnect({ level, clientId: 'bench-1', keepaliveS: 30, username: 'user', password: 'secret' });
    const theirs = mqtt.generate({
      cmd: 'connect',
      protocolId: level === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: level,
      clientId: 'bench-1',
      clean: true,
      keepalive: 30,
      username: 'user',
      password: Buffer.from('secret'),
      ...(level === 5 ? { properties: {} } : {}),
    });
    assert.equal(hex(ours), hex(theirs), `level ${level}`);
  }
});

test('SUBSCRIBE, SUBACK, CONNACK and acks match mqtt-packet', () => {
  for (const level of [4, 5] as const) {
    const v5 = level === 5 ? { properties: {} } : {};
    assert.equal(
      hex(encodeSubscribe(level, 7, 'bench/+', 1)),
      hex(
        mqtt.generate(
          {
            cmd: 'subscribe',
            messageId: 7,
            subscriptions: [{ topic: 'bench/+', qos: 1, ...(level === 5 ? { nl: false, rap: false, rh: 0 } : {}) }],
            ...v5,
          },
          { protocolVersion: level },
        ),
      ),
    );
    assert.equal(
      hex(encodeSuback(level, 7, [1])),
      hex(mqtt.generate({ cmd: 'suback', messageId: 7, granted: [1], ...v5 }, { protocolVersion: level })),
    );
  }
  assert.equal(hex(encodeConnack(4, false, 0)), '20020000');
  assert.equal(hex(encodeConnack(5, false, 0)), '2003000000');
  assert.equal(hex(encodeAck(PacketType.Puback, 0x1234)), hex(mqtt.generate({ cmd: 'puback', messageId: 0x1234 })));
  assert.equal(hex(encodeAck(PacketType.Pubrel, 9)), hex(mqtt.generate({ cmd: 'pubrel', messageId: 9 })));
  assert.equal(hex(encodeAck(PacketType.Pubcomp, 9)), hex(mqtt.generate({ cmd: 'pubcomp', messageId: 9 })));
});

test('a patched PUBLISH template equals the packet mqtt-packet encodes', () => {
  for (const level of [4, 5] as const) {
    for (const qos of [0, 1, 2] as const) {
      const t = encodePublishTemplate(level, 'bench/3', qos, 64);
      const batch = repeatTemplate(t, 3);
      const len = t.bytes.length;
      patchPublish(batch, len, t, 0xbeef, 1_700_000_000_123.25, 3, 42);
      const payload = Buffer.alloc(64, 0x78);
      payload.writeDoubleBE(1_700_000_000_123.25, StampField.SendTimeMs);
      payload.writeUInt32BE(3, StampField.Publisher);
      payload.writeUInt32BE(42, StampField.Seq);
      const theirs = mqtt.generate(
        {
          cmd: 'publish',
          topic: 'bench/3',
          qos,
          retain: false,
          dup: false,
          payload,
          ...(qos > 0 ? { messageId: 0xbeef } : {}),
          ...(level === 5 ? { properties: {} } : {}),
        },
        { protocolVersion: level },
      );
      assert.equal(hex(batch.subarray(len, 2 * len)), hex(theirs), `level ${level} qos ${qos}`);
      // the other copies are untouched
      assert.equal(hex(batch.subarray(0, len)), hex(t.bytes));
    }
  }
  // golden: QoS 1, topic "t", 16-byte payload
  const t = encodePublishTemplate(4, 't', 1, 16);
  patchPublish(t.bytes, 0, t, 1, 0, 1, 2);
  assert.equal(hex(t.bytes), '3215' + '000174' + '0001' + '0000000000000000' + '00000001' + '00000002');
  assert.throws(() => encodePublishTemplate(4, 't', 0, 8), RangeError);
});

interface Seen {
  type: number;
  flags: number;
  body: string;
}
function collector(): PacketHandler & { seen: Seen[]; malformed: string[] } {
  const seen: Seen[] = [];
  const malformed: string[] = [];
  return {
    seen,
    malformed,
    onPacket: (type, flags, buf, start, end) => seen.push({ type, flags, body: buf.toString('hex', start, end) }),
    onMalformed: (r) => malformed.push(r),
  };
}

test('parser: whole, split in two at every position, byte by byte', () => {
  const big = encodePublishTemplate(5, 'a/b', 1, 300); // 2-byte remaining length
  const stream = Buffer.concat([
    encodeConnack(4, false, 0),
    encodeAck(PacketType.Puback, 5),
    big.bytes,
    encodeSuback(4, 1, [0]),
    Buffer.from([0xd0, 0]),
  ]);
  const whole = collector();
  new MqttParser(whole).push(stream);
  assert.deepEqual(
    whole.seen.map((s) => s.type),
    [PacketType.Connack, PacketType.Puback, PacketType.Publish, PacketType.Suback, PacketType.Pingresp],
  );
  assert.equal(whole.seen[2]!.flags, 0b0010);
  assert.equal(whole.seen[2]!.body, big.bytes.toString('hex', 3));
  for (let cut = 1; cut < stream.length; cut++) {
    const c = collector();
    const p = new MqttParser(c);
    p.push(stream.subarray(0, cut));
    p.push(stream.subarray(cut));
    assert.deepEqual(c.seen, whole.seen, `cut at ${cut}`);
  }
  const bytes = collector();
  const p = new MqttParser(bytes);
  for (let i = 0; i < stream.length; i++) p.push(stream.subarray(i, i + 1));
  assert.deepEqual(bytes.seen, whole.seen);
  assert.deepEqual(bytes.malformed, []);
});

test('parser: a remaining length of more than 4 bytes is malformed, reported once', () => {
  const c = collector();
  const p = new MqttParser(c);
  p.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
  p.push(Buffer.from([0x30, 0x00]));
  assert.equal(c.malformed.length, 1);
  assert.equal(c.seen.length, 0);
});

test('publishPayloadOffset finds the stamp at QoS 0/1 in 3.1.1 and after 5.0 properties', () => {
  for (const level of [4, 5] as const) {
    for (const qos of [0, 1]) {
      const t = encodePublishTemplate(level, 'x/y', qos, 20);
      patchPublish(t.bytes, 0, t, 77, 123.5, 9, 10);
      const c = collector();
      new MqttParser(c).push(t.bytes);
      const s = c.seen[0]!;
      const body = Buffer.from(s.body, 'hex');
      const at = { pos: 0 };
      const off = publishPayloadOffset(body, 0, body.length, s.flags, level, at);
      assert.equal(publishTopic(body, 0), 'x/y');
      assert.equal(body.readDoubleBE(off), 123.5);
      assert.equal(body.readUInt32BE(off + 12), 10);
      assert.equal(at.pos >= 0 ? body.readUInt16BE(at.pos) : -1, qos > 0 ? 77 : -1);
    }
  }
  // 5.0 PUBLISH with real properties (from another broker) still parses
  const withProps = mqtt.generate(
    {
      cmd: 'publish',
      topic: 'p',
      qos: 1,
      messageId: 3,
      retain: false,
      dup: false,
      payload: Buffer.alloc(16, 1),
      properties: { userProperties: { a: 'b' }, messageExpiryInterval: 10 },
    },
    { protocolVersion: 5 },
  );
  const c = collector();
  new MqttParser(c).push(withProps);
  const body = Buffer.from(c.seen[0]!.body, 'hex');
  const off = publishPayloadOffset(body, 0, body.length, c.seen[0]!.flags, 5, { pos: 0 });
  assert.equal(body.length - off, 16);
});
