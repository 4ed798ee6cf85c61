import type { Message } from '../raft/types.js';

/** A Raft message of one group. */
export interface Envelope {
  group: number;
  message: Message;
}

/**
 * Carries Raft messages between meta nodes. Messages of every group to one peer travel
 * together (MetaNode batches them per peer per event-loop turn; appends that carry entries, and
 * their acknowledgements, leave at once with whatever is queued). Delivery is best effort:
 * Raft retries; an unreachable peer is reported back through `onUnreachable`.
 */
export interface RaftTransport {
  send(to: number, envelopes: Envelope[]): void;
  /** Called for every batch received from a peer. */
  onReceive(handler: (from: number, envelopes: Envelope[]) => void): void;
  onUnreachable(handler: (peer: number) => void): void;
  setPeer(id: number, address: string): void;
  removePeer(id: number): void;
  close(): Promise<void>;
}

/** An in-process hub of transports, for tests and simulations of several nodes in one process. */
export class LocalNetwork {
  readonly #nodes = new Map<number, LocalTransport>();
  /** Pairs "a-b" that cannot talk (both directions). */
  readonly #cut = new Set<string>();

  transport(id: number): LocalTransport {
    const t = new LocalTransport(id, this);
    this.#nodes.set(id, t);
    return t;
  }

  isolate(id: number): void {
    for (const other of this.#nodes.keys()) if (other !== id) this.#cut.add(key(id, other));
  }

  heal(): void {
    this.#cut.clear();
  }

  /** @internal */
  deliver(from: number, to: number, envelopes: Envelope[]): boolean {
    const t = this.#nodes.get(to);
    if (t === undefined || t.closed || this.#cut.has(key(from, to))) return false;
    // Deliver asynchronously, like a network would.
    setImmediate(() => {
      if (!t.closed) t.handler?.(from, envelopes);
    });
    return true;
  }

  /** @internal */
  forget(id: number, t: LocalTransport): void {
    if (this.#nodes.get(id) === t) this.#nodes.delete(id);
  }
}

function key(a: number, b: number): string {
  return a < b ? `${a}-${b}` : `${b}-${a}`;
}

export class LocalTransport implements RaftTransport {
  readonly id: number;
  readonly #net: LocalNetwork;
  handler: ((from: number, envelopes: Envelope[]) => void) | undefined;
  #unreachable: ((peer: number) => void) | undefined;
  closed = false;

  constructor(id: number, net: LocalNetwork) {
    this.id = id;
    this.#net = net;
  }

  send(to: number, envelopes: Envelope[]): void {
    if (this.closed) return;
    if (!this.#net.deliver(this.id, to, envelopes)) this.#unreachable?.(to);
  }
  onReceive(handler: (from: number, envelopes: Envelope[]) => void): void {
    this.handler = handler;
  }
  onUnreachable(handler: (peer: number) => void): void {
    this.#unreachable = handler;
  }
  setPeer(): void {}
  removePeer(): void {}
  async close(): Promise<void> {
    this.closed = true;
    this.#net.forget(this.id, this);
  }
}
