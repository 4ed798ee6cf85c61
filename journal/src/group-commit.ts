/**
 * Serializes work items and hands every item that queued up meanwhile to one `flush` call.
 *
 * How this works: `push` enqueues and starts the drain loop if it is idle. The loop takes *all*
 * queued items, awaits `flush(items)` (one write + at most one fsync for the lot), settles their
 * promises, and repeats while items arrived during the flush. So one fsync covers every append
 * that was waiting for it (group commit), and flushes of one queue never overlap. `flush` returns
 * one result per item; an Error in that list rejects just that item, a throw rejects the lot.
 */
export class GroupCommitQueue<T, R> {
  private readonly flush: (items: T[]) => Promise<(R | Error)[]>;
  private queue: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private running: Promise<void> | null = null;

  /** Reject what queued up behind a flush that failed (see the constructor). */
  private readonly failQueuedOnError: boolean;

  /**
   * `failQueuedOnError`: when a flush fails (an item got an Error), the items that queued up
   * behind it fail with the same error instead of being written after it — an ordered log must
   * not store a later append when an earlier one is missing (callers retry in order).
   */
  constructor(flush: (items: T[]) => Promise<(R | Error)[]>, opts: { failQueuedOnError?: boolean } = {}) {
    this.flush = flush;
    this.failQueuedOnError = opts.failQueuedOnError ?? false;
  }

  private rejectQueued(err: unknown): void {
    const queued = this.queue;
    this.queue = [];
    for (const g of queued) g.reject(err);
  }

  push(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.running ??= this.drain();
    });
  }

  /** True while a flush runs or items wait for one. */
  get busy(): boolean {
    return this.running !== null;
  }

  /** Resolves once everything queued so far has been flushed (or failed). */
  async idle(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue;
        this.queue = [];
        try {
          const results = await this.flush(group.map((g) => g.item));
          let failure: Error | undefined;
          group.forEach((g, i) => {
            const r = results[i];
            if (r instanceof Error) {
              failure ??= r;
              g.reject(r);
            } else g.resolve(r as R);
          });
          if (failure !== undefined && this.failQueuedOnError) this.rejectQueued(failure);
        } catch (err) {
          for (const g of group) g.reject(err);
          if (this.failQueuedOnError) this.rejectQueued(err);
        }
      }
    } finally {
      this.running = null;
    }
  }
}
