/**
 * `robust-bench sink`: an MQTT server that accepts every CONNECT and SUBSCRIBE, acknowledges
 * QoS 1/2 PUBLISH and discards the messages. It measures the generator alone: how many messages
 * per second `robust-bench mqtt pub` can push when the broker costs nothing.
 */
import net from 'node:net';
import { once } from 'node:events';
import { MqttParser, publishPayloadOffset, readVarint, type PacketHandler } from './mqtt-parser.js';
import { encodeConnack, encodeSuback, PacketType, PINGRESP, writeAck, type ProtocolLevel } from './mqtt-packets.js';
import { parseOptions, renderHelp, usageError, type OptionTable, type OptionValues } from './options.js';
import { startFakeKafka, type FakeKafka } from './testing/fake-kafka.js';

/** Counts of what a sink swallowed. */
export interface SinkCounts {
  connections: number;
  publishes: number;
  bytes: number;
}

class SinkConnection implements PacketHandler {
  private readonly sock: net.Socket;
  private readonly counts: SinkCounts;
  private level: ProtocolLevel = 4;
  private readonly parser = new MqttParser(this);
  private out = Buffer.allocUnsafe(1024);
  private outLen = 0;
  private readonly pidAt = { pos: 0 };

  constructor(sock: net.Socket, counts: SinkCounts) {
    this.sock = sock;
    this.counts = counts;
    sock.setNoDelay(true);
    sock.on('data', (chunk: Buffer) => {
      counts.bytes += chunk.length;
      this.parser.push(chunk);
      if (this.outLen > 0) {
        sock.write(Buffer.from(this.out.subarray(0, this.outLen)));
        this.outLen = 0;
      }
    });
    sock.on('error', () => sock.destroy());
  }

  private queue(bytes: Buffer): void {
    this.reserve(bytes.length);
    bytes.copy(this.out, this.outLen);
    this.outLen += bytes.length;
  }

  private reserve(n: number): void {
    if (this.outLen + n <= this.out.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.outLen + n));
    this.out.copy(next, 0, 0, this.outLen);
    this.out = next;
  }

  onPacket(type: number, flags: number, buf: Buffer, start: number, end: number): void {
    switch (type) {
      case PacketType.Publish: {
        this.counts.publishes++;
        const qos = (flags >>> 1) & 3;
        if (qos > 0 && publishPayloadOffset(buf, start, end, flags, this.level, this.pidAt) >= 0) {
          this.reserve(4);
          writeAck(this.out, this.outLen, qos === 1 ? PacketType.Puback : PacketType.Pubrec, buf.readUInt16BE(this.pidAt.pos));
          this.outLen += 4;
        }
        return;
      }
      case PacketType.Connect: {
        const nameLen = buf.readUInt16BE(start);
        const level = buf[start + 2 + nameLen] as ProtocolLevel;
        this.level = level === 5 ? 5 : level === 3 ? 3 : 4;
        this.counts.connections++;
        this.queue(encodeConnack(this.level, false, 0));
        return;
      }
      case PacketType.Subscribe: {
        const pid = buf.readUInt16BE(start);
        let pos = start + 2;
        if (this.level === 5) {
          const cur = { pos: 0 };
          const n = readVarint(buf, pos, end, cur);
          pos = cur.pos + Math.max(0, n);
        }
        const codes: number[] = [];
        while (pos + 2 < end) {
          pos += 2 + buf.readUInt16BE(pos);
          codes.push(buf[pos++]! & 3);
        }
        this.queue(encodeSuback(this.level, pid, codes));
        return;
      }
      case PacketType.Pubrel:
        this.reserve(4);
        writeAck(this.out, this.outLen, PacketType.Pubcomp, buf.readUInt16BE(start));
        this.outLen += 4;
        return;
      case PacketType.Pingreq:
        this.queue(PINGRESP);
        return;
      case PacketType.Disconnect:
        this.sock.end();
        return;
      default:
        return;
    }
  }

  onMalformed(): void {
    this.sock.destroy();
  }
}

/** Starts a sink on `host:port` (0 = any free port). */
export async function startSink(host = '127.0.0.1', port = 0): Promise<{ port: number; counts: SinkCounts; close: () => Promise<void> }> {
  const counts: SinkCounts = { connections: 0, publishes: 0, bytes: 0 };
  const socks = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    new SinkConnection(sock, counts);
  });
  server.listen(port, host);
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    counts,
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const sinkOptions = {
  host: { type: 'string', default: '127.0.0.1', help: 'address to listen on' },
  port: { type: 'number', default: 1883, min: 0, max: 65535, help: 'port to listen on (0 = any)' },
  'kafka-port': { type: 'number', min: 0, max: 65535, help: 'also serve a Kafka sink (records counted, then dropped) on this port' },
  help: { type: 'boolean', default: false, help: 'show this help' },
} as const satisfies OptionTable;

const USAGE = `robust-bench sink [--host 127.0.0.1] [--port 1883] [--kafka-port 9092]

An MQTT server that accepts everything and discards every PUBLISH (acknowledging QoS 1/2), printing
the rate each second; runs until interrupted. Measures the load generator alone:
  robust-bench sink --port 1884 &  robust-bench mqtt pub -p 1884 -c 4 -n 2000000`;

export async function run(argv: string[]): Promise<number> {
  let v: OptionValues;
  try {
    v = parseOptions(argv, sinkOptions).values;
  } catch (err) {
    return usageError('sink', err);
  }
  if (v.help) {
    process.stdout.write(renderHelp(USAGE, sinkOptions));
    return 0;
  }
  const sink = await startSink(v.host as string, v.port as number);
  let kafka: FakeKafka | undefined;
  if (v['kafka-port'] !== undefined)
    kafka = await startFakeKafka({ host: v.host as string, port: v['kafka-port'] as number, discard: true });
  process.stdout.write(`${JSON.stringify({ msg: 'listening', mqttPort: sink.port, kafkaPort: kafka?.port })}\n`);
  let last = 0;
  const timer = setInterval(() => {
    const n = sink.counts.publishes;
    if (n !== last)
      process.stdout.write(`${JSON.stringify({ publishesPerS: n - last, total: n, connections: sink.counts.connections })}\n`);
    last = n;
  }, 1000);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  clearInterval(timer);
  await sink.close();
  await kafka?.close();
  return 0;
}
