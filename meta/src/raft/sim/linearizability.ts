/**
 * A linearizability checker for histories of a key-value store whose keys are independent
 * registers (put overwrites, get reads). Linearizability is local (Herlihy & Wing), so each key
 * is checked alone, with the Wing & Gong search as improved by Lowe (memoising visited
 * (linearized set, state) pairs), the algorithm of Knossos and Porcupine.
 */

export interface Operation {
  readonly id: number;
  readonly client: number;
  readonly kind: 'put' | 'get';
  readonly key: string;
  /** put: the value written (unique per put); get: the value observed (undefined = absent). */
  readonly value: string | undefined;
  /** Invocation time. */
  readonly call: number;
  /**
   * Completion time; Infinity for a put whose outcome is unknown (it timed out or its node
   * crashed): it may have taken effect at any point after its call, or never.
   */
  readonly ret: number;
}

export type LinearizabilityResult =
  { readonly ok: true } | { readonly ok: false; readonly key: string; readonly reason: string; readonly history: readonly Operation[] };

export function checkLinearizable(ops: readonly Operation[]): LinearizabilityResult {
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) {
    let list = byKey.get(op.key);
    if (list === undefined) byKey.set(op.key, (list = []));
    list.push(op);
  }
  for (const [key, history] of [...byKey].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const reason = checkRegister(history);
    if (reason !== undefined) return { ok: false, key, reason, history };
  }
  return { ok: true };
}

interface Node {
  readonly op: Operation | undefined; // undefined for the head sentinel
  readonly index: number;
  readonly isCall: boolean;
  readonly time: number;
  match: Node | undefined; // call → its return
  prev: Node | undefined;
  next: Node | undefined;
}

/** Returns undefined when the single-register history is linearizable, else why not. */
function checkRegister(input: readonly Operation[]): string | undefined {
  for (const op of input) {
    if (op.kind === 'get' && op.ret === Infinity) return `get ${op.id} has no completion (drop unanswered reads)`;
    if (op.ret < op.call) return `operation ${op.id} completes before it is called`;
  }
  // An unknown put whose value nobody read can always be placed after everything else.
  const read = new Set(input.filter((o) => o.kind === 'get').map((o) => o.value));
  const ops = input.filter((o) => o.kind === 'get' || o.ret !== Infinity || read.has(o.value));
  const written = new Set(ops.filter((o) => o.kind === 'put').map((o) => o.value));
  for (const o of ops) {
    if (o.kind === 'get' && o.value !== undefined && !written.has(o.value)) return `get ${o.id} read ${o.value}, never written`;
  }

  // Build the event list: calls and returns by time (a return before a call at equal time,
  // which is the stricter order).
  const events: Node[] = [];
  ops.forEach((op, index) => {
    const call: Node = { op, index, isCall: true, time: op.call, match: undefined, prev: undefined, next: undefined };
    const ret: Node = { op, index, isCall: false, time: op.ret, match: undefined, prev: undefined, next: undefined };
    call.match = ret;
    events.push(call, ret);
  });
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1; // (Infinity - Infinity would be NaN)
    if (a.index === b.index) return a.isCall ? -1 : 1; // an instantaneous operation
    if (a.isCall !== b.isCall) return a.isCall ? 1 : -1;
    return a.index - b.index;
  });
  const head: Node = { op: undefined, index: -1, isCall: false, time: -Infinity, match: undefined, prev: undefined, next: undefined };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }

  const words = Math.ceil(ops.length / 32) || 1;
  const linearized = new Uint32Array(words);
  const seen = new Set<string>();
  const stack: { node: Node; state: string | undefined }[] = [];
  let state: string | undefined = undefined;
  let entry = head.next;
  let steps = 0;
  while (head.next !== undefined) {
    if (++steps > 5_000_000) return 'search budget exhausted (history too concurrent to decide)';
    if (entry === undefined) return 'internal error: ran off the event list';
    if (entry.isCall) {
      const op = entry.op as Operation;
      const ok = op.kind === 'put' || op.value === state;
      const newState: string | undefined = op.kind === 'put' ? op.value : state;
      if (ok) {
        linearized[entry.index >> 5]! ^= 1 << (entry.index & 31);
        const key = `${linearized.join(',')}|${newState ?? '\u0000'}`;
        if (!seen.has(key)) {
          seen.add(key);
          stack.push({ node: entry, state });
          state = newState;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[entry.index >> 5]! ^= 1 << (entry.index & 31);
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized yet: backtrack.
      const top = stack.pop();
      if (top === undefined) {
        const op = entry.op as Operation;
        return `no linearization: ${op.kind} ${op.id} (${op.value ?? 'absent'}) cannot be placed`;
      }
      entry = top.node;
      state = top.state;
      linearized[entry.index >> 5]! ^= 1 << (entry.index & 31);
      unlift(entry);
      entry = entry.next;
    }
  }
  return undefined;
}

function lift(call: Node): void {
  call.prev!.next = call.next;
  if (call.next !== undefined) call.next.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next !== undefined) ret.next.prev = ret.prev;
}

function unlift(call: Node): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== undefined) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next !== undefined) call.next.prev = call;
}
