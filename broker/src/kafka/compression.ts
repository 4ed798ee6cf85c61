import { gunzipSync } from 'node:zlib';
import * as snappy from 'snappyjs';
import * as lz4 from 'lz4js';
import { decompress as zstdDecompress } from 'fzstd';
import {
  BATCH_HEADER_BYTES,
  BatchField,
  Compression,
  CorruptBatchError,
  UnsupportedCompressionError,
  decodeRecordBatch,
  readBatchHeader,
  type JournalRecord,
} from '@robustmq/journal';

/** `\x82SNAPPY\0`: the xerial framing the Java client writes around snappy blocks. */
const XERIAL_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const XERIAL_HEADER_BYTES = 16;

const toBuffer = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.length);

/** Snappy as Kafka clients write it: raw blocks (librdkafka) or xerial-framed chunks (Java). */
export function snappyDecompress(payload: Buffer): Buffer {
  if (payload.length >= XERIAL_HEADER_BYTES && payload.subarray(0, 8).equals(XERIAL_MAGIC)) {
    const parts: Buffer[] = [];
    let pos = XERIAL_HEADER_BYTES;
    while (pos < payload.length) {
      if (pos + 4 > payload.length) throw new CorruptBatchError('truncated xerial snappy chunk length');
      const n = payload.readInt32BE(pos);
      pos += 4;
      if (n < 0 || pos + n > payload.length) throw new CorruptBatchError('truncated xerial snappy chunk');
      parts.push(toBuffer(snappy.uncompress(payload.subarray(pos, pos + n))));
      pos += n;
    }
    return Buffer.concat(parts);
  }
  return toBuffer(snappy.uncompress(payload));
}

/** Decompresses a batch payload with the codec of its attributes (0–4). */
export function decompressPayload(codec: number, payload: Buffer): Buffer {
  try {
    switch (codec) {
      case Compression.None:
        return payload;
      case Compression.Gzip:
        return gunzipSync(payload);
      case Compression.Snappy:
        return snappyDecompress(payload);
      case Compression.Lz4:
        return toBuffer(lz4.decompress(payload));
      case Compression.Zstd:
        return toBuffer(zstdDecompress(payload));
    }
  } catch (err) {
    if (err instanceof CorruptBatchError) throw err;
    throw new CorruptBatchError(`compressed payload (codec ${codec}) cannot be decompressed`, { cause: err });
  }
  throw new UnsupportedCompressionError(codec);
}

/**
 * Records of every whole batch in `buf`, whatever their compression. The journal's batch codec
 * does the record parsing: a compressed batch is turned into an uncompressed copy of itself
 * first (its CRC no longer matches, so it is decoded without the check; the original was
 * checked when it was appended).
 */
export function decodeAllRecords(buf: Buffer): JournalRecord[] {
  const out: JournalRecord[] = [];
  let pos = 0;
  while (pos + BATCH_HEADER_BYTES <= buf.length) {
    const h = readBatchHeader(buf, pos);
    const size = h.batchLength + 12;
    if (pos + size > buf.length) break;
    const codec = h.attributes & 0x07;
    if (codec === Compression.None || codec === Compression.Gzip) {
      out.push(...decodeRecordBatch(buf, { position: pos, verifyCrc: false }).records);
    } else {
      const plain = decompressPayload(codec, buf.subarray(pos + BATCH_HEADER_BYTES, pos + size));
      const copy = Buffer.allocUnsafe(BATCH_HEADER_BYTES + plain.length);
      buf.copy(copy, 0, pos, pos + BATCH_HEADER_BYTES);
      copy.writeInt32BE(BATCH_HEADER_BYTES - 12 + plain.length, BatchField.BatchLength);
      copy.writeInt16BE(h.attributes & ~0x07, BatchField.Attributes);
      plain.copy(copy, BATCH_HEADER_BYTES);
      out.push(...decodeRecordBatch(copy, { verifyCrc: false }).records);
    }
    pos += size;
  }
  return out;
}
