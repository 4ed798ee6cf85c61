import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ErrorCode, RobustError } from '@robustmq/common';
import {
  BatchField,
  Compression,
  decodeRecordBatch,
  encodeRecordBatch,
  iterateRecords,
  validateBatches,
  type RecordInput,
} from './record-batch.js';
import { mulberry32 } from './testing/random.js';

/** Independent bitwise CRC-32C, so the golden test does not trust the codec's own CRC. */
function crc32cReference(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

// One record key "k" value "v" at 1700000000000 ms, no headers, hand-assembled.
const GOLDEN_NO_CRC =
  '0000000000000000' + // baseOffset 0
  '0000003a' + //          batchLength 58
  'ffffffff' + //          partitionLeaderEpoch -1
  '02' + //                magic
  'CRCCRCCR' + //          crc (filled below)
  '0000' + //              attributes
  '00000000' + //          lastOffsetDelta 0
  '0000018bcfe56800' + //  baseTimestamp
  '0000018bcfe56800' + //  maxTimestamp
  'ffffffffffffffff' + //  producerId -1
  'ffff' + //              producerEpoch -1
  'ffffffff' + //          baseSequence -1
  '00000001' + //          recordCount 1
  '10' +
  '00' +
  '00' +
  '00' +
  '02' +
  '6b' +
  '02' +
  '76' +
  '00'; // length 8, attrs, tsΔ, offΔ, key, value, headers

function golden(): Buffer {
  const b = Buffer.from(GOLDEN_NO_CRC.replace('CRCCRCCR', '00000000'), 'hex');
  b.writeUInt32BE(crc32cReference(b.subarray(BatchField.Attributes)), BatchField.Crc);
  return b;
}

test('reference crc32c matches the standard check value', () => {
  assert.equal(crc32cReference(Buffer.from('123456789')), 0xe3069283);
});

test('encode matches golden bytes', () => {
  const ts = 1700000000000;
  const enc = encodeRecordBatch([{ key: Buffer.from('k'), value: Buffer.from('v'), timestamp: ts }], { timestamp: ts });
  assert.equal(enc.toString('hex'), golden().toString('hex'));
});

test('decode golden bytes', () => {
  const g = golden();
  g.writeBigInt64BE(42n, 0); // offsets are outside the CRC
  const { header, records, size } = decodeRecordBatch(g);
  assert.equal(size, g.length);
  assert.equal(header.magic, 2);
  assert.equal(header.recordCount, 1);
  assert.equal(header.producerId, -1n);
  assert.deepEqual(records, [{ offset: 42n, timestamp: 1700000000000, key: Buffer.from('k'), value: Buffer.from('v'), headers: [] }]);
});

test('truncated input fails with a typed error at every cut point', () => {
  const g = golden();
  for (let cut = 0; cut < g.length; cut++) {
    assert.throws(
      () => decodeRecordBatch(g.subarray(0, cut)),
      (err: unknown) => err instanceof RobustError && err.code === ErrorCode.Truncated,
      `cut at ${cut}`,
    );
    assert.throws(() => validateBatches(g.subarray(0, cut)), RobustError);
  }
});

test('split input: two batches fed whole, then each byte-by-byte prefix yields whole batches only', () => {
  const a = encodeRecordBatch([{ value: Buffer.from('a') }], { baseOffset: 0n });
  const b = encodeRecordBatch([{ value: Buffer.from('b') }, { value: null }], { baseOffset: 1n });
  const both = Buffer.concat([a, b]);
  assert.equal(validateBatches(both).length, 2);
  for (let cut = 0; cut <= both.length; cut++) {
    const got = [...iterateRecords(both.subarray(0, cut))].map((r) => r.offset);
    const expect = cut < a.length ? [] : cut < both.length ? [0n] : [0n, 1n, 2n];
    assert.deepEqual(got, expect, `cut at ${cut}`);
  }
});

test('bad CRC and bad magic are CorruptBatch', () => {
  const g = golden();
  g[g.length - 2]! ^= 0x01;
  assert.throws(
    () => validateBatches(g),
    (e: unknown) => e instanceof RobustError && e.code === ErrorCode.CorruptBatch,
  );
  const m = golden();
  m[BatchField.Magic] = 1;
  assert.throws(
    () => decodeRecordBatch(m),
    (e: unknown) => e instanceof RobustError && e.code === ErrorCode.CorruptBatch,
  );
});

test('headers, null key/value, repeated header keys, negative timestamp deltas', () => {
  const records: RecordInput[] = [
    {
      timestamp: 2000,
      key: null,
      value: null,
      headers: [
        { key: 'a', value: null },
        { key: 'a', value: Buffer.from('x') },
      ],
    },
    { timestamp: 1000, key: Buffer.alloc(0), value: Buffer.alloc(0), headers: [{ key: 'ü', value: Buffer.from([0]) }] },
  ];
  const { header, records: out } = decodeRecordBatch(encodeRecordBatch(records, { baseOffset: 7n }));
  assert.equal(header.baseTimestamp, 1000);
  assert.equal(header.maxTimestamp, 2000);
  assert.deepEqual(
    out.map((r) => [r.offset, r.timestamp, r.key, r.value, r.headers]),
    [
      [7n, 2000, null, null, records[0]!.headers],
      [8n, 1000, Buffer.alloc(0), Buffer.alloc(0), records[1]!.headers],
    ],
  );
});

test('gzip round trip; other codecs are typed errors', () => {
  const recs = [{ value: Buffer.from('hello'.repeat(100)) }, { value: Buffer.from('world') }];
  const enc = encodeRecordBatch(recs, { compression: Compression.Gzip });
  assert.equal(enc.readInt16BE(BatchField.Attributes) & 7, Compression.Gzip);
  assert.deepEqual(
    decodeRecordBatch(enc).records.map((r) => r.value),
    recs.map((r) => r.value),
  );
  const snappy = Buffer.from(enc);
  snappy.writeInt16BE(Compression.Snappy, BatchField.Attributes);
  assert.throws(() => decodeRecordBatch(snappy, { verifyCrc: false }), RobustError);
});

test('offset deltas with gaps (compacted batches)', () => {
  const enc = encodeRecordBatch(
    [
      { value: Buffer.from('a'), offsetDelta: 0 },
      { value: Buffer.from('b'), offsetDelta: 5 },
    ],
    { baseOffset: 10n },
  );
  assert.equal(enc.readInt32BE(BatchField.LastOffsetDelta), 5);
  assert.deepEqual(
    decodeRecordBatch(enc).records.map((r) => r.offset),
    [10n, 15n],
  );
});

test('property: random records round-trip', () => {
  const rand = mulberry32(1234);
  const bytes = (max: number): Buffer | null => (rand() < 0.1 ? null : randomBytes(Math.floor(rand() * max)));
  for (let iter = 0; iter < 300; iter++) {
    const n = 1 + Math.floor(rand() * 20);
    const base = 1_600_000_000_000 + Math.floor(rand() * 1e9);
    const records: RecordInput[] = [];
    for (let i = 0; i < n; i++) {
      const headers = [];
      const hn = Math.floor(rand() * 3);
      for (let h = 0; h < hn; h++) headers.push({ key: `h${Math.floor(rand() * 1000)}`, value: bytes(20) });
      records.push({ timestamp: base + Math.floor((rand() - 0.5) * 1e6), key: bytes(40), value: bytes(300), headers });
    }
    const compression = rand() < 0.2 ? Compression.Gzip : Compression.None;
    const baseOffset = BigInt(Math.floor(rand() * 2 ** 40));
    const enc = encodeRecordBatch(records, { baseOffset, compression });
    validateBatches(enc);
    const out = decodeRecordBatch(enc).records;
    assert.equal(out.length, n);
    out.forEach((r, i) => {
      const want = records[i]!;
      assert.equal(r.offset, baseOffset + BigInt(i));
      assert.equal(r.timestamp, want.timestamp);
      assert.deepEqual(r.key, want.key ?? null);
      assert.deepEqual(r.value, want.value);
      assert.deepEqual(r.headers, want.headers);
    });
  }
});

test('fuzz: random corruption never escapes as an untyped error', () => {
  const rand = mulberry32(99);
  const base = encodeRecordBatch(
    [
      { key: Buffer.from('key'), value: Buffer.from('value'), headers: [{ key: 'h', value: Buffer.from('v') }] },
      { value: Buffer.from('second') },
    ],
    { baseOffset: 3n },
  );
  for (let iter = 0; iter < 2000; iter++) {
    const b = Buffer.from(base);
    const flips = 1 + Math.floor(rand() * 4);
    for (let f = 0; f < flips; f++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    try {
      decodeRecordBatch(b, { verifyCrc: rand() < 0.5 });
    } catch (err) {
      assert.ok(err instanceof RobustError, `untyped error: ${String(err)}`);
    }
  }
});
