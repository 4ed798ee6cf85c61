/**
 * The responses of one connection's pipelined requests, written in request order.
 *
 * How this works: a request that may overlap the ones before it (Produce) is started, and the
 * promise of its response frame is `push`ed here; each is written once it and every earlier one
 * are ready, so responses leave in request order (Kafka's guarantee) whatever order the work
 * finishes in. Responses that become ready together (one group commit acknowledges many appends)
 * are written under one `cork`, uncorked on the next tick: one writev instead of one write each.
 * The connection's reader calls `room()` before starting another request (at most `limit` in
 * flight holding at most `maxBytes` of requests, so a connection's memory stays bounded;
 * meanwhile nothing is read and TCP backpressure reaches the client) and `idle()` before
 * a request that must see every earlier one finished. A write that fails, or a request whose
 * work throws, closes the connection: `room()`/`idle()` then reject.
 */
export class ResponsePipeline {
  readonly limit: number;
  readonly maxBytes: number;
  readonly #write: (chunks: Buffer[]) => Promise<void>;
  readonly #cork: () => void;
  readonly #uncork: () => void;
  readonly #onError: (err: unknown) => void;
  /** Settles (never rejects) when the response pushed last has been written or has failed. */
  #tail: Promise<void> = Promise.resolve();
  /** Written-promises of the requests in flight, oldest first. */
  readonly #inflight: Promise<void>[] = [];
  /** Request bytes held by the requests in flight. */
  #bytes = 0;
  #corked = false;
  #failed: unknown;

  /**
   * `write` sends one response frame (waiting for a full socket buffer to drain); `cork` and
   * `uncork` hold and release the socket's writes; `onError` is told the first failure (it
   * closes the connection).
   */
  constructor(
    limit: number,
    maxBytes: number,
    io: {
      write: (chunks: Buffer[]) => Promise<void>;
      cork: () => void;
      uncork: () => void;
      onError: (err: unknown) => void;
    },
  ) {
    this.limit = Math.max(1, limit);
    this.maxBytes = maxBytes;
    this.#write = io.write;
    this.#cork = io.cork;
    this.#uncork = io.uncork;
    this.#onError = io.onError;
  }

  /** Requests started and not yet answered. */
  get size(): number {
    return this.#inflight.length;
  }

  /** Queues the response of a started request of `bytes` (undefined = no response, e.g. acks=0). */
  push(response: Promise<Buffer[] | undefined>, bytes: number): void {
    this.#bytes += bytes;
    const written = Promise.all([this.#tail, response]).then(async ([, chunks]) => {
      if (this.#failed !== undefined) throw this.#failed;
      if (chunks === undefined) return;
      if (!this.#corked) {
        this.#corked = true;
        this.#cork();
        process.nextTick(() => {
          this.#corked = false;
          this.#uncork();
        });
      }
      await this.#write(chunks);
    });
    const settled = written.then(
      () => {
        this.#inflight.shift();
        this.#bytes -= bytes;
      },
      (err: unknown) => {
        this.#inflight.shift();
        this.#bytes -= bytes;
        if (this.#failed !== undefined) return;
        this.#failed = err;
        this.#onError(err);
      },
    );
    this.#tail = settled;
    this.#inflight.push(settled);
  }

  /**
   * Resolves once fewer than `limit` requests are in flight and a request of `bytes` fits in
   * `maxBytes` beside them (always when none is); rejects once the pipeline failed.
   */
  async room(bytes: number): Promise<void> {
    while (this.#inflight.length >= this.limit || (this.#inflight.length > 0 && this.#bytes + bytes > this.maxBytes))
      await this.#inflight[0];
    if (this.#failed !== undefined) throw this.#failed;
  }

  /** Resolves once every pushed response has been written; rejects once the pipeline failed. */
  async idle(): Promise<void> {
    await this.#tail;
    if (this.#failed !== undefined) throw this.#failed;
  }
}
