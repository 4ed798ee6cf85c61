import type { DeleteResult, KeyValue, MetaClient, PutResult, RangeResult, WatchBatch, WatchEvent } from '@robustmq/meta';

/** The part of MetaClient the security layer uses. */
export type SecurityMeta = Pick<MetaClient, 'get' | 'put' | 'range' | 'delete' | 'watch'>;

/**
 * An in-process, non-replicated key-value store with watches: the security store of a broker
 * built without meta (tests, embedding). Nothing survives the process.
 */
export class MemoryMeta implements SecurityMeta {
  readonly #kvs = new Map<string, KeyValue>();
  readonly #watchers = new Set<{ key: string; end: string | undefined; fn: (b: WatchBatch) => void }>();
  #revision = 0;

  #inRange(k: string, key: string, end: string | undefined): boolean {
    if (end === undefined) return k === key;
    return k >= key && (end === '\0' || k < end);
  }

  #emit(events: WatchEvent[]): void {
    for (const w of this.#watchers) {
      const mine = events.filter((e) => this.#inRange(e.kv.key, w.key, w.end));
      if (mine.length > 0) w.fn({ group: 0, revision: this.#revision, events: mine });
    }
  }

  async get(key: string): Promise<KeyValue | undefined> {
    return this.#kvs.get(key);
  }

  async put(key: string, value: Buffer): Promise<PutResult> {
    const prev = this.#kvs.get(key);
    const rev = ++this.#revision;
    const kv: KeyValue = {
      key,
      value,
      createRevision: prev?.createRevision ?? rev,
      modRevision: rev,
      version: (prev?.version ?? 0) + 1,
      lease: 0,
    };
    this.#kvs.set(key, kv);
    queueMicrotask(() => this.#emit([{ type: 'put', kv }]));
    return { op: 'put', revision: rev };
  }

  async range(key: string, rangeEnd?: string): Promise<RangeResult> {
    const kvs = [...this.#kvs.values()].filter((kv) => this.#inRange(kv.key, key, rangeEnd)).sort((a, b) => (a.key < b.key ? -1 : 1));
    return { op: 'range', revision: this.#revision, kvs, more: false, count: kvs.length };
  }

  async delete(key: string, rangeEnd?: string): Promise<DeleteResult> {
    const gone = [...this.#kvs.values()].filter((kv) => this.#inRange(kv.key, key, rangeEnd));
    if (gone.length === 0) return { op: 'delete', revision: this.#revision, deleted: 0 };
    const rev = ++this.#revision;
    for (const kv of gone) this.#kvs.delete(kv.key);
    queueMicrotask(() => this.#emit(gone.map((kv) => ({ type: 'delete', kv: { ...kv, modRevision: rev } }))));
    return { op: 'delete', revision: rev, deleted: gone.length };
  }

  watch(key: string, rangeEnd: string | undefined, _opts: unknown, onBatch: (b: WatchBatch) => void): () => void {
    const w = { key, end: rangeEnd, fn: onBatch };
    this.#watchers.add(w);
    return () => this.#watchers.delete(w);
  }
}
