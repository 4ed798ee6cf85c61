import * as grpc from '@grpc/grpc-js';
import { journal } from '@robustmq/proto';
import { ErrorCode, RobustError, type ErrorCode as Code } from '@robustmq/common';
import type { AppendResult, CreateShardOptions, JournalClient, ReadOptions, ReadResult, ShardInfo, SubscribeOptions } from '../journal.js';
import { EngineKind, type ShardConfig } from '../config.js';
import { OffsetOutOfRangeError } from '../errors.js';

const JournalGrpc = grpc.makeGenericClientConstructor(journal.JournalService, 'Journal');

/** The longest single long-poll a subscription asks for; it simply asks again after. */
const SUBSCRIBE_POLL_MS = 30_000;

function fromGrpc(err: grpc.ServiceError, shard: string, offset: bigint): RobustError {
  const code = err.metadata?.get('robustmq-code')[0];
  if (code === ErrorCode.OffsetOutOfRange) {
    const earliest = BigInt(String(err.metadata.get('robustmq-earliest')[0] ?? '0'));
    const latest = BigInt(String(err.metadata.get('robustmq-latest')[0] ?? '0'));
    return new OffsetOutOfRangeError(shard, offset, earliest, latest);
  }
  const known = typeof code === 'string' && (Object.values(ErrorCode) as string[]).includes(code) ? (code as Code) : undefined;
  if (known !== undefined) return new RobustError(known, err.details, { cause: err });
  if (err.code === grpc.status.CANCELLED) return new RobustError(ErrorCode.Aborted, 'journal call cancelled', { cause: err });
  return new RobustError(ErrorCode.StorageIo, `journal unavailable: ${err.details || err.message}`, { cause: err, retriable: true });
}

function shardFrom(s: journal.ShardInfo | undefined): ShardInfo {
  if (s === undefined) throw new RobustError(ErrorCode.StorageIo, 'journal: empty answer');
  return {
    name: s.name,
    engine: s.engine as EngineKind,
    config: {},
    earliestOffset: s.earliestOffset,
    latestOffset: s.latestOffset,
    bytes: Number(s.sizeBytes),
    records: Number(s.records),
  };
}

/**
 * JournalClient over gRPC, for brokers that do not run the journal themselves. Reads are long
 * polls on the journal node (woken there by the append); cancelling the AbortSignal cancels
 * the call.
 */
export class GrpcJournalClient implements JournalClient {
  readonly #client: journal.JournalClient;

  constructor(endpoint: string) {
    this.#client = new JournalGrpc(endpoint, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
    }) as unknown as journal.JournalClient;
  }

  #unary<Req, Res>(
    method: (
      req: Req,
      md: grpc.Metadata,
      o: Partial<grpc.CallOptions>,
      cb: (e: grpc.ServiceError | null, r: Res) => void,
    ) => grpc.ClientUnaryCall,
    req: Req,
    ctx: { shard?: string; offset?: bigint; signal?: AbortSignal | undefined } = {},
  ): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      if (ctx.signal?.aborted) return reject(new RobustError(ErrorCode.Aborted, 'aborted'));
      const call = method.call(this.#client, req, new grpc.Metadata(), {}, (err, res) => {
        ctx.signal?.removeEventListener('abort', onAbort);
        if (err) reject(fromGrpc(err, ctx.shard ?? '', ctx.offset ?? 0n));
        else resolve(res);
      });
      const onAbort = (): void => call.cancel();
      ctx.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  async createShard(name: string, opts: CreateShardOptions = {}): Promise<ShardInfo> {
    const options: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.config ?? {})) options[k] = String(v);
    const r = await this.#unary(
      this.#client.createShard,
      { name, config: { engine: opts.engine ?? EngineKind.Segment, options } },
      { shard: name },
    );
    return shardFrom(r.shard);
  }
  async deleteShard(name: string): Promise<void> {
    await this.#unary(this.#client.deleteShard, { name }, { shard: name });
  }
  async getShard(name: string): Promise<ShardInfo> {
    const all = await this.listShards({ prefix: name });
    const s = all.find((x) => x.name === name);
    if (s === undefined) throw new RobustError(ErrorCode.ShardNotFound, `no shard named ${name}`);
    return s;
  }
  async listShards(opts: { prefix?: string } = {}): Promise<ShardInfo[]> {
    const r = await this.#unary(this.#client.listShards, { prefix: opts.prefix ?? '' });
    return r.shards.map(shardFrom);
  }
  async append(shard: string, batch: Buffer): Promise<AppendResult> {
    const r = await this.#unary(this.#client.append, { shard, batch }, { shard });
    return { baseOffset: r.baseOffset, lastOffset: r.lastOffset };
  }
  async read(shard: string, fromOffset: bigint, opts: ReadOptions = {}): Promise<ReadResult> {
    const wait = opts.maxWaitMs ?? 0;
    const r = await this.#unary(
      this.#client.read,
      {
        shard,
        fromOffset,
        maxBytes: opts.maxBytes ?? 0,
        maxWaitMs: Number.isFinite(wait) ? Math.min(wait, 2 ** 31 - 1) : SUBSCRIBE_POLL_MS,
      },
      { shard, offset: fromOffset, signal: opts.signal },
    );
    return { data: Buffer.from(r.batches), nextOffset: r.nextOffset, earliestOffset: r.earliestOffset, latestOffset: r.latestOffset };
  }
  async *subscribe(shard: string, fromOffset: bigint, opts: SubscribeOptions = {}): AsyncGenerator<ReadResult> {
    let next = fromOffset;
    while (opts.signal?.aborted !== true) {
      let r: ReadResult;
      try {
        r = await this.read(shard, next, {
          ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
          maxWaitMs: SUBSCRIBE_POLL_MS,
          signal: opts.signal,
        });
      } catch (err) {
        if (opts.signal?.aborted) return;
        throw err;
      }
      next = r.nextOffset;
      if (r.data.length > 0) yield r;
    }
  }
  async earliestOffset(shard: string): Promise<bigint> {
    return (await this.getShard(shard)).earliestOffset;
  }
  async latestOffset(shard: string): Promise<bigint> {
    return (await this.getShard(shard)).latestOffset;
  }
  async offsetForTimestamp(shard: string, timestampMs: number): Promise<bigint | null> {
    const r = await this.#unary(this.#client.offsetForTimestamp, { shard, timestampMs: BigInt(timestampMs) }, { shard });
    return r.offset < 0n ? null : r.offset;
  }
  async deleteRecordsBefore(shard: string, offset: bigint): Promise<bigint> {
    const r = await this.#unary(this.#client.deleteRecords, { shard, beforeOffset: offset }, { shard, offset });
    return r.earliestOffset;
  }
  async updateShardConfig(shard: string, config: ShardConfig): Promise<ShardInfo> {
    const options: Record<string, string> = {};
    for (const [k, v] of Object.entries(config)) options[k] = String(v);
    const r = await this.#unary(this.#client.updateShardConfig, { name: shard, options }, { shard });
    return { ...shardFrom(r.shard), config };
  }
  close(): void {
    (this.#client as unknown as grpc.Client).close();
  }
}
