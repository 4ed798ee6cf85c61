import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { crc32c as reference } from '@node-rs/crc32';
import { crc32c, crc32cImplementation, loadCrc32cAddon } from './crc32c.js';

/** The process's choice and, where the addon loads, each of its implementations. */
const addon = loadCrc32cAddon();
const implementations: [string, (d: Uint8Array, initial?: number) => number][] = [[`default (${crc32cImplementation})`, crc32c]];
if (addon !== undefined) {
  implementations.push([`addon best (${addon.implementation})`, (d, i = 0) => addon.crc32c(d, i)]);
  implementations.push(['addon sse4.2', (d, i = 0) => addon.crc32cSse42(d, i)]);
}

for (const [name, crc32c] of implementations) {
  test(`${name}: the standard check value and a few golden CRC-32C values`, () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(0)), 0);
    assert.equal(crc32c(Buffer.alloc(32, 0)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43); // RFC 3720 B.4: 32 bytes of 0xff
  });

  test(`${name}: property — equal to the reference for every length, alignment and running CRC`, () => {
    // Lengths cover the single chain, the 3×256 and 3×4096 interleaved blocks, the 512-byte
    // threshold of the folding code, its 256/64/16-byte steps, and their edges.
    const lengths = [...Array.from({ length: 100 }, (_, i) => i), 255, 256, 257, 511, 512, 513, 575, 576, 591, 592, 767, 768, 769];
    lengths.push(1023, 1024, 1025, 12287, 12288, 12289, 50_000, 270_000);
    for (let i = 0; i < 400; i++) lengths.push(Math.floor(Math.random() * 40_000));
    for (const len of lengths) {
      const off = len % 8;
      const data = randomBytes(len + 8).subarray(off, off + len);
      const initial = len % 3 === 0 ? 0 : (Math.random() * 2 ** 32) >>> 0;
      assert.equal(crc32c(data, initial), reference(data, initial) >>> 0, `length ${len}, offset ${off}`);
    }
  });

  test(`${name}: a CRC continued over two halves equals the CRC of the whole`, () => {
    const data = randomBytes(100_000);
    assert.equal(crc32c(data.subarray(60_001), crc32c(data.subarray(0, 60_001))), crc32c(data));
  });
}
