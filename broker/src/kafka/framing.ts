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

  /**
   * Appends the frames completed by `chunk` to `frames` (returned) as they are cut, so the
   * frames before a bad size prefix are there when it throws.
   */
  push(chunk: Buffer, frames: Buffer[] = []): Buffer[] {
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

/**
 * What FrameReader needs of a connection: net.Socket and the native UvSocket both fit. A
 * `framed` source (a UvSocket of a framed listener) cuts the frames itself: 'frame' per frame,
 * 'frameError' with an out-of-range size.
 */
export interface FrameSource {
  readonly framed?: boolean;
  on(event: 'data' | 'frame', fn: (chunk: Buffer) => void): unknown;
  on(event: 'frameError', fn: (size: number) => void): unknown;
  on(event: 'end' | 'close', fn: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/**
 * A connection's request frames, taken one at a time by the request loop.
 *
 * How this works: 'data' chunks go through a Framer into a queue (a framed UvSocket queues its
 * 'frame' events directly, cut by the addon); `next()` hands out the oldest
 * frame, or waits for one. Reading pauses while more than `highWater` bytes of whole frames wait (the
 * request loop is behind: TCP backpressure reaches the client) and resumes once the loop has
 * taken them. A framing error (an oversized or negative size) is thrown by `next()` once the
 * frames before it are taken.
 */
export class FrameReader {
  readonly #source: FrameSource;
  readonly #highWater: number;
  readonly #frames: Buffer[] = [];
  #head = 0;
  #queuedBytes = 0;
  #paused = false;
  #done = false;
  #error: unknown;
  #wake: (() => void) | undefined;

  constructor(source: FrameSource, maxFrameBytes: number, highWater: number, onBytes?: (n: number) => void) {
    this.#source = source;
    this.#highWater = highWater;
    if (source.framed === true) {
      source.on('frame', (frame: Buffer) => {
        onBytes?.(frame.length + 4);
        this.#frames.push(frame);
        this.#queuedBytes += frame.length;
        if (this.#queuedBytes > this.#highWater) this.#pause();
        this.#notify();
      });
      source.on('frameError', (size: number) => {
        this.#error = new FrameTooLargeError(size, maxFrameBytes);
        this.#notify();
      });
    } else {
      const framer = new Framer(maxFrameBytes);
      source.on('data', (chunk: Buffer) => {
        onBytes?.(chunk.length);
        if (this.#error !== undefined) return;
        const had = this.#frames.length;
        try {
          framer.push(chunk, this.#frames);
        } catch (err) {
          this.#error = err;
          this.#pause();
        }
        for (let i = had; i < this.#frames.length; i++) this.#queuedBytes += this.#frames[i]!.length;
        if (this.#queuedBytes > this.#highWater) this.#pause(); // whole frames only: a frame being read must complete
        this.#notify();
      });
    }
    const finish = (): void => {
      this.#done = true;
      this.#notify();
    };
    source.on('end', finish);
    source.on('close', finish);
  }

  /** The next frame; undefined once the peer ended (or the connection closed) and all are taken. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      if (this.#head < this.#frames.length) {
        const f = this.#frames[this.#head]!;
        this.#frames[this.#head++] = EMPTY;
        if (this.#head === this.#frames.length) {
          this.#frames.length = 0;
          this.#head = 0;
        }
        this.#queuedBytes -= f.length;
        if (this.#paused && this.#error === undefined && this.#queuedBytes <= this.#highWater / 2) {
          this.#paused = false;
          this.#source.resume();
        }
        return f;
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#done) return undefined;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#source.pause();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }
}

const EMPTY = Buffer.alloc(0);
