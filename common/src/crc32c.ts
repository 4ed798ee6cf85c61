import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/**
 * CRC-32C (Castagnoli), as Kafka RecordBatch v2 uses it. `initial` continues a running CRC.
 * Backed by a SIMD native implementation (~3 GB/s here).
 */
export function crc32c(data: Uint8Array, initial = 0): number {
  return nativeCrc32c(data as Buffer, initial) >>> 0;
}
