import * as grpc from '@grpc/grpc-js';
import { journal } from '@robustmq/proto';
import { ErrorCode, RobustError, type ErrorCode as Code } from '@robustmq/common';
import type { JournalClient, ShardInfo } from '../journal.js';
import { EngineKind, JournalConfigDefaults, type ShardConfig } from '../config.js';
import { OffsetOutOfRangeError } from '../errors.js';

/** RobustMQ error codes → gRPC status for the journal service (one table, STYLE §5). */
const toGrpc: Partial<Record<Code, grpc.status>> = {
  [ErrorCode.ShardNotFound]: grpc.status.NOT_FOUND,
  [ErrorCode.ShardExists]: grpc.status.ALREADY_EXISTS,
  [ErrorCode.ShardInvalid]: grpc.status.INVALID_ARGUMENT,
  [ErrorCode.CorruptBatch]: grpc.status.INVALID_ARGUMENT,
  [ErrorCode.BatchTooLarge]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCode.OffsetOutOfRange]: grpc.status.OUT_OF_RANGE,
  [ErrorCode.StorageFull]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCode.CorruptSegment]: grpc.status.DATA_LOSS,
  [ErrorCode.StorageIo]: grpc.status.INTERNAL,
  [ErrorCode.EngineClosed]: grpc.status.UNAVAILABLE,
  [ErrorCode.ShuttingDown]: grpc.status.UNAVAILABLE,
  [ErrorCode.Aborted]: grpc.status.CANCELLED,
};

export function journalServiceError(err: unknown): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  if (err instanceof RobustError) {
    metadata.set('robustmq-code', err.code);
    if (err instanceof OffsetOutOfRangeError) {
      metadata.set('robustmq-earliest', String(err.earliestOffset));
      metadata.set('robustmq-latest', String(err.latestOffset));
    }
    return { code: toGrpc[err.code] ?? grpc.status.UNKNOWN, details: err.message, metadata };
  }
  return { code: grpc.status.INTERNAL, details: (err as Error)?.message ?? String(err), metadata };
}

/** Per-shard options arrive as strings; convert each to the type of its default. */
export function shardConfigFromOptions(options: Record<string, string>): ShardConfig {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(options)) {
    const def = (JournalConfigDefaults as Record<string, unknown>)[k];
    if (def === undefined) throw new RobustError(ErrorCode.ShardInvalid, `unknown shard option ${k}`);
    if (typeof def === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n))
        throw new RobustError(ErrorCode.ShardInvalid, `shard option ${k} must be a number, got ${JSON.stringify(v)}`);
      out[k] = n;
    } else if (typeof def === 'boolean') {
      if (v !== 'true' && v !== 'false') throw new RobustError(ErrorCode.ShardInvalid, `shard option ${k} must be true or false`);
      out[k] = v === 'true';
    } else out[k] = v;
  }
  return out as ShardConfig;
}

export function shardInfoToProto(s: ShardInfo): journal.ShardInfo {
  return {
    name: s.name,
    engine: s.engine,
    earliestOffset: s.earliestOffset,
    latestOffset: s.latestOffset,
    sizeBytes: BigInt(s.bytes),
    records: BigInt(s.records),
  };
}

type Unary<Req, Res> = (call: grpc.ServerUnaryCall<Req, Res>, cb: grpc.sendUnaryData<Res>) => void;
function unary<Req, Res>(fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>): Unary<Req, Res> {
  return (call, cb) => {
    fn(call.request, call).then(
      (res) => cb(null, res),
      (err: unknown) => cb(journalServiceError(err)),
    );
  };
}

/** The gRPC face of a JournalClient (the `journal` role of robust-server). */
export function createJournalService(client: JournalClient): journal.JournalServer {
  return {
    createShard: unary(async (req: journal.CreateShardRequest) => {
      const engine = req.config?.engine || EngineKind.Segment;
      if (!(Object.values(EngineKind) as string[]).includes(engine))
        throw new RobustError(ErrorCode.ShardInvalid, `unknown engine ${engine}`);
      const info = await client.createShard(req.name, {
        engine: engine as EngineKind,
        config: shardConfigFromOptions(req.config?.options ?? {}),
      });
      return { shard: shardInfoToProto(info) };
    }),
    deleteShard: unary(async (req: journal.DeleteShardRequest) => {
      await client.deleteShard(req.name);
      return {};
    }),
    listShards: unary(async (req: journal.ListShardsRequest) => ({
      shards: (await client.listShards(req.prefix === '' ? {} : { prefix: req.prefix })).map(shardInfoToProto),
    })),
    append: unary(async (req: journal.AppendRequest) => {
      const r = await client.append(req.shard, Buffer.from(req.batch));
      return { baseOffset: r.baseOffset, lastOffset: r.lastOffset };
    }),
    read: unary(async (req: journal.ReadRequest, call) => {
      // A cancelled call (client gone) ends the long poll at once.
      const ac = new AbortController();
      call.on('cancelled', () => ac.abort());
      const r = await client.read(req.shard, req.fromOffset, {
        ...(req.maxBytes > 0 ? { maxBytes: req.maxBytes } : {}),
        maxWaitMs: Math.max(0, req.maxWaitMs),
        signal: ac.signal,
      });
      return { batches: r.data, earliestOffset: r.earliestOffset, latestOffset: r.latestOffset, nextOffset: r.nextOffset };
    }),
    offsetForTimestamp: unary(async (req: journal.OffsetForTimestampRequest) => ({
      offset: (await client.offsetForTimestamp(req.shard, Number(req.timestampMs))) ?? -1n,
    })),
    deleteRecords: unary(async (req: journal.DeleteRecordsRequest) => ({
      earliestOffset: await client.deleteRecordsBefore(req.shard, req.beforeOffset),
    })),
    updateShardConfig: unary(async (req: journal.UpdateShardConfigRequest) => ({
      shard: shardInfoToProto(await client.updateShardConfig(req.name, shardConfigFromOptions(req.options))),
    })),
  };
}
