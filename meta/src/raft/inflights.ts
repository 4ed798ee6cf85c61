import { invariant } from './errors.js';

/**
 * The sliding window of MsgApp batches sent to one follower and not yet acknowledged, by the
 * last index each carried. When full, the leader stops sending to that follower.
 */
export class Inflights {
  readonly size: number;
  private buffer: number[] = [];

  constructor(size: number) {
    this.size = size;
  }

  add(lastIndex: number): void {
    invariant(!this.full(), 'cannot add into a full inflights window');
    this.buffer.push(lastIndex);
  }

  /** Frees every batch whose last index is <= to (they are acknowledged). */
  freeLE(to: number): void {
    let n = 0;
    while (n < this.buffer.length && (this.buffer[n] as number) <= to) n++;
    if (n > 0) this.buffer.splice(0, n);
  }

  freeFirstOne(): void {
    this.buffer.shift();
  }

  full(): boolean {
    return this.buffer.length >= this.size;
  }

  count(): number {
    return this.buffer.length;
  }

  reset(): void {
    this.buffer = [];
  }
}
