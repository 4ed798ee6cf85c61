import type * as grpc from '@grpc/grpc-js';
import { meta } from '@robustmq/proto';
import type { Logger } from '@robustmq/common';
import type { MetaClient } from '../client.js';
import {
  CompactedError,
  type Compare,
  type DeleteResult,
  type KeyValue,
  type PutResult,
  type RangeResult,
  type RequestOp,
} from '../kv/kv-store.js';
import { toServiceError } from './status-codes.js';

const str = (b: Uint8Array): string => Buffer.from(b).toString('utf8');
const end = (b: Uint8Array): string | undefined => (b.length === 0 ? undefined : str(b));

export function kvToProto(kv: KeyValue): meta.KeyValue {
  return {
    key: Buffer.from(kv.key),
    value: kv.value,
    createRevision: BigInt(kv.createRevision),
    modRevision: BigInt(kv.modRevision),
    version: BigInt(kv.version),
    lease: BigInt(kv.lease),
  };
}
export function putToProto(r: PutResult): meta.PutResponse {
  return { revision: BigInt(r.revision), prevKv: r.prevKv ? kvToProto(r.prevKv) : undefined };
}
export function rangeToProto(r: RangeResult): meta.RangeResponse {
  return { kvs: r.kvs.map(kvToProto), revision: BigInt(r.revision), more: r.more, count: BigInt(r.count) };
}
export function deleteToProto(r: DeleteResult): meta.DeleteRangeResponse {
  return { deleted: BigInt(r.deleted), revision: BigInt(r.revision), prevKvs: (r.prevKvs ?? []).map(kvToProto) };
}
export function opFromProto(o: meta.RequestOp): RequestOp {
  if (o.put)
    return {
      op: 'put',
      key: str(o.put.key),
      value: Buffer.from(o.put.value),
      ...(o.put.lease !== 0n ? { lease: Number(o.put.lease) } : {}),
      prevKv: o.put.prevKv,
    };
  if (o.delete)
    return {
      op: 'delete',
      key: str(o.delete.key),
      ...(o.delete.rangeEnd.length > 0 ? { rangeEnd: str(o.delete.rangeEnd) } : {}),
      prevKv: o.delete.prevKv,
    };
  if (o.range)
    return {
      op: 'range',
      key: str(o.range.key),
      ...(o.range.rangeEnd.length > 0 ? { rangeEnd: str(o.range.rangeEnd) } : {}),
      limit: Number(o.range.limit),
    };
  throw new Error('empty request op');
}
export function compareFromProto(c: meta.Compare): Compare {
  const target = c.target as Compare['target'];
  return {
    key: str(c.key),
    target,
    result: c.result as Compare['result'],
    value: target === 'value' ? Buffer.from(c.value) : Number(c.number),
  };
}

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void;
function unary<Req, Res>(fn: (req: Req) => Promise<Res>): Unary<Req, Res> {
  return (call, cb) => {
    fn(call.request).then(
      (res) => cb(null, res),
      (err: unknown) => cb(toServiceError(err)),
    );
  };
}

/** The KV calls, shared by their unary RPCs and the Batch stream. */
function kvHandlers(client: MetaClient): {
  put: (req: meta.PutRequest) => Promise<meta.PutResponse>;
  range: (req: meta.RangeRequest) => Promise<meta.RangeResponse>;
  deleteRange: (req: meta.DeleteRangeRequest) => Promise<meta.DeleteRangeResponse>;
  txn: (req: meta.TxnRequest) => Promise<meta.TxnResponse>;
} {
  return {
    put: async (req) =>
      putToProto(
        await client.put(str(req.key), Buffer.from(req.value), {
          ...(req.lease !== 0n ? { lease: Number(req.lease) } : {}),
          prevKv: req.prevKv,
        }),
      ),
    range: async (req) =>
      rangeToProto(await client.range(str(req.key), end(req.rangeEnd), { limit: Number(req.limit), serializable: req.serializable })),
    deleteRange: async (req) => deleteToProto(await client.delete(str(req.key), end(req.rangeEnd), { prevKv: req.prevKv })),
    txn: async (req) => {
      const r = await client.txn({
        compare: req.compare.map(compareFromProto),
        success: req.success.map(opFromProto),
        failure: req.failure.map(opFromProto),
      });
      return {
        succeeded: r.succeeded,
        revision: BigInt(r.revision),
        responses: r.responses.map((x) =>
          x.op === 'put' ? { put: putToProto(x) } : x.op === 'delete' ? { delete: deleteToProto(x) } : { range: rangeToProto(x) },
        ),
      };
    },
  };
}

/** The failure of one batched call, carrying what toServiceError puts in a unary call's status. */
export function toBatchError(err: unknown): meta.BatchError {
  const s = toServiceError(err);
  const md = s.metadata;
  const hint = md?.get('robustmq-leader')[0];
  return {
    grpcCode: s.code ?? 2,
    message: s.details ?? '',
    robustmqCode: String(md?.get('robustmq-code')[0] ?? ''),
    retriable: md?.get('robustmq-retriable')[0] === 'true',
    leaderHint: hint === undefined ? 0n : BigInt(String(hint)),
  };
}

/**
 * Serves one Batch stream: every call runs as soon as it arrives (calls are independent, as
 * concurrent unary calls would be) and the answers completed in one event-loop turn go back
 * as one message. A malformed call is answered with an error; the stream stays open.
 */
function serveBatch(
  call: grpc.ServerDuplexStream<meta.BatchRequest, meta.BatchResponse>,
  kv: ReturnType<typeof kvHandlers>,
  log: Logger,
): void {
  let out: meta.BatchResult[] = [];
  let closed = false;
  let ending = false;
  let inflight = 0;
  // After the client half-closes, the calls still running are answered before the stream ends.
  const maybeEnd = (): void => {
    if (!ending || closed || inflight > 0 || out.length > 0) return;
    closed = true;
    call.end();
  };
  const answer = (r: meta.BatchResult): void => {
    inflight--;
    if (closed) return;
    out.push(r);
    if (out.length === 1)
      setImmediate(() => {
        const results = out;
        out = [];
        if (!closed) call.write({ results });
        maybeEnd();
      });
  };
  call.on('data', (req: meta.BatchRequest) => {
    for (const c of req.calls) {
      const id = c.id;
      inflight++;
      const run: Promise<Omit<meta.BatchResult, 'id'>> | undefined = c.put
        ? kv.put(c.put).then((put) => ({ put }))
        : c.range
          ? kv.range(c.range).then((range) => ({ range }))
          : c.deleteRange
            ? kv.deleteRange(c.deleteRange).then((deleteRange) => ({ deleteRange }))
            : c.txn
              ? kv.txn(c.txn).then((txn) => ({ txn }))
              : undefined;
      if (run === undefined) {
        answer({ id, error: { grpcCode: 3, message: 'batch call without a request', robustmqCode: '', retriable: false, leaderHint: 0n } });
        continue;
      }
      run.then(
        (r) => answer({ id, ...r }),
        (err: unknown) => answer({ id, error: toBatchError(err) }),
      );
    }
  });
  const gone = (): void => {
    closed = true;
  };
  call.on('end', () => {
    ending = true;
    maybeEnd();
  });
  call.on('cancelled', gone);
  call.on('close', gone);
  call.on('error', (err) => {
    gone();
    log.debug({ err }, 'meta batch stream failed');
  });
}

/** The gRPC face of a MetaClient (usually this node's MetaNode). */
export function createMetaService(client: MetaClient, info: () => { roles: string[]; ready: boolean }, log: Logger): meta.MetaServer {
  const kv = kvHandlers(client);
  return {
    status: unary(async () => {
      const s = await client.status();
      const i = info();
      return {
        nodeId: BigInt(s.nodeId),
        clusterId: s.clusterId,
        members: s.members.map((m) => ({ id: BigInt(m.id), address: m.address })),
        groups: s.groups.map((g) => ({
          group: g.group,
          leader: BigInt(g.leader),
          term: BigInt(g.term),
          commit: BigInt(g.commit),
          applied: BigInt(g.applied),
          revision: BigInt(g.revision),
          role: g.role,
          voters: g.voters.map(BigInt),
          learners: g.learners.map(BigInt),
          progress: g.progress.map((p) => ({
            id: BigInt(p.id),
            match: BigInt(p.match),
            next: BigInt(p.next),
            lag: BigInt(p.lag),
            state: p.state,
            learner: p.learner,
          })),
        })),
        roles: i.roles,
        ready: i.ready,
      };
    }),
    put: unary(kv.put),
    range: unary(kv.range),
    deleteRange: unary(kv.deleteRange),
    txn: unary(kv.txn),
    batch: (call) => serveBatch(call, kv, log),
    watch: (call) => {
      const req = call.request;
      let cancel: (() => void) | undefined;
      try {
        cancel = client.watch(
          str(req.key),
          end(req.rangeEnd),
          { startRevision: Number(req.startRevision), prevKv: req.prevKv },
          (b) => {
            call.write({
              group: b.group,
              revision: BigInt(b.revision),
              events: b.events.map((e) => ({ type: e.type, kv: kvToProto(e.kv), prevKv: e.prevKv ? kvToProto(e.prevKv) : undefined })),
              compactRevision: 0n,
            });
          },
          (err) => call.destroy(err),
        );
      } catch (err) {
        if (err instanceof CompactedError) {
          call.write({ group: 0, revision: 0n, events: [], compactRevision: BigInt(err.compactRevision) });
          call.end();
          return;
        }
        call.emit('error', toServiceError(err));
        return;
      }
      call.on('cancelled', () => cancel?.());
      call.on('close', () => cancel?.());
    },
    leaseGrant: unary(async (req: meta.LeaseGrantRequest) => {
      const r = await client.leaseGrant(Number(req.ttlMs));
      return { id: BigInt(r.id), ttlMs: BigInt(r.ttlMs) };
    }),
    leaseKeepAlive: unary(async (req: meta.LeaseIdRequest) => {
      const r = await client.leaseKeepAlive(Number(req.id));
      return { id: req.id, ttlMs: BigInt(r.ttlMs) };
    }),
    leaseRevoke: unary(async (req: meta.LeaseIdRequest) => {
      await client.leaseRevoke(Number(req.id));
      return {};
    }),
    addLearner: unary(async (req: meta.MemberRequest) => {
      log.info({ nodeId: Number(req.nodeId), address: req.address }, 'meta add learner requested');
      await client.addLearner(Number(req.nodeId), req.address);
      return {};
    }),
    promote: unary(async (req: meta.MemberRequest) => {
      await client.promote(Number(req.nodeId));
      return {};
    }),
    removeMember: unary(async (req: meta.MemberRequest) => {
      await client.removeMember(Number(req.nodeId));
      return {};
    }),
    transferLeader: unary(async (req: meta.TransferLeaderRequest) => {
      await client.transferLeader(req.group, Number(req.to));
      return {};
    }),
  };
}
