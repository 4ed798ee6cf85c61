import * as grpc from '@grpc/grpc-js';
import { meta } from '@robustmq/proto';
import { ErrorCode, RobustError } from '@robustmq/common';
import type { GroupStatus, MetaClient, MetaStatus, WatchBatch, WatchOptions } from '../client.js';
import {
  CompactedError,
  type Compare,
  type DeleteResult,
  type KeyValue,
  type PutResult,
  type RangeResult,
  type RequestOp,
  type TxnResult,
} from '../kv/kv-store.js';
import { fromBatchError, fromServiceError } from './status-codes.js';

const MetaGrpc = grpc.makeGenericClientConstructor(meta.MetaService, 'Meta');

function kvFromProto(kv: meta.KeyValue): KeyValue {
  return {
    key: Buffer.from(kv.key).toString('utf8'),
    value: Buffer.from(kv.value),
    createRevision: Number(kv.createRevision),
    modRevision: Number(kv.modRevision),
    version: Number(kv.version),
    lease: Number(kv.lease),
  };
}
const putFrom = (r: meta.PutResponse): PutResult => ({
  op: 'put',
  revision: Number(r.revision),
  ...(r.prevKv ? { prevKv: kvFromProto(r.prevKv) } : {}),
});
const rangeFrom = (r: meta.RangeResponse): RangeResult => ({
  op: 'range',
  revision: Number(r.revision),
  kvs: r.kvs.map(kvFromProto),
  more: r.more,
  count: Number(r.count),
});
const deleteFrom = (r: meta.DeleteRangeResponse): DeleteResult => ({
  op: 'delete',
  revision: Number(r.revision),
  deleted: Number(r.deleted),
  prevKvs: r.prevKvs.map(kvFromProto),
});
const bytes = (s: string | undefined): Buffer => Buffer.from(s ?? '');

function opToProto(o: RequestOp): meta.RequestOp {
  if (o.op === 'put') return { put: { key: bytes(o.key), value: o.value, lease: BigInt(o.lease ?? 0), prevKv: o.prevKv === true } };
  if (o.op === 'delete') return { delete: { key: bytes(o.key), rangeEnd: bytes(o.rangeEnd), prevKv: o.prevKv === true } };
  return { range: { key: bytes(o.key), rangeEnd: bytes(o.rangeEnd), limit: BigInt(o.limit ?? 0), serializable: false } };
}
function compareToProto(c: Compare): meta.Compare {
  return {
    key: bytes(c.key),
    target: c.target,
    result: c.result,
    value: Buffer.isBuffer(c.value) ? c.value : Buffer.alloc(0),
    number: typeof c.value === 'number' ? BigInt(c.value) : 0n,
  };
}

type BatchKind = 'put' | 'range' | 'deleteRange' | 'txn';
type BatchReq = Pick<meta.BatchCall, BatchKind>;

/**
 * One Batch stream to one endpoint (meta.proto `Batch`): the calls made in one event-loop turn
 * travel as one message and are answered by id. A broken stream fails the calls waiting on it
 * (as a broken connection fails unary calls) and the next call opens a new one. A server
 * without the Batch RPC answers UNIMPLEMENTED once; the client then uses unary calls.
 */
class BatchStream {
  readonly #client: meta.MetaClient;
  #stream: grpc.ClientDuplexStream<meta.BatchRequest, meta.BatchResponse> | undefined;
  readonly #pending = new Map<bigint, { resolve: (r: meta.BatchResult) => void; reject: (e: unknown) => void; deadline: number }>();
  #queue: meta.BatchCall[] = [];
  #seq = 0n;
  #timer: NodeJS.Timeout | undefined;
  unsupported = false;

  constructor(client: meta.MetaClient) {
    this.#client = client;
  }

  call(req: BatchReq, deadline: number): Promise<meta.BatchResult> {
    const id = ++this.#seq;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, deadline });
      this.#queue.push({ id, ...req });
      if (this.#queue.length === 1) setImmediate(() => this.#flush());
      // One coarse timer enforces every call's deadline.
      this.#timer ??= setInterval(() => this.#expire(), 100).unref();
    });
  }

  #flush(): void {
    const calls = this.#queue;
    this.#queue = [];
    if (calls.length > 0) this.#open().write({ calls });
  }

  #open(): grpc.ClientDuplexStream<meta.BatchRequest, meta.BatchResponse> {
    if (this.#stream !== undefined) return this.#stream;
    const s = this.#client.batch();
    s.on('data', (r: meta.BatchResponse) => {
      for (const x of r.results) {
        const p = this.#pending.get(x.id);
        if (p === undefined) continue;
        this.#pending.delete(x.id);
        p.resolve(x);
      }
      this.#idle();
    });
    const broken = (err: grpc.ServiceError | undefined): void => {
      if (this.#stream !== s) return;
      this.#stream = undefined;
      if (err?.code === grpc.status.UNIMPLEMENTED) this.unsupported = true;
      const e = err ?? new RobustError(ErrorCode.ShuttingDown, 'meta server closed the batch stream', { retriable: true });
      for (const p of this.#pending.values()) p.reject(e);
      this.#pending.clear();
      this.#idle();
    };
    s.on('error', (err: grpc.ServiceError) => broken(err));
    s.on('end', () => broken(undefined));
    s.on('close', () => broken(undefined));
    this.#stream = s;
    return s;
  }

  #expire(): void {
    const now = Date.now();
    for (const [id, p] of this.#pending) {
      if (p.deadline > now) continue;
      this.#pending.delete(id);
      p.reject(new RobustError(ErrorCode.Timeout, 'meta client: no answer before the deadline'));
    }
    this.#idle();
  }

  #idle(): void {
    if (this.#pending.size > 0 || this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  close(): void {
    this.#stream?.end();
    this.#stream = undefined;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * MetaClient over gRPC, for processes that do not run meta themselves. Given several
 * endpoints it sends to the one that last worked and moves on to the next when a node is
 * unavailable (not leader, shutting down, unreachable), retrying until `timeoutMs`.
 */
export class GrpcMetaClient implements MetaClient {
  readonly #clients: meta.MetaClient[];
  readonly #batches: BatchStream[];
  readonly #timeoutMs: number;
  #current = 0;

  constructor(endpoints: readonly string[], opts: { timeoutMs?: number } = {}) {
    if (endpoints.length === 0) throw new RobustError(ErrorCode.ConfigInvalid, 'meta client: no endpoints');
    this.#clients = endpoints.map((e) => new MetaGrpc(e, grpc.credentials.createInsecure()) as unknown as meta.MetaClient);
    this.#batches = this.#clients.map((c) => new BatchStream(c));
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  #call<Req, Res>(
    method: (
      c: meta.MetaClient,
    ) => (req: Req, md: grpc.Metadata, o: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown,
    req: Req,
  ): Promise<Res> {
    return this.#retry((client, deadline) => this.#unary(client, method, req, deadline));
  }

  #unary<Req, Res>(
    client: meta.MetaClient,
    method: (
      c: meta.MetaClient,
    ) => (req: Req, md: grpc.Metadata, o: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => unknown,
    req: Req,
    deadline: number,
  ): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      method(client).call(client, req, new grpc.Metadata(), { deadline: new Date(deadline) }, (err, res) =>
        err ? reject(err) : resolve(res),
      );
    });
  }

  /** A KV call over the endpoint's Batch stream (unary where the server has no Batch RPC). */
  #kv<K extends BatchKind>(kind: K, req: NonNullable<meta.BatchCall[K]>): Promise<NonNullable<meta.BatchResult[K]>> {
    type Res = NonNullable<meta.BatchResult[K]>;
    return this.#retry(async (client, deadline, i) => {
      const b = this.#batches[i] as BatchStream;
      if (!b.unsupported) {
        try {
          const r = await b.call({ [kind]: req } as BatchReq, deadline);
          if (r.error !== undefined) throw fromBatchError(r.error);
          return r[kind] as Res;
        } catch (err) {
          if (!b.unsupported) throw err;
        }
      }
      const unary = { put: 'put', range: 'range', deleteRange: 'deleteRange', txn: 'txn' } as const;
      return this.#unary(client, (c) => (c[unary[kind]] as (...a: unknown[]) => unknown).bind(c) as never, req, deadline) as Promise<Res>;
    });
  }

  async #retry<Res>(attemptOn: (client: meta.MetaClient, deadline: number, index: number) => Promise<Res>): Promise<Res> {
    const deadline = Date.now() + this.#timeoutMs;
    let lastErr: RobustError | undefined;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const i = this.#current;
      try {
        return await attemptOn(this.#clients[i] as meta.MetaClient, deadline, i);
      } catch (err) {
        lastErr = err instanceof RobustError ? err : fromServiceError(err as grpc.ServiceError);
        if (!lastErr.retriable) throw lastErr;
        this.#current = (this.#current + 1) % this.#clients.length;
        if (attempt % this.#clients.length === this.#clients.length - 1) await new Promise((r) => setTimeout(r, 100));
      }
    }
    throw lastErr ?? new RobustError(ErrorCode.Timeout, 'meta client: no answer in time', { retriable: true });
  }

  async put(key: string, value: Buffer, opts: { lease?: number; prevKv?: boolean } = {}): Promise<PutResult> {
    return putFrom(await this.#kv('put', { key: bytes(key), value, lease: BigInt(opts.lease ?? 0), prevKv: opts.prevKv === true }));
  }
  async get(key: string, opts: { serializable?: boolean } = {}): Promise<KeyValue | undefined> {
    return (await this.range(key, undefined, opts)).kvs[0];
  }
  async range(key: string, rangeEnd?: string, opts: { limit?: number; serializable?: boolean } = {}): Promise<RangeResult> {
    return rangeFrom(
      await this.#kv('range', {
        key: bytes(key),
        rangeEnd: bytes(rangeEnd),
        limit: BigInt(opts.limit ?? 0),
        serializable: opts.serializable === true,
      }),
    );
  }
  async delete(key: string, rangeEnd?: string, opts: { prevKv?: boolean } = {}): Promise<DeleteResult> {
    return deleteFrom(await this.#kv('deleteRange', { key: bytes(key), rangeEnd: bytes(rangeEnd), prevKv: opts.prevKv === true }));
  }
  async txn(t: { compare: Compare[]; success: RequestOp[]; failure: RequestOp[] }): Promise<TxnResult> {
    const r = await this.#kv('txn', {
      compare: t.compare.map(compareToProto),
      success: t.success.map(opToProto),
      failure: t.failure.map(opToProto),
    });
    return {
      op: 'txn',
      succeeded: r.succeeded,
      revision: Number(r.revision),
      responses: r.responses.map((x) =>
        x.put ? putFrom(x.put) : x.delete ? deleteFrom(x.delete) : rangeFrom(x.range as meta.RangeResponse),
      ),
    };
  }
  watch(
    key: string,
    rangeEnd: string | undefined,
    opts: WatchOptions,
    onBatch: (b: WatchBatch) => void,
    onError?: (e: Error) => void,
  ): () => void {
    const client = this.#clients[this.#current] as meta.MetaClient;
    const call = client.watch({
      key: bytes(key),
      rangeEnd: bytes(rangeEnd),
      startRevision: BigInt(opts.startRevision ?? 0),
      prevKv: opts.prevKv === true,
    });
    let cancelled = false;
    call.on('data', (r: meta.WatchResponse) => {
      if (r.compactRevision > 0n) {
        onError?.(new CompactedError(Number(r.compactRevision)));
        return;
      }
      onBatch({
        group: r.group,
        revision: Number(r.revision),
        events: r.events.map((e) => ({
          type: e.type as 'put' | 'delete',
          kv: kvFromProto(e.kv as meta.KeyValue),
          ...(e.prevKv ? { prevKv: kvFromProto(e.prevKv) } : {}),
        })),
      });
    });
    call.on('error', (err: grpc.ServiceError) => {
      if (!cancelled) onError?.(fromServiceError(err));
    });
    return () => {
      cancelled = true;
      call.cancel();
    };
  }
  async leaseGrant(ttlMs: number): Promise<{ id: number; ttlMs: number }> {
    const r = await this.#call((c) => c.leaseGrant, { ttlMs: BigInt(ttlMs) });
    return { id: Number(r.id), ttlMs: Number(r.ttlMs) };
  }
  async leaseKeepAlive(id: number): Promise<{ ttlMs: number }> {
    const r = await this.#call((c) => c.leaseKeepAlive, { id: BigInt(id) });
    return { ttlMs: Number(r.ttlMs) };
  }
  async leaseRevoke(id: number): Promise<void> {
    await this.#call((c) => c.leaseRevoke, { id: BigInt(id) });
  }
  async status(): Promise<MetaStatus> {
    const s = await this.#call((c) => c.status, {});
    return {
      nodeId: Number(s.nodeId),
      clusterId: s.clusterId,
      members: s.members.map((m) => ({ id: Number(m.id), address: m.address })),
      groups: s.groups.map((g): GroupStatus => ({
        group: g.group,
        leader: Number(g.leader),
        term: Number(g.term),
        commit: Number(g.commit),
        applied: Number(g.applied),
        revision: Number(g.revision),
        role: g.role,
        voters: g.voters.map(Number),
        learners: g.learners.map(Number),
        progress: g.progress.map((p) => ({
          id: Number(p.id),
          match: Number(p.match),
          next: Number(p.next),
          lag: Number(p.lag),
          state: p.state,
          learner: p.learner,
        })),
      })),
    };
  }
  async addLearner(nodeId: number, address: string): Promise<void> {
    await this.#call((c) => c.addLearner, { nodeId: BigInt(nodeId), address });
  }
  async promote(nodeId: number): Promise<void> {
    await this.#call((c) => c.promote, { nodeId: BigInt(nodeId), address: '' });
  }
  async removeMember(nodeId: number): Promise<void> {
    await this.#call((c) => c.removeMember, { nodeId: BigInt(nodeId), address: '' });
  }
  async transferLeader(group: number, to: number): Promise<void> {
    await this.#call((c) => c.transferLeader, { group, to: BigInt(to) });
  }

  close(): void {
    for (const b of this.#batches) b.close();
    for (const c of this.#clients) (c as unknown as grpc.Client).close();
  }
}
