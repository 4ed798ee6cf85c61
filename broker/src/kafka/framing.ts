import { FrameTooLargeError } from './errors.js';

/**
 * Size-prefixed frames out of a byte stream, nothing else: `int32 size` + `size` bytes.
 * `push(chunk)` returns every frame completed by the chunk (without the size prefix). A size
 * above `maxFrameBytes` or below zero throws FrameTooLargeError before any body byte is kept,
 * so an oversized request costs no memory.
 */
export class Framer {
  readonly maxFrameBytes: number;
  #parts: Buffer[] = [];
  #buffered = 0;
  /** Size of the frame being read, or -1 while its prefix is incomplete. */
  #need = -1;

  constructor(maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet returned as a frame. */
  get buffered(): number {
    return this.#buffered;
  }

  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    if (chunk.length === 0) return frames;
    this.#parts.push(chunk);
    this.#buffered += chunk.length;
    for (;;) {
      if (this.#need < 0) {
        if (this.#buffered < 4) break;
        const size = this.#peekSize();
        if (size < 0 || size > this.maxFrameBytes) throw new FrameTooLargeError(size, this.maxFrameBytes);
        this.#need = size;
        this.#consume(4);
      }
      if (this.#buffered < this.#need) break;
      frames.push(this.#consume(this.#need));
      this.#need = -1;
    }
    return frames;
  }

  #peekSize(): number {
    const first = this.#parts[0]!;
    if (first.length >= 4) return first.readInt32BE(0);
    const head = Buffer.concat(this.#parts, Math.min(this.#buffered, 4));
    this.#parts = [Buffer.concat(this.#parts)];
    return head.readInt32BE(0);
  }

  /** Removes and returns the next n buffered bytes (zero-copy when they lie in one chunk). */
  #consume(n: number): Buffer {
    this.#buffered -= n;
    const first = this.#parts[0];
    if (n === 0) return Buffer.alloc(0);
    if (first !== undefined && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.#parts.shift();
      else this.#parts[0] = first.subarray(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let pos = 0;
    while (pos < n) {
      const p = this.#parts[0]!;
      const take = Math.min(p.length, n - pos);
      p.copy(out, pos, 0, take);
      pos += take;
      if (take === p.length) this.#parts.shift();
      else this.#parts[0] = p.subarray(take);
    }
    return out;
  }
}
