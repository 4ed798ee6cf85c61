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

  constructor(flush: (items: T[]) => Promise<(R | Error)[]>) {
    this.flush = flush;
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
          group.forEach((g, i) => {
            const r = results[i];
            if (r instanceof Error) g.reject(r);
            else g.resolve(r as R);
          });
        } catch (err) {
          for (const g of group) g.reject(err);
        }
      }
    } finally {
      this.running = null;
    }
  }
}
