import { createRequire } from 'node:module';
import { crc32c as fallbackCrc32c } from '@node-rs/crc32';

export interface NativeCrc {
  /** The fastest code this CPU has (AVX-512 VPCLMULQDQ folding for inputs ≥ 512 B, else SSE4.2). */
  crc32c(data: Uint8Array, initial: number): number;
  /** Always the three-chain SSE4.2 code. */
  crc32cSse42(data: Uint8Array, initial: number): number;
  hardware: boolean;
  implementation: 'avx512-vpclmulqdq' | 'sse4.2';
}

/**
 * Our own addon (common/native/crc32c.c, built by `make build` with node-gyp): AVX-512 VPCLMULQDQ
 * folding where the CPU has it (~40 GB/s here), else three interleaved SSE4.2 crc32 chains
 * (~16 GB/s), against ~3.5 GB/s for @node-rs/crc32, which stays as the fallback where the addon
 * was not built or the CPU has no SSE4.2. ROBUSTMQ_CRC32C=sse4.2 or =fallback picks a slower one.
 */
export function loadCrc32cAddon(): NativeCrc | undefined {
  try {
    const m = createRequire(import.meta.url)('../../native/build/Release/robustmq_crc32c.node') as NativeCrc;
    return m.hardware ? m : undefined;
  } catch {
    return undefined;
  }
}

const wanted = process.env.ROBUSTMQ_CRC32C;
const native = wanted === 'fallback' ? undefined : loadCrc32cAddon();
const nativeFn = native === undefined ? undefined : wanted === 'sse4.2' ? native.crc32cSse42 : native.crc32c;

/** Which implementation computes CRC-32C in this process, for logs and tests. */
export const crc32cImplementation: 'avx512-vpclmulqdq' | 'sse4.2' | 'fallback' =
  native === undefined ? 'fallback' : wanted === 'sse4.2' ? 'sse4.2' : native.implementation;

/** CRC-32C (Castagnoli), as Kafka RecordBatch v2 uses it. `initial` continues a running CRC. */
export const crc32c: (data: Uint8Array, initial?: number) => number =
  nativeFn !== undefined
    ? (data, initial = 0) => nativeFn(data, initial)
    : (data, initial = 0) => fallbackCrc32c(data as Buffer, initial) >>> 0;
