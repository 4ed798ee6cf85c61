/** Reads smaller than this get a buffer of their own (pooling would not pay). */
const MIN_POOLED_BYTES = 1024 * 1024;
/** Reads larger than this get a buffer of their own. */
const MAX_POOLED_BYTES = 64 * 1024 * 1024;
/** Most bytes kept in free buffers. */
const MAX_FREE_BYTES = 128 * 1024 * 1024;

/**
 * Large read buffers used again instead of allocated per read.
 *
 * Why: every large read used to allocate a fresh ArrayBuffer. V8 counts those as external memory
 * and starts a full mark-compact whenever it grew by about 64 MiB, so a consumer fetching a few
 * hundred MB/s made the broker spend most of its CPU marking an unchanged heap (seen in
 * profiles: ConcurrentMarking 25–60 %), and each fresh buffer was page-faulted in and zeroed by
 * the kernel. A buffer comes back only through the `release` of the read that took it, which
 * its user calls once nothing refers to the bytes any more (the Kafka fetch: once the response
 * was written to the socket); a read whose user never calls it is simply collected.
 *
 * Sizes are whole MiB from 1 to 64 (a consumer asks for the same max bytes again and again, so
 * its reads meet their own buffers again); at most 128 MiB is kept free.
 */
export class ReadBufferPool {
  readonly #free = new Map<number, Buffer[]>();
  #freeBytes = 0;

  /** A buffer of at least `size` bytes (its length may be larger: use a view of it). */
  take(size: number): Buffer {
    if (size < MIN_POOLED_BYTES || size > MAX_POOLED_BYTES) return Buffer.allocUnsafe(size);
    const cls = Math.ceil(size / MIN_POOLED_BYTES) * MIN_POOLED_BYTES;
    const b = this.#free.get(cls)?.pop();
    if (b === undefined) return Buffer.allocUnsafeSlow(cls);
    this.#freeBytes -= b.length;
    return b;
  }

  /** Returns a buffer from `take` (whole, not a view); the caller must not use it afterwards. */
  give(b: Buffer): void {
    const cls = b.length;
    if (cls < MIN_POOLED_BYTES || cls > MAX_POOLED_BYTES || cls % MIN_POOLED_BYTES !== 0 || b.byteOffset !== 0) return;
    if (this.#freeBytes + cls > MAX_FREE_BYTES) return;
    let list = this.#free.get(cls);
    if (list === undefined) this.#free.set(cls, (list = []));
    list.push(b);
    this.#freeBytes += cls;
  }

  /**
   * A `release` for a read's result: gives back the whole buffer `view` lies in (if it is one of
   * this pool's sizes), once, however often it is called.
   */
  releaser(view: Buffer): () => void {
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const ab = view.buffer;
      if (ab instanceof ArrayBuffer) this.give(Buffer.from(ab, 0, ab.byteLength));
    };
  }
}
