import type { Logger } from '@robustmq/common';

export type ReconcileResult = { requeueAfterMs?: number } | undefined;

/**
 * How this works: keys (namespace/name) wait in `#ready` at most once. A key being reconciled is
 * in `#active`; adding it again marks it dirty and it re-enters the queue when its run ends, so
 * one cluster is never reconciled twice at once while different clusters run in parallel up to
 * `concurrency`. A failed run backs the key off exponentially (per key, reset on success); a run
 * may ask to be repeated after a delay (`requeueAfterMs`). Delayed adds keep only the earliest.
 */
export class WorkQueue {
  readonly #ready: string[] = [];
  readonly #active = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #failures = new Map<string, number>();
  readonly #handler: (key: string) => Promise<ReconcileResult>;
  readonly #concurrency: number;
  readonly #log: Logger;
  readonly #onDepth: (n: number) => void;
  readonly #backoff: { baseMs: number; maxMs: number };
  #stopped = false;
  #idleWaiters: (() => void)[] = [];

  constructor(o: {
    handler: (key: string) => Promise<ReconcileResult>;
    concurrency: number;
    log: Logger;
    onDepth?: (n: number) => void;
    backoff?: { baseMs: number; maxMs: number };
  }) {
    this.#handler = o.handler;
    this.#concurrency = o.concurrency;
    this.#log = o.log;
    this.#onDepth = o.onDepth ?? (() => undefined);
    this.#backoff = o.backoff ?? { baseMs: 1000, maxMs: 300_000 };
  }

  get depth(): number {
    return this.#ready.length;
  }

  add(key: string, delayMs = 0): void {
    if (this.#stopped) return;
    if (delayMs > 0) {
      const at = Date.now() + delayMs;
      const t = this.#timers.get(key);
      if (t !== undefined && t.at <= at) return;
      if (t !== undefined) clearTimeout(t.timer);
      const timer = setTimeout(() => {
        this.#timers.delete(key);
        this.add(key);
      }, delayMs);
      timer.unref();
      this.#timers.set(key, { at, timer });
      return;
    }
    if (this.#active.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (!this.#ready.includes(key)) this.#ready.push(key);
    this.#onDepth(this.#ready.length);
    this.#pump();
  }

  #pump(): void {
    while (!this.#stopped && this.#active.size < this.#concurrency) {
      const i = this.#ready.findIndex((k) => !this.#active.has(k));
      if (i < 0) break;
      const [key] = this.#ready.splice(i, 1) as [string];
      this.#onDepth(this.#ready.length);
      this.#active.add(key);
      void this.#run(key);
    }
    if (this.#active.size === 0 && this.#ready.length === 0) for (const w of this.#idleWaiters.splice(0)) w();
  }

  async #run(key: string): Promise<void> {
    let delay = 0;
    try {
      const r = await this.#handler(key);
      this.#failures.delete(key);
      if (r && r.requeueAfterMs !== undefined) delay = r.requeueAfterMs;
    } catch (err) {
      const n = (this.#failures.get(key) ?? 0) + 1;
      this.#failures.set(key, n);
      delay = Math.min(this.#backoff.maxMs, this.#backoff.baseMs * 2 ** (n - 1));
      this.#log.warn({ err, key, retryInMs: delay }, 'reconcile failed');
    } finally {
      this.#active.delete(key);
    }
    if (this.#dirty.delete(key)) this.add(key);
    else if (delay > 0) this.add(key, delay);
    this.#pump();
  }

  /** Resolves when nothing is queued or running (delayed keys do not count). Tests use it. */
  idle(): Promise<void> {
    if (this.#active.size === 0 && this.#ready.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers.values()) clearTimeout(t.timer);
    this.#timers.clear();
    this.#ready.length = 0;
  }
}
