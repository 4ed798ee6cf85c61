import { createRequire } from 'node:module';
import { crc32c as fallbackCrc32c } from '@node-rs/crc32';

interface NativeCrc {
  crc32c(data: Uint8Array, initial: number): number;
  hardware: boolean;
}

/**
 * Our own addon (common/native/crc32c.c, built by `make build` with node-gyp): three interleaved
 * SSE4.2 crc32 chains, ~16 GB/s here against ~3.5 GB/s for @node-rs/crc32, which stays as the
 * fallback where the addon was not built or the CPU has no SSE4.2.
 */
function loadNative(): NativeCrc | undefined {
  if (process.env.ROBUSTMQ_CRC32C === 'fallback') return undefined;
  try {
    const m = createRequire(import.meta.url)('../../native/build/Release/robustmq_crc32c.node') as NativeCrc;
    return m.hardware ? m : undefined;
  } catch {
    return undefined;
  }
}

const native = loadNative();

/** Which implementation computes CRC-32C in this process ("sse4.2" or "fallback"), for logs and tests. */
export const crc32cImplementation: 'sse4.2' | 'fallback' = native !== undefined ? 'sse4.2' : 'fallback';

/** CRC-32C (Castagnoli), as Kafka RecordBatch v2 uses it. `initial` continues a running CRC. */
export const crc32c: (data: Uint8Array, initial?: number) => number =
  native !== undefined
    ? (data, initial = 0) => native.crc32c(data, initial)
    : (data, initial = 0) => fallbackCrc32c(data as Buffer, initial) >>> 0;
