import { RawNode } from '../raw-node.js';
import { MemoryStorage } from '../storage.js';
import { SeededRandom } from '../random.js';
import type { RaftConfig } from '../raft.js';
import { MessageType, Role, type ConfState, type Entry, type Message, type ReadState, type Snapshot } from '../types.js';

/** One member of a LocalCluster: the core plus what "survives a crash" (its MemoryStorage). */
export class LocalNode {
  readonly id: number;
  readonly storage: MemoryStorage;
  rn: RawNode;
  /** Every entry applied since the node (re)started, and every snapshot installed. */
  applied: Entry[] = [];
  snapshots: Snapshot[] = [];
  readStates: ReadState[] = [];
  constructor(id: number, storage: MemoryStorage, rn: RawNode) {
    this.id = id;
    this.storage = storage;
    this.rn = rn;
  }

  /** Applied normal entries with data, decoded as text. */
  appliedText(): string[] {
    return this.applied.filter((e) => e.type === 'normal' && e.data.byteLength > 0).map((e) => new TextDecoder().decode(e.data));
  }
}

export interface LocalClusterOptions {
  /** Members that start as voters, all with the same bootstrap membership. */
  readonly voters: readonly number[];
  readonly learners?: readonly number[];
  /** Overrides for every node's RaftConfig (id and storage are set by the cluster). */
  readonly config?: Partial<Omit<RaftConfig, 'id' | 'storage'>>;
  readonly seed?: number;
}

/**
 * A synchronous, lossless-by-default in-memory cluster for unit tests (like the `network` of
 * etcd's raft tests): `flush()` processes every Ready and delivers every message until nothing
 * moves. Links can be cut, nodes isolated or crashed, and a filter can drop or record messages.
 */
export class LocalCluster {
  readonly nodes = new Map<number, LocalNode>();
  /** Every message delivered or dropped, in order. */
  readonly sent: Message[] = [];
  /** Return false to drop a message. */
  filter: ((m: Message) => boolean) | undefined = undefined;
  private readonly cut = new Set<string>();
  private readonly down = new Set<number>();
  private readonly options: LocalClusterOptions;
  private readonly random: SeededRandom;
  private queue: Message[] = [];

  constructor(options: LocalClusterOptions) {
    this.options = options;
    this.random = new SeededRandom(options.seed ?? 1);
    const cs: ConfState = { voters: [...options.voters], learners: [...(options.learners ?? [])] };
    for (const id of [...cs.voters, ...cs.learners]) this.addNode(id, MemoryStorage.bootstrap(cs));
  }

  /** Adds a node with the given storage (default: empty, for a member about to be added). */
  addNode(id: number, storage: MemoryStorage = new MemoryStorage()): LocalNode {
    const node = new LocalNode(id, storage, this.makeRawNode(id, storage));
    this.nodes.set(id, node);
    return node;
  }

  node(id: number): LocalNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** The node that is leader at the highest term, if any. */
  leader(): LocalNode | undefined {
    let best: LocalNode | undefined;
    for (const n of this.nodes.values()) {
      if (this.down.has(n.id) || n.rn.raft.role !== Role.Leader) continue;
      if (best === undefined || n.rn.raft.term > best.rn.raft.term) best = n;
    }
    return best;
  }

  isolate(id: number): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cutLink(id, other);
  }

  cutLink(a: number, b: number): void {
    this.cut.add(`${a}-${b}`);
    this.cut.add(`${b}-${a}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Loses everything not persisted: the core is rebuilt from storage on restart. */
  crash(id: number): void {
    this.down.add(id);
  }

  restart(id: number, config: Partial<Omit<RaftConfig, 'id' | 'storage'>> = {}): void {
    const n = this.node(id);
    this.down.delete(id);
    n.rn = this.makeRawNode(id, n.storage, config);
    n.applied = [];
  }

  tick(id: number, times = 1): void {
    for (let i = 0; i < times; i++) {
      if (!this.down.has(id)) this.node(id).rn.tick();
      this.flush();
    }
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const n of this.nodes.values()) if (!this.down.has(n.id)) n.rn.tick();
      this.flush();
    }
  }

  campaign(id: number): void {
    this.node(id).rn.campaign();
    this.flush();
  }

  propose(id: number, text: string): void {
    this.node(id).rn.propose(new TextEncoder().encode(text));
    this.flush();
  }

  /** Delivers a hand-made message, then flushes. */
  deliver(m: Message): void {
    this.queue.push(m);
    this.flush();
  }

  /** Processes Readies and delivers messages until quiescent. */
  flush(): void {
    for (let rounds = 0; rounds < 100_000; rounds++) {
      let moved = false;
      for (const n of this.nodes.values()) {
        if (this.down.has(n.id) || !n.rn.hasReady()) continue;
        moved = true;
        this.handleReady(n);
      }
      const batch = this.queue;
      this.queue = [];
      for (const m of batch) {
        moved = true;
        this.sent.push(m);
        if (this.cut.has(`${m.from}-${m.to}`) || this.down.has(m.to) || !this.nodes.has(m.to)) continue;
        if (this.filter !== undefined && !this.filter(m)) continue;
        this.node(m.to).rn.step(m);
        if (m.type === MessageType.Snap) this.node(m.from).rn.reportSnapshot(m.to, true);
      }
      if (!moved) return;
    }
    throw new Error('cluster did not quiesce');
  }

  private handleReady(n: LocalNode): void {
    const rd = n.rn.ready();
    if (rd.snapshot !== undefined) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) this.queue.push(m);
    if (rd.snapshot !== undefined) n.snapshots.push(rd.snapshot);
    for (const e of rd.committedEntries) n.applied.push(e);
    for (const rs of rd.readStates) n.readStates.push(rs);
    n.rn.advance();
  }

  private makeRawNode(id: number, storage: MemoryStorage, extra: Partial<Omit<RaftConfig, 'id' | 'storage'>> = {}): RawNode {
    return new RawNode({ random: new SeededRandom(this.random.int(2 ** 31) + id), ...this.options.config, ...extra, id, storage });
  }
}
