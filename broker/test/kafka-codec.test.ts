import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { RobustError, TruncatedError } from '@robustmq/common';
import { API_BY_KEY } from '../src/kafka/messages/index.js';
import { Reader } from '../src/kafka/wire/reader.js';
import { Writer } from '../src/kafka/wire/writer.js';
import { Framer } from '../src/kafka/framing.js';
import { decodeRequestHeader, encodeRequestFrame, type ApiCodec } from '../src/kafka/protocol.js';
import { FrameTooLargeError, MalformedRequestError } from '../src/kafka/errors.js';
import { HANDLERS } from '../src/kafka/server.js';

const here = dirname(fileURLToPath(import.meta.url));
/** broker/ (tests run from dist/test). */
const BROKER = join(here, '../..');
const MESSAGES = join(BROKER, 'src/kafka/messages');
const SPECS = process.env.KAFKA_SPEC_DIR ?? join(BROKER, '../../shared/kafka-protocol');
const APIS = Object.values(API_BY_KEY) as unknown as ApiCodec[];
const kebab = (s: string): string => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

type Codec = ApiCodec['codecs'][number];
const hex = (file: string): Buffer => Buffer.from(readFileSync(file, 'utf8').replace(/\s+/g, ''), 'hex');

interface Fixture {
  api: ApiCodec;
  version: number;
  kind: 'request' | 'response';
  bytes: Buffer;
  name: string;
}

function fixtures(): Fixture[] {
  const out: Fixture[] = [];
  for (const api of APIS) {
    const dir = join(MESSAGES, kebab(api.name), 'fixtures');
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) {
      const m = /^v(\d+)-(request|response)\.hex$/.exec(f);
      if (!m) continue;
      out.push({ api, version: Number(m[1]), kind: m[2] as 'request' | 'response', bytes: hex(join(dir, f)), name: `${api.name} ${f}` });
    }
  }
  return out;
}

function decode(c: Codec, kind: 'request' | 'response', bytes: Buffer): { value: unknown; consumed: number } {
  const r = new Reader(bytes);
  const value = kind === 'request' ? c.decodeRequest(r) : c.decodeResponse(r);
  return { value, consumed: r.pos };
}

function encode(c: Codec, kind: 'request' | 'response', value: unknown): Buffer {
  const w = new Writer(64);
  if (kind === 'request') c.encodeRequest(w, value);
  else c.encodeResponse(w, value);
  return w.toBuffer();
}

test('generated codecs are fresh (node broker/scripts/gen-kafka.mjs --check)', { skip: !existsSync(SPECS) && 'no spec dir' }, () => {
  const r = spawnSync(process.execPath, [join(BROKER, 'scripts/gen-kafka.mjs'), '--check'], {
    encoding: 'utf8',
    env: { ...process.env, KAFKA_SPEC_DIR: SPECS },
  });
  assert.equal(r.status, 0, r.stderr);
});

test('ApiVersions advertises exactly the APIs that have a handler', () => {
  assert.deepEqual(
    APIS.map((a) => a.key).sort((a, b) => a - b),
    Object.keys(HANDLERS)
      .map(Number)
      .sort((a, b) => a - b),
  );
});

test('golden fixtures captured from kafkajs, librdkafka (kcat, confluent-kafka) and kafka-python', async (t) => {
  const all = fixtures();
  assert.ok(all.length >= 40, `only ${all.length} fixtures`);
  for (const fx of all) {
    await t.test(fx.name, () => {
      const c = fx.api.codecs[fx.version]!;
      // decode(fixture) consumes it exactly; encode(decoded) gives the fixture back
      const { value, consumed } = decode(c, fx.kind, fx.bytes);
      assert.equal(consumed, fx.bytes.length);
      assert.deepEqual(encode(c, fx.kind, value), fx.bytes);
      // round trip of the decoded object
      assert.deepEqual(decode(c, fx.kind, encode(c, fx.kind, value)).value, value);
      // every truncation fails with a typed error, never a wrong value or a crash
      const cuts = fx.bytes.length <= 400 ? fx.bytes.length : 50;
      for (let i = 0; i < cuts; i++) {
        const n = fx.bytes.length <= 400 ? i : Math.floor((i * fx.bytes.length) / cuts);
        assert.throws(
          () => decode(c, fx.kind, fx.bytes.subarray(0, n)),
          (err: unknown) => err instanceof TruncatedError || err instanceof MalformedRequestError,
          `${fx.name} cut at ${n}`,
        );
      }
    });
  }
});

test('request fixtures through the framer: whole, in two chunks and byte by byte', () => {
  for (const fx of fixtures().filter((f) => f.kind === 'request')) {
    const frame = encodeRequestFrame(fx.api, fx.version, 7, 'fixture', decode(fx.api.codecs[fx.version]!, 'request', fx.bytes).value);
    const split = Math.floor(frame.length / 2);
    const feeds: Buffer[][] = [[frame], [frame.subarray(0, split), frame.subarray(split)], [...frame].map((b) => Buffer.from([b]))];
    for (const chunks of feeds) {
      const framer = new Framer(1 << 20);
      const frames = chunks.flatMap((ch) => framer.push(ch));
      assert.equal(frames.length, 1, fx.name);
      const { header, body } = decodeRequestHeader(frames[0]!);
      assert.deepEqual([header.apiKey, header.apiVersion, header.correlationId, header.clientId], [fx.api.key, fx.version, 7, 'fixture']);
      assert.deepEqual(encode(fx.api.codecs[fx.version]!, 'request', fx.api.codecs[fx.version]!.decodeRequest(body)), fx.bytes, fx.name);
      assert.equal(framer.buffered, 0);
    }
  }
});

test('framer: an oversized or negative size fails before the body is buffered', () => {
  const f = new Framer(100);
  assert.throws(() => f.push(Buffer.from([0, 0, 0, 101])), FrameTooLargeError);
  assert.throws(() => new Framer(100).push(Buffer.from([0xff, 0xff, 0xff, 0xff])), FrameTooLargeError);
  // two frames and a partial third in one chunk
  const g = new Framer(100);
  const two = g.push(Buffer.from([0, 0, 0, 1, 9, 0, 0, 0, 2, 8, 7, 0, 0]));
  assert.deepEqual(two, [Buffer.from([9]), Buffer.from([8, 7])]);
  assert.deepEqual(g.push(Buffer.from([0, 1, 5])), [Buffer.from([5])]);
});

test('hand-built from the spec: ApiVersions v3 request (flexible, KIP-511) and Fetch v12 response tagged fields', () => {
  const api = API_BY_KEY[18] as unknown as ApiCodec;
  // client_software_name "librdkafka" (compact: 10+1), client_software_version "2.0.2" (5+1), no tags
  const bytes = Buffer.concat([Buffer.from([11]), Buffer.from('librdkafka'), Buffer.from([6]), Buffer.from('2.0.2'), Buffer.from([0])]);
  const req = decode(api.codecs[3]!, 'request', bytes).value as { clientSoftwareName: string; clientSoftwareVersion: string };
  assert.equal(req.clientSoftwareName, 'librdkafka');
  assert.equal(req.clientSoftwareVersion, '2.0.2');
  assert.deepEqual(encode(api.codecs[3]!, 'request', req), bytes);

  const fetch = API_BY_KEY[1] as unknown as ApiCodec;
  const resp = {
    throttleTimeMs: 0,
    errorCode: 0,
    sessionId: 0,
    responses: [
      {
        topic: 't',
        partitions: [
          {
            partitionIndex: 0,
            errorCode: 0,
            highWatermark: 5n,
            lastStableOffset: 5n,
            logStartOffset: 0n,
            abortedTransactions: null,
            preferredReadReplica: -1,
            records: Buffer.alloc(0),
            currentLeader: { leaderId: 1, leaderEpoch: 2 },
          },
        ],
      },
    ],
  };
  const out = encode(fetch.codecs[12]!, 'response', resp);
  // prettier-ignore
  const expected = Buffer.from([
    0, 0, 0, 0, /* throttle */ 0, 0, /* error */ 0, 0, 0, 0, /* session */ 2, /* 1 topic */ 2, 0x74, /* "t" */ 2, /* 1 partition */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0,
    0, /* aborted null */ 0xff, 0xff, 0xff, 0xff, /* preferred replica */ 1, /* records: empty (0+1) */
    1, /* partition tags: one field */ 1, /* tag 1 current_leader */ 9, /* size */ 0, 0, 0, 1, 0, 0, 0, 2, 0, /* its own tags */
    0, /* topic tags */ 0, /* response tags */
  ]);
  assert.deepEqual(out, expected);
  const back = decode(fetch.codecs[12]!, 'response', out).value as typeof resp;
  assert.deepEqual(back.responses[0]!.partitions[0]!.currentLeader, { leaderId: 1, leaderEpoch: 2 });
});

// -------------------------------------------------------------------------------------------
// property test: random messages built from the JSON specs, every API, version and direction

interface SpecField {
  name: string;
  type: string;
  versions: string;
  nullableVersions?: string;
  taggedVersions?: string;
  fields?: SpecField[];
}
interface Spec {
  fields: SpecField[];
  commonStructs?: { name: string; fields: SpecField[] }[];
}

function stripComments(text: string): string {
  return text.replace(/("(?:[^"\\]|\\.)*")|\/\/[^\n]*/g, (_m, str: string | undefined) => str ?? '');
}

function inRange(spec: string | undefined, v: number): boolean {
  if (spec === undefined || spec === 'none') return false;
  const m = /^(\d+)(\+|-(\d+))?$/.exec(spec)!;
  const lo = Number(m[1]);
  if (m[2] === '+') return v >= lo;
  if (m[3] !== undefined) return v >= lo && v <= Number(m[3]);
  return v === lo;
}

/** A seeded PRNG so a failure names the seed that reproduces it. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function randomValue(f: SpecField, v: number, spec: Spec, rnd: () => number, depth: number): unknown {
  const nullable = inRange(f.nullableVersions, v);
  if (nullable && rnd() < 0.2) return null;
  const camel = (s: string): string => s[0]!.toLowerCase() + s.slice(1);
  const structOf = (type: string, fields?: SpecField[]): unknown => {
    const fs = fields ?? spec.commonStructs?.find((c) => c.name === type)?.fields ?? [];
    const o: Record<string, unknown> = {};
    for (const sf of fs) {
      if (!inRange(sf.versions, v)) continue;
      if (inRange(sf.taggedVersions, v) && rnd() < 0.5) continue;
      o[camel(sf.name)] = randomValue(sf, v, spec, rnd, depth + 1);
    }
    return o;
  };
  const int = (bits: number): number => Math.floor(rnd() * 2 ** bits) - 2 ** (bits - 1);
  const prim = (t: string): unknown => {
    switch (t) {
      case 'int8':
        return int(8);
      case 'int16':
        return int(16);
      case 'uint16':
        return Math.floor(rnd() * 65536);
      case 'int32':
        return int(32);
      case 'int64':
        return BigInt(int(32)) * 4294967296n + BigInt(Math.floor(rnd() * 4294967296));
      case 'float64':
        return rnd() * 1e6 - 5e5;
      case 'bool':
        return rnd() < 0.5;
      case 'string':
        return (
          Math.random()
            .toString(36)
            .slice(2, 2 + Math.floor(rnd() * 8)) + (rnd() < 0.2 ? 'é→' : '')
        );
      case 'uuid': {
        const h = randomBytes(16).toString('hex');
        return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
      }
      case 'bytes':
      case 'records':
        return randomBytes(Math.floor(rnd() * (rnd() < 0.1 ? 5000 : 20)));
    }
    throw new Error(`type ${t}`);
  };
  if (f.type.startsWith('[]')) {
    const elem = f.type.slice(2);
    const n = depth > 3 ? 0 : Math.floor(rnd() * 3);
    return Array.from({ length: n }, () => (/^[A-Z]/.test(elem) ? structOf(elem, f.fields) : prim(elem)));
  }
  if (/^[A-Z]/.test(f.type)) return structOf(f.type, f.fields);
  return prim(f.type);
}

test(
  'property: encode → decode → encode is byte-identical for random messages of every API and version',
  { skip: !existsSync(SPECS) && 'no spec dir' },
  () => {
    const seed = Number(process.env.KAFKA_PROPERTY_SEED ?? Date.now() % 1e9);
    const rnd = prng(seed);
    let cases = 0;
    for (const api of APIS) {
      for (const kind of ['request', 'response'] as const) {
        const spec = JSON.parse(
          stripComments(readFileSync(join(SPECS, `${api.name}${kind === 'request' ? 'Request' : 'Response'}.json`), 'utf8')),
        ) as Spec;
        for (let v = api.minVersion; v <= api.maxVersion; v++) {
          const c = api.codecs[v]!;
          for (let i = 0; i < 15; i++) {
            const msg = randomValue({ name: 'root', type: 'Root', versions: '0+', fields: spec.fields }, v, spec, rnd, 0);
            const bytes = encode(c, kind, msg);
            let again: Buffer;
            try {
              const d = decode(c, kind, bytes);
              assert.equal(d.consumed, bytes.length);
              again = encode(c, kind, d.value);
            } catch (err) {
              assert.fail(`${api.name} v${v} ${kind} (seed ${seed}): ${(err as Error).message}`);
            }
            assert.deepEqual(again, bytes, `${api.name} v${v} ${kind} (seed ${seed})`);
            cases++;
          }
        }
      }
    }
    assert.ok(cases > 1000);
  },
);

test('reader: impossible lengths and over-long varints are typed errors', () => {
  assert.throws(() => new Reader(Buffer.from([0xff, 0xfe])).string(), MalformedRequestError);
  assert.throws(() => new Reader(Buffer.from([0xff, 0xff])).string(), MalformedRequestError); // null where not nullable
  assert.throws(() => new Reader(Buffer.from([0, 0, 0, 50, 1])).array((r) => r.int8()), TruncatedError);
  assert.throws(() => new Reader(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])).uvarint(), MalformedRequestError);
  assert.ok(new MalformedRequestError('x') instanceof RobustError);
});
