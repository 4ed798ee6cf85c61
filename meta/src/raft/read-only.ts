import { invariant } from './errors.js';
import type { Message } from './types.js';

interface ReadIndexStatus {
  readonly req: Message;
  readonly index: number;
  readonly acks: Map<number, boolean>;
}

/**
 * The leader's queue of ReadIndex requests waiting for a heartbeat round to confirm it is still
 * the leader (etcd's ReadOnlySafe). Heartbeats carry the newest request's context; an ack for a
 * context also confirms every request queued before it.
 */
export class ReadOnly {
  private pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  /** Queues a request whose read index is `index` (the leader's commit index when it arrived). */
  addRequest(index: number, req: Message): void {
    if (this.pending.has(req.context)) return;
    this.pending.set(req.context, { req, index, acks: new Map() });
    this.queue.push(req.context);
  }

  /** Records that `id` acknowledged a heartbeat carrying context; returns the acks so far. */
  recvAck(id: number, context: string): ReadonlyMap<number, boolean> | undefined {
    const rs = this.pending.get(context);
    if (rs === undefined) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /** Dequeues every request up to and including context (all are confirmed by its quorum). */
  advance(context: string): { req: Message; index: number }[] {
    const at = this.queue.indexOf(context);
    if (at < 0) return [];
    const done = this.queue.splice(0, at + 1);
    return done.map((ctx) => {
      const rs = this.pending.get(ctx);
      invariant(rs !== undefined, `read index context ${ctx} queued but not pending`);
      this.pending.delete(ctx);
      return { req: rs.req, index: rs.index };
    });
  }

  lastPendingContext(): string {
    return this.queue[this.queue.length - 1] ?? '';
  }

  pendingCount(): number {
    return this.queue.length;
  }
}
