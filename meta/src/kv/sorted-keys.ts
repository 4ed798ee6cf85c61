/**
 * An ordered set of string keys (bytes as latin1, so string order is byte order) in chunks of
 * at most CHUNK keys: insert and delete cost O(log n + CHUNK), iteration from a key is ordered.
 * A flat sorted array would cost O(n) per insert, too slow for a million session keys.
 */
const CHUNK = 512;

export class SortedKeys {
  #chunks: string[][] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Index of the chunk that holds or would hold `key`. */
  #chunkFor(key: string): number {
    const chunks = this.#chunks;
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((chunks[mid] as string[])[0]! <= key) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  add(key: string): boolean {
    if (this.#chunks.length === 0) {
      this.#chunks.push([key]);
      this.#size = 1;
      return true;
    }
    const ci = this.#chunkFor(key);
    const chunk = this.#chunks[ci] as string[];
    const i = lowerBound(chunk, key);
    if (chunk[i] === key) return false;
    chunk.splice(i, 0, key);
    this.#size++;
    if (chunk.length > CHUNK) this.#chunks.splice(ci + 1, 0, chunk.splice(CHUNK >> 1));
    return true;
  }

  delete(key: string): boolean {
    if (this.#chunks.length === 0) return false;
    const ci = this.#chunkFor(key);
    const chunk = this.#chunks[ci] as string[];
    const i = lowerBound(chunk, key);
    if (chunk[i] !== key) return false;
    chunk.splice(i, 1);
    this.#size--;
    if (chunk.length === 0) this.#chunks.splice(ci, 1);
    return true;
  }

  /** Keys k with from <= k < to (to undefined = no upper bound), in order. */
  *range(from: string, to: string | undefined): Generator<string> {
    if (this.#chunks.length === 0) return;
    let ci = this.#chunkFor(from);
    let i = lowerBound(this.#chunks[ci] as string[], from);
    for (; ci < this.#chunks.length; ci++, i = 0) {
      const chunk = this.#chunks[ci] as string[];
      for (; i < chunk.length; i++) {
        const k = chunk[i] as string;
        if (to !== undefined && k >= to) return;
        yield k;
      }
    }
  }

  clear(): void {
    this.#chunks = [];
    this.#size = 0;
  }
}

function lowerBound(a: readonly string[], key: string): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((a[mid] as string) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The end of the range of every key with this prefix (etcd's `--prefix`), or undefined for "". */
export function prefixEnd(prefix: string): string | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const c = prefix.charCodeAt(i);
    if (c < 0xff) return prefix.slice(0, i) + String.fromCharCode(c + 1);
  }
  return undefined;
}
