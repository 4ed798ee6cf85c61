/**
 * A tiny in-memory Kafka broker for tests of the Kafka generator (and `robust-bench sink
 * --kafka-port`): ApiVersions v0, Metadata v1, CreateTopics v2, ListOffsets v1, Produce v3 and
 * Fetch v4 over one node. Produced batches are stored unchanged except for their base offset, as
 * RobustMQ does; `discard` keeps only the offsets (a sink).
 */
import net from 'node:net';
import { once } from 'node:events';
import { ApiKey, KafkaReader, KafkaWriter } from '../kafka-wire.js';

interface Partition {
  batches: Buffer[];
  next: bigint;
}

export interface FakeKafka {
  port: number;
  /** Records appended per topic. */
  records(topic: string): number;
  close(): Promise<void>;
}

export async function startFakeKafka(
  opts: { host?: string; port?: number; discard?: boolean; errorCode?: number } = {},
): Promise<FakeKafka> {
  const topics = new Map<string, Partition[]>();
  let port = 0;
  const ensure = (name: string, n: number): Partition[] => {
    let t = topics.get(name);
    if (!t) topics.set(name, (t = Array.from({ length: n }, () => ({ batches: [], next: 0n }))));
    return t;
  };
  const handle = (apiKey: number, r: KafkaReader): Buffer | null => {
    const w = new KafkaWriter();
    switch (apiKey) {
      case ApiKey.ApiVersions:
        return w
          .int16(0)
          .array(
            [
              [0, 3, 3],
              [1, 4, 4],
              [2, 1, 1],
              [3, 1, 1],
              [18, 0, 0],
              [19, 2, 2],
            ],
            (w, [k, lo, hi]) => w.int16(k!).int16(lo!).int16(hi!),
          )
          .done();
      case ApiKey.Metadata: {
        const names = r.array((r) => r.string() ?? '');
        w.array([0], (w) => w.int32(1).string('127.0.0.1').int32(port).string(null)).int32(1);
        return w
          .array(names, (w, n) => {
            const t = topics.get(n);
            w.int16(t ? 0 : 3)
              .string(n)
              .int8(0);
            w.array(t ?? [], (w, _p, i) =>
              w
                .int16(0)
                .int32(i)
                .int32(1)
                .array([1], (w, id) => w.int32(id))
                .array([1], (w, id) => w.int32(id)),
            );
          })
          .done();
      }
      case ApiKey.CreateTopics: {
        r.int32(); // one topic per request from robust-bench
        const name = r.string() ?? '';
        const n = r.int32();
        const exists = topics.has(name);
        ensure(name, n);
        return w
          .int32(0)
          .array([name], (w, nm) =>
            w
              .string(nm)
              .int16(exists ? 36 : 0)
              .string(null),
          )
          .done();
      }
      case ApiKey.ListOffsets: {
        r.int32();
        const reqs = r.array((r) => ({ name: r.string() ?? '', parts: r.array((r) => ({ p: r.int32(), ts: r.int64() })) }));
        return w
          .array(reqs, (w, t) =>
            w.string(t.name).array(t.parts, (w, q) => {
              const part = topics.get(t.name)?.[q.p];
              w.int32(q.p)
                .int16(part ? 0 : 3)
                .int64(-1n)
                .int64(part ? (q.ts === -2n ? 0n : part.next) : -1n);
            }),
          )
          .done();
      }
      case ApiKey.Produce: {
        r.string();
        const acks = r.int16();
        r.int32();
        const out: { name: string; parts: { p: number; code: number; base: bigint }[] }[] = [];
        r.array((r) => {
          const name = r.string() ?? '';
          const parts: { p: number; code: number; base: bigint }[] = [];
          r.array((r) => {
            const p = r.int32();
            const view = r.bytesView();
            const part = topics.get(name)?.[p];
            if (!part || !view) return parts.push({ p, code: 3, base: -1n });
            if (opts.errorCode) return parts.push({ p, code: opts.errorCode, base: -1n });
            const base = part.next;
            const batch = r.buf.subarray(view.start, view.end);
            part.next += BigInt(batch.readInt32BE(23) + 1);
            if (!opts.discard) {
              const copy = Buffer.from(batch);
              copy.writeBigInt64BE(base, 0);
              part.batches.push(copy);
            }
            return parts.push({ p, code: 0, base });
          });
          out.push({ name, parts });
        });
        if (acks === 0) return null;
        return w
          .array(out, (w, t) => w.string(t.name).array(t.parts, (w, q) => w.int32(q.p).int16(q.code).int64(q.base).int64(-1n)))
          .int32(0)
          .done();
      }
      case ApiKey.Fetch: {
        r.int32();
        r.int32();
        r.int32();
        r.int32();
        r.int8();
        const reqs = r.array((r) => ({
          name: r.string() ?? '',
          parts: r.array((r) => ({ p: r.int32(), offset: r.int64(), max: r.int32() })),
        }));
        w.int32(0);
        return w
          .array(reqs, (w, t) =>
            w.string(t.name).array(t.parts, (w, q) => {
              const part = topics.get(t.name)?.[q.p];
              const chosen: Buffer[] = [];
              let bytes = 0;
              for (const b of part?.batches ?? []) {
                const last = b.readBigInt64BE(0) + BigInt(b.readInt32BE(23));
                if (last < q.offset) continue;
                if (bytes > 0 && bytes + b.length > q.max) break;
                chosen.push(b);
                bytes += b.length;
              }
              w.int32(q.p)
                .int16(part ? 0 : 3)
                .int64(part?.next ?? -1n)
                .int64(part?.next ?? -1n)
                .int32(0);
              w.bytes(chosen.length > 0 ? Buffer.concat(chosen) : null);
            }),
          )
          .done();
      }
      default:
        return w.int16(35).done();
    }
  };
  const socks = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    socks.add(sock);
    sock.on('close', () => socks.delete(sock));
    sock.on('error', () => sock.destroy());
    let carry = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      let pos = 0;
      const outs: Buffer[] = [];
      while (pos + 4 <= buf.length) {
        const size = buf.readInt32BE(pos);
        if (pos + 4 + size > buf.length) break;
        const r = new KafkaReader(buf, pos + 4, pos + 4 + size);
        const apiKey = r.int16();
        r.int16();
        const corr = r.int32();
        r.string();
        const body = handle(apiKey, r);
        if (body) {
          const head = Buffer.allocUnsafe(8);
          head.writeInt32BE(body.length + 4, 0);
          head.writeInt32BE(corr, 4);
          outs.push(head, Buffer.from(body));
        }
        pos += 4 + size;
      }
      carry = pos < buf.length ? Buffer.from(buf.subarray(pos)) : Buffer.alloc(0);
      if (outs.length) sock.write(Buffer.concat(outs));
    });
  });
  server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as net.AddressInfo).port;
  return {
    port,
    records: (topic) => Number((topics.get(topic) ?? []).reduce((a, p) => a + p.next, 0n)),
    close: async () => {
      for (const s of socks) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
