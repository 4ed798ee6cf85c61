import { ConfChangeType, type ConfChange } from '../conf-change.js';
import type { RaftLog } from '../raft-log.js';
import { RawNode } from '../raw-node.js';
import { SeededRandom } from '../random.js';
import { MemoryStorage } from '../storage.js';
import { EntryType, MessageType, Role, type ConfState, type Message, type Ready } from '../types.js';
import { EventQueue } from './event-queue.js';
import { InvariantChecker, SafetyViolation } from './invariants.js';
import { KvStateMachine, encodeCommand } from './kv.js';
import { checkLinearizable, type Operation } from './linearizability.js';

export interface SimulationOptions {
  readonly seed: number;
  /** Founding voters (3 or 5); default drawn from the seed. */
  readonly nodes?: number;
  /** Length of the faulty phase in simulated ms; default drawn from the seed (600–1800). */
  readonly chaosMs?: number;
  /** After healing, the time allowed to converge before it is a liveness failure. */
  readonly recoveryMs?: number;
  /** Concurrent clients (each has one operation outstanding at a time). */
  readonly clients?: number;
  /** Add learners, promote them and remove members during the faulty phase. Default true. */
  readonly membership?: boolean;
  /** Keep a trace of the last events, printed with a failure. */
  readonly trace?: boolean;
}

export interface SimulationResult {
  readonly seed: number;
  readonly voters: number;
  readonly simulatedMs: number;
  readonly events: number;
  readonly messages: { readonly sent: number; readonly dropped: number; readonly duplicated: number };
  readonly leaderTerms: number;
  readonly committed: number;
  readonly crashes: number;
  readonly confChanges: number;
  readonly snapshotsInstalled: number;
  readonly operations: { readonly ok: number; readonly unknown: number; readonly refused: number; readonly reads: number };
  readonly invariantChecks: number;
  readonly history: readonly Operation[];
}

/** A run failed; `seed` reproduces it exactly. */
export class SimulationFailure extends Error {
  override readonly name = 'SimulationFailure';
  readonly seed: number;
  constructor(seed: number, message: string, trace: readonly string[], options: ErrorOptions = {}) {
    super(
      `seed ${seed}: ${message}\n  reproduce: RAFT_SIM_SEED=${seed} RAFT_SIM_TRACE=1 npm test (in meta/)` +
        (trace.length > 0 ? `\n  last events:\n    ${trace.join('\n    ')}` : ''),
      options,
    );
    this.seed = seed;
  }
}

type SimEvent =
  | { kind: 'tick'; node: number; incarnation: number }
  | { kind: 'deliver'; msg: Message }
  | { kind: 'client'; client: number }
  | { kind: 'timeout'; op: number }
  | { kind: 'fault' }
  | { kind: 'restart'; node: number }
  | { kind: 'check' };

interface PendingOp {
  readonly id: number;
  readonly client: number;
  readonly kind: 'put' | 'get';
  readonly key: string;
  readonly value: string | undefined;
  readonly call: number;
  readonly node: number;
  readonly incarnation: number;
  readIndex: number | undefined;
}

class SimNode {
  readonly id: number;
  readonly storage: MemoryStorage;
  readonly tickMs: number;
  rn: RawNode | undefined;
  kv = new KvStateMachine();
  incarnation = 0;
  /** Crash in the middle of the next Ready: after persisting it, before sending or applying. */
  crashAfterPersist = false;
  readonly pendingWrites = new Map<string, PendingOp>();
  readonly pendingReads = new Map<string, PendingOp>();
  constructor(id: number, storage: MemoryStorage, tickMs: number) {
    this.id = id;
    this.storage = storage;
    this.tickMs = tickMs;
  }
}

const KEYS = ['x', 'y', 'z'];

/**
 * How this works: a discrete-event simulation of a Raft group. One seeded PRNG decides
 * everything — the network's drops, duplicates and delays (hence reordering), partitions
 * (symmetric splits and one-way links), crashes (optionally in the middle of handling a Ready)
 * and restarts, membership changes, leadership transfers, compaction, clock skew (each node
 * ticks at its own period), the clients' operations and the core's election jitter — so a seed
 * replays a run exactly.
 *
 * Each node is a RawNode over a MemoryStorage that plays its disk: a Ready is persisted to it
 * before its messages are sent, and a crash keeps only the storage (the core and the key-value
 * state machine are rebuilt from it on restart). The InvariantChecker runs on every Ready.
 *
 * Clients put unique values and read through ReadIndex; invocations and completions are stamped
 * with a global logical clock, timed-out puts are unknown outcomes, and the history is checked
 * for linearizability at the end. After the faulty phase the network heals and every node
 * restarts; the group must then converge (liveness) within recoveryMs.
 */
export class Simulation {
  private readonly rnd: SeededRandom;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly nodes = new Map<number, SimNode>();
  private readonly checker = new InvariantChecker();
  private readonly seed: number;
  private readonly options: SimulationOptions;
  private now = 0;
  private stamp = 0;
  private nextNodeId: number;
  private readonly voters: number;
  private readonly chaosMs: number;
  private readonly recoveryMs: number;
  private recovering = false;
  private recoveryOk = false;
  private readonly dirty = new Set<number>();
  private readonly trace: string[] = [];

  // network
  private dropRate: number;
  private dupRate: number;
  private maxDelayMs: number;
  private group = new Map<number, number>();
  private oneWay = new Set<string>();

  // raft knobs drawn per run
  private readonly maxSizePerMsg: number;
  private readonly maxInflight: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly snapshotEvery: number;
  private readonly keepTail: number;
  /** Longest pause between faults; short in "churn" runs, which also target leaders more. */
  private readonly faultEveryMs: number;
  private readonly leaderBias: number;

  // clients
  private readonly pendingByClient = new Map<number, PendingOp>();
  private readonly clientSeq = new Map<number, number>();
  private readonly history: Operation[] = [];
  private nextOpId = 1;
  private recoveredOps = 0;
  private readonly ops = { ok: 0, unknown: 0, refused: 0, reads: 0 };

  // counters
  private events = 0;
  private sent = 0;
  private dropped = 0;
  private duplicated = 0;
  private crashes = 0;
  private confChanges = 0;
  private snapshotsInstalled = 0;

  constructor(options: SimulationOptions) {
    this.options = options;
    this.seed = options.seed;
    this.rnd = new SeededRandom(options.seed * 2654435761 + 12345);
    const r = this.rnd;
    this.voters = options.nodes ?? (r.chance(0.5) ? 3 : 5);
    this.chaosMs = options.chaosMs ?? r.between(600, 1800);
    this.recoveryMs = options.recoveryMs ?? 4000;
    this.nextNodeId = this.voters + 1;
    this.dropRate = r.pick([0, 0.01, 0.05, 0.1, 0.2]);
    this.dupRate = r.pick([0, 0.01, 0.05]);
    this.maxDelayMs = r.pick([2, 5, 10, 20, 40]);
    this.maxSizePerMsg = r.pick([64, 256, 4096]);
    this.maxInflight = r.pick([1, 2, 4, 16]);
    this.preVote = r.chance(0.9);
    this.checkQuorum = r.chance(0.9);
    this.snapshotEvery = r.pick([3, 10, 30, 1000]);
    this.keepTail = r.pick([0, 2, 10]);
    const churn = r.chance(0.3);
    this.faultEveryMs = churn ? 60 : 250;
    this.leaderBias = churn ? 0.8 : 0.4;

    const cs: ConfState = { voters: Array.from({ length: this.voters }, (_, i) => i + 1), learners: [] };
    for (const id of cs.voters) this.startNode(this.addNode(id, new MemoryStorage(cs)));
    const clients = options.clients ?? r.between(2, 5);
    for (let c = 1; c <= clients; c++) this.queue.push(r.between(0, 100), { kind: 'client', client: c });
    this.queue.push(r.between(50, 200), { kind: 'fault' });
  }

  run(): SimulationResult {
    try {
      this.loop();
      this.finalChecks();
    } catch (err) {
      if (err instanceof SimulationFailure) throw err;
      const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      throw new SimulationFailure(this.seed, message, this.trace, { cause: err });
    }
    return {
      seed: this.seed,
      voters: this.voters,
      simulatedMs: this.now,
      events: this.events,
      messages: { sent: this.sent, dropped: this.dropped, duplicated: this.duplicated },
      leaderTerms: this.checker.terms(),
      committed: this.checker.highestCommitted(),
      crashes: this.crashes,
      confChanges: this.confChanges,
      snapshotsInstalled: this.snapshotsInstalled,
      operations: { ...this.ops },
      invariantChecks: this.checker.checks,
      history: this.history,
    };
  }

  private log(line: string): void {
    if (!this.options.trace) return;
    this.trace.push(`${String(this.now).padStart(5)}ms ${line}`);
    if (this.trace.length > 300) this.trace.shift();
  }

  // ---- main loop ------------------------------------------------------------------------------

  private loop(): void {
    const deadline = this.chaosMs + this.recoveryMs;
    for (;;) {
      const ev = this.queue.pop();
      if (ev === undefined) throw new Error('event queue ran dry');
      this.now = ev.at;
      if (!this.recovering && this.now >= this.chaosMs) this.startRecovery();
      if (this.now > deadline) {
        throw new SimulationFailure(
          this.seed,
          `liveness: no convergence ${this.recoveryMs}ms after healing: ${this.describe()}`,
          this.trace,
        );
      }
      this.events++;
      this.handle(ev.item);
      for (const id of this.dirty) this.drain(id);
      this.dirty.clear();
      if (this.recoveryOk) return;
    }
  }

  private handle(ev: SimEvent): void {
    switch (ev.kind) {
      case 'tick': {
        const n = this.nodes.get(ev.node)!;
        if (n.rn === undefined || n.incarnation !== ev.incarnation) return;
        n.rn.tick();
        this.dirty.add(n.id);
        this.queue.push(this.now + n.tickMs, ev);
        return;
      }
      case 'deliver':
        this.deliver(ev.msg);
        return;
      case 'client':
        this.clientStep(ev.client);
        return;
      case 'timeout':
        this.timeout(ev.op);
        return;
      case 'fault':
        if (this.recovering) return;
        this.fault();
        this.queue.push(this.now + this.rnd.between(10, this.faultEveryMs), ev);
        return;
      case 'restart': {
        const n = this.nodes.get(ev.node)!;
        if (n.rn === undefined) this.startNode(n);
        return;
      }
      case 'check':
        this.recoveryOk = this.converged();
        if (!this.recoveryOk) this.queue.push(this.now + 25, ev);
        return;
    }
  }

  // ---- nodes ---------------------------------------------------------------------------------

  private addNode(id: number, storage: MemoryStorage): SimNode {
    const n = new SimNode(id, storage, this.rnd.between(8, 12));
    this.nodes.set(id, n);
    return n;
  }

  private startNode(n: SimNode): void {
    n.incarnation++;
    n.crashAfterPersist = false;
    n.rn = new RawNode({
      id: n.id,
      storage: n.storage,
      electionTick: 10,
      heartbeatTick: 2,
      maxSizePerMsg: this.maxSizePerMsg,
      maxInflightMsgs: this.maxInflight,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
      random: new SeededRandom(this.rnd.int(2 ** 32)),
    });
    // The state machine is volatile: rebuild it from the snapshot; raft re-delivers the rest.
    const snap = n.storage.snapshot();
    n.kv = new KvStateMachine();
    n.kv.restore(snap.data, snap.metadata.index);
    this.checker.onApplied(n.id, n.kv.applied, n.kv.rolling);
    this.queue.push(this.now + this.rnd.between(1, n.tickMs), { kind: 'tick', node: n.id, incarnation: n.incarnation });
    this.dirty.add(n.id);
    this.log(`start ${n.id} (incarnation ${n.incarnation})`);
  }

  private crash(n: SimNode): void {
    if (n.rn === undefined) return;
    n.rn = undefined;
    n.incarnation++;
    this.crashes++;
    // In-flight client operations on this node are now unknown; they time out.
    n.pendingWrites.clear();
    n.pendingReads.clear();
    this.log(`crash ${n.id}`);
  }

  private drain(id: number): void {
    const n = this.nodes.get(id)!;
    for (let i = 0; i < 1000 && n.rn !== undefined && n.rn.hasReady(); i++) this.handleReady(n, n.rn.ready());
  }

  private handleReady(n: SimNode, rd: Ready): void {
    const rn = n.rn!;
    const prevCommit = n.storage.initialState().hardState.commit;
    // 1. persist
    if (rd.snapshot !== undefined) n.storage.applySnapshot(rd.snapshot);
    n.storage.append(rd.entries);
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
    this.checker.onPersisted(n.id, rd.entries, n.storage);
    if (rd.hardState !== undefined && rd.hardState.commit !== prevCommit) {
      this.checker.onCommit(n.id, rd.hardState.term, prevCommit, rd.hardState.commit, n.storage, this.leaders());
    }
    if (rd.softState?.role === Role.Leader) {
      this.checker.onLeader(n.id, rn.raft.term, rn.raft.raftLog);
      this.log(`${n.id} leads term ${rn.raft.term}`);
    }
    if (n.crashAfterPersist) {
      this.crash(n);
      this.queue.push(this.now + this.rnd.between(10, 300), { kind: 'restart', node: n.id });
      return;
    }
    // 2. send
    for (const m of rd.messages) this.send(m);
    // 3. apply
    if (rd.snapshot !== undefined) {
      n.kv.restore(rd.snapshot.data, rd.snapshot.metadata.index);
      this.checker.onApplied(n.id, n.kv.applied, n.kv.rolling);
      this.snapshotsInstalled++;
      this.log(`${n.id} installed snapshot at ${rd.snapshot.metadata.index}`);
    }
    for (const e of rd.committedEntries) {
      if (e.index !== n.kv.applied + 1) throw new SafetyViolation(`node ${n.id} applies ${e.index} after ${n.kv.applied}`);
      const cmd = n.kv.apply(e);
      this.checker.onApplied(n.id, e.index, n.kv.rolling);
      if (e.type === EntryType.ConfChange) this.confChanges++;
      if (cmd !== undefined) {
        const op = n.pendingWrites.get(`${cmd.client}:${cmd.seq}`);
        if (op !== undefined) this.complete(op, cmd.value);
      }
    }
    for (const rs of rd.readStates) {
      const op = n.pendingReads.get(rs.context);
      if (op !== undefined) op.readIndex = rs.index;
    }
    rn.advance();
    // 4. serve reads whose read index is applied
    for (const op of n.pendingReads.values()) {
      if (op.readIndex !== undefined && op.readIndex <= n.kv.applied) this.complete(op, n.kv.get(op.key));
    }
    // 5. compact now and then
    const applied = n.kv.applied;
    if (applied - n.storage.snapshot().metadata.index >= this.snapshotEvery) {
      n.storage.createSnapshot(applied, rn.confState(), n.kv.serialize());
      const upTo = applied - this.keepTail;
      if (upTo >= n.storage.firstIndex()) n.storage.compact(upTo);
    }
  }

  private leaders(): { id: number; term: number; log: RaftLog }[] {
    const out: { id: number; term: number; log: RaftLog }[] = [];
    for (const n of this.nodes.values()) {
      if (n.rn !== undefined && n.rn.raft.role === Role.Leader) out.push({ id: n.id, term: n.rn.raft.term, log: n.rn.raft.raftLog });
    }
    return out;
  }

  // ---- network -------------------------------------------------------------------------------

  private connected(from: number, to: number): boolean {
    return (this.group.get(from) ?? 0) === (this.group.get(to) ?? 0) && !this.oneWay.has(`${from}>${to}`);
  }

  private send(m: Message): void {
    this.sent++;
    if (this.rnd.chance(this.dropRate)) {
      this.dropped++;
      this.reportSnapshot(m, false);
      return;
    }
    const copies = this.rnd.chance(this.dupRate) ? 2 : 1;
    if (copies === 2) this.duplicated++;
    for (let i = 0; i < copies; i++) {
      // Mostly short delays; now and then a long one, which reorders heavily.
      const delay = this.rnd.chance(0.03) ? this.rnd.between(this.maxDelayMs, 10 * this.maxDelayMs) : this.rnd.between(1, this.maxDelayMs);
      this.queue.push(this.now + delay, { kind: 'deliver', msg: m });
    }
  }

  private deliver(m: Message): void {
    const to = this.nodes.get(m.to);
    if (to === undefined || to.rn === undefined || !this.connected(m.from, m.to)) {
      this.dropped++;
      this.reportSnapshot(m, false);
      return;
    }
    to.rn.step(m);
    this.dirty.add(to.id);
    this.reportSnapshot(m, true);
  }

  /** The transport tells the sender how a snapshot send ended, as a real one would. */
  private reportSnapshot(m: Message, ok: boolean): void {
    if (m.type !== MessageType.Snap) return;
    const from = this.nodes.get(m.from);
    if (from?.rn === undefined) return;
    from.rn.reportSnapshot(m.to, ok);
    this.dirty.add(from.id);
  }

  // ---- clients -------------------------------------------------------------------------------

  private clientStep(client: number): void {
    if (this.pendingByClient.has(client)) return;
    // Once clients made progress after healing, they stop, so the group can quiesce.
    if (this.recovering && this.recoveredOps >= 3) return;
    const up = [...this.nodes.values()].filter((n) => n.rn !== undefined);
    if (up.length === 0) {
      this.queue.push(this.now + 10, { kind: 'client', client });
      return;
    }
    // Mostly talk to whoever looks like the leader, sometimes to anyone (exercising forwarding).
    const leaders = up.filter((n) => n.rn!.isLeader());
    const n = leaders.length > 0 && this.rnd.chance(0.7) ? this.rnd.pick(leaders) : this.rnd.pick(up);
    const rn = n.rn!;
    const key = this.rnd.pick(KEYS);
    const id = this.nextOpId++;
    if (this.rnd.chance(0.5)) {
      const seq = (this.clientSeq.get(client) ?? 0) + 1;
      this.clientSeq.set(client, seq);
      const value = `c${client}.${seq}`;
      const op: PendingOp = {
        id,
        client,
        kind: 'put',
        key,
        value,
        call: ++this.stamp,
        node: n.id,
        incarnation: n.incarnation,
        readIndex: undefined,
      };
      try {
        rn.propose(encodeCommand({ client, seq, key, value }));
      } catch {
        // Refused outright: it never entered any log, so it is not part of the history.
        this.ops.refused++;
        this.queue.push(this.now + this.rnd.between(5, 30), { kind: 'client', client });
        return;
      }
      n.pendingWrites.set(`${client}:${seq}`, op);
      this.pendingByClient.set(client, op);
    } else {
      const op: PendingOp = {
        id,
        client,
        kind: 'get',
        key,
        value: undefined,
        call: ++this.stamp,
        node: n.id,
        incarnation: n.incarnation,
        readIndex: undefined,
      };
      rn.readIndex(`read-${id}`);
      n.pendingReads.set(`read-${id}`, op);
      this.pendingByClient.set(client, op);
    }
    this.dirty.add(n.id);
    this.queue.push(this.now + 300, { kind: 'timeout', op: id });
  }

  private complete(op: PendingOp, value: string | undefined): void {
    const n = this.nodes.get(op.node)!;
    if (op.kind === 'put') n.pendingWrites.delete(`${op.client}:${decodeSeq(op.value!)}`);
    else n.pendingReads.delete(`read-${op.id}`);
    if (this.pendingByClient.get(op.client) !== op) return;
    this.pendingByClient.delete(op.client);
    const ret = ++this.stamp;
    if (op.kind === 'put') {
      if (value !== op.value) throw new SafetyViolation(`put ${op.id} applied with value ${value}`);
      this.history.push({ id: op.id, client: op.client, kind: 'put', key: op.key, value: op.value, call: op.call, ret });
    } else {
      this.ops.reads++;
      this.history.push({ id: op.id, client: op.client, kind: 'get', key: op.key, value, call: op.call, ret });
    }
    this.ops.ok++;
    if (this.recovering) this.recoveredOps++;
    this.queue.push(this.now + this.rnd.between(0, 20), { kind: 'client', client: op.client });
  }

  private timeout(opId: number): void {
    for (const [client, op] of this.pendingByClient) {
      if (op.id !== opId) continue;
      this.pendingByClient.delete(client);
      const n = this.nodes.get(op.node)!;
      if (op.kind === 'put') {
        n.pendingWrites.delete(`${op.client}:${decodeSeq(op.value!)}`);
        // Unknown outcome: it may still be committed later, or never.
        this.history.push({ id: op.id, client, kind: 'put', key: op.key, value: op.value, call: op.call, ret: Infinity });
        this.ops.unknown++;
      } else n.pendingReads.delete(`read-${op.id}`); // an unanswered read constrains nothing
      this.queue.push(this.now + this.rnd.between(0, 20), { kind: 'client', client });
      return;
    }
  }

  // ---- faults --------------------------------------------------------------------------------

  private fault(): void {
    const r = this.rnd;
    const all = [...this.nodes.keys()];
    const p = r.next();
    if (p < 0.15) {
      // split into two sides
      this.group = new Map(all.map((id) => [id, r.int(2)]));
      this.log(`partition ${JSON.stringify([...this.group])}`);
    } else if (p < 0.25) {
      const leader = this.currentLeader();
      const victim = leader !== undefined && r.chance(this.leaderBias) ? leader.id : r.pick(all);
      this.group = new Map([[victim, 1]]);
      this.log(`isolate ${victim}`);
    } else if (p < 0.32) {
      const a = r.pick(all);
      const b = r.pick(all);
      if (a !== b) this.oneWay.add(`${a}>${b}`);
      this.log(`cut one way ${a}>${b}`);
    } else if (p < 0.5) {
      this.group = new Map();
      this.oneWay.clear();
      this.log('heal');
    } else if (p < 0.65) {
      const up = [...this.nodes.values()].filter((n) => n.rn !== undefined);
      if (up.length === 0) return;
      const leader = this.currentLeader();
      const n = leader !== undefined && r.chance(this.leaderBias) ? leader : r.pick(up);
      if (r.chance(0.3)) {
        n.crashAfterPersist = true;
        this.log(`crash ${n.id} during its next ready`);
        return;
      }
      this.crash(n);
      this.queue.push(this.now + r.between(10, 400), { kind: 'restart', node: n.id });
    } else if (p < 0.8) {
      if (this.options.membership !== false) this.changeMembership();
    } else if (p < 0.88) {
      const leader = this.currentLeader();
      if (leader === undefined) return;
      const to = r.pick(leader.rn!.status().voters);
      leader.rn!.transferLeader(to);
      this.dirty.add(leader.id);
      this.log(`transfer leadership ${leader.id} -> ${to}`);
    } else {
      // quiet period
    }
  }

  private currentLeader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (n.rn === undefined || !n.rn.isLeader()) continue;
      if (best === undefined || n.rn.raft.term > best.rn!.raft.term) best = n;
    }
    return best;
  }

  private changeMembership(): void {
    const leader = this.currentLeader();
    if (leader === undefined) return;
    const rn = leader.rn!;
    const st = rn.status();
    let cc: ConfChange;
    const caughtUp = st.learners.filter((id) => (st.progress.get(id)?.match ?? 0) >= st.commit - 3);
    if (st.voters.length < 3 || (st.voters.length < 5 && this.rnd.chance(0.5))) {
      if (caughtUp.length > 0) cc = { type: ConfChangeType.PromoteLearner, nodeId: this.rnd.pick(caughtUp) };
      else if (st.learners.length > 0)
        return; // wait for the learner to catch up
      else {
        const id = this.nextNodeId++;
        this.startNode(this.addNode(id, new MemoryStorage()));
        cc = { type: ConfChangeType.AddLearner, nodeId: id };
      }
    } else {
      const members = [...st.voters, ...st.learners];
      cc = { type: ConfChangeType.RemoveNode, nodeId: this.rnd.pick(members) };
    }
    try {
      rn.proposeConfChange(cc);
      this.log(`propose ${cc.type} ${cc.nodeId} on ${leader.id}`);
    } catch (err) {
      this.log(`${cc.type} ${cc.nodeId} refused: ${(err as Error).message}`);
    }
    this.dirty.add(leader.id);
  }

  // ---- recovery and final checks -------------------------------------------------------------

  private startRecovery(): void {
    this.recovering = true;
    this.group = new Map();
    this.oneWay.clear();
    this.dropRate = 0;
    this.dupRate = 0;
    this.maxDelayMs = Math.min(this.maxDelayMs, 10);
    for (const n of this.nodes.values()) {
      n.crashAfterPersist = false;
      if (n.rn === undefined) this.startNode(n);
    }
    this.log('recovery: healed, all nodes up');
    this.queue.push(this.now + 25, { kind: 'check' });
  }

  /** One leader; everything it has is committed in its term and applied by every member; clients make progress. */
  private converged(): boolean {
    const leader = this.currentLeader();
    if (leader === undefined) return false;
    const raft = leader.rn!.raft;
    const commit = raft.raftLog.committed;
    if (commit !== raft.raftLog.lastIndex() || raft.raftLog.term(commit) !== raft.term) return false;
    const st = leader.rn!.status();
    for (const id of [...st.voters, ...st.learners]) {
      const n = this.nodes.get(id);
      if (n === undefined || n.rn === undefined || n.kv.applied !== commit) return false;
    }
    return this.recoveredOps >= 3;
  }

  private describe(): string {
    const parts = [];
    for (const n of this.nodes.values()) {
      if (n.rn === undefined) parts.push(`${n.id}:down`);
      else {
        const s = n.rn.status();
        parts.push(
          `${n.id}:${s.role}@${s.term} lead=${s.leader} commit=${s.commit} applied=${n.kv.applied} last=${s.lastIndex} voters=${s.voters.join(',')} learners=${s.learners.join(',')}`,
        );
      }
    }
    return parts.join(' | ') + ` | client ops completed in recovery: ${this.recoveredOps}`;
  }

  private finalChecks(): void {
    for (const op of this.pendingByClient.values()) {
      if (op.kind === 'put')
        this.history.push({ id: op.id, client: op.client, kind: 'put', key: op.key, value: op.value, call: op.call, ret: Infinity });
    }
    const r = checkLinearizable(this.history);
    if (!r.ok) {
      const lines = [...r.history]
        .sort((a, b) => a.call - b.call)
        .map((o) => `${o.kind} ${o.key}=${o.value ?? '∅'} [${o.call}, ${o.ret}] client ${o.client}`);
      throw new SimulationFailure(this.seed, `not linearizable on key ${r.key}: ${r.reason}\n    ${lines.join('\n    ')}`, this.trace);
    }
  }
}

function decodeSeq(value: string): number {
  return Number(value.slice(value.indexOf('.') + 1));
}

/** Runs one seeded simulation; throws SimulationFailure (naming the seed) on any violation. */
export function runSimulation(options: SimulationOptions): SimulationResult {
  return new Simulation(options).run();
}
