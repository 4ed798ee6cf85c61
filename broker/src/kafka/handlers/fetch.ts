import { BATCH_HEADER_BYTES, OffsetOutOfRangeError, readBatchHeader } from '@robustmq/journal';
import { decodeAllRecords } from '../compression.js';
import type { KafkaContext, RequestInfo } from '../context.js';
import { KafkaError, kafkaErrorOf } from '../errors.js';
import type { FetchRequest, FetchResponse, FetchableTopicResponse, PartitionData } from '../messages/fetch/index.js';
import type { ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopicResponse } from '../messages/list-offsets/index.js';
import type { StreamRecord } from '../streams.js';
import { EMPTY, ZERO_UUID } from '../wire/constants.js';

interface Slot {
  stream: StreamRecord | undefined;
  shard: string | undefined;
  out: PartitionData;
  fetchOffset: bigint;
  maxBytes: number;
  /** Gives the journal back the buffer behind `out.records` (see ReadResult.release). */
  release: (() => void) | undefined;
}

/** Releases of the read buffers behind a Fetch response, until it has been written. */
const responseBuffers = new WeakMap<object, Slot[]>();

/**
 * Gives the journal back the buffers a Fetch response's records lie in: the server calls it
 * once the response was written to the socket (or will not be). Anything else is ignored.
 */
export function releaseResponseBuffers(resp: unknown): void {
  if (typeof resp !== 'object' || resp === null) return;
  const slots = responseBuffers.get(resp);
  if (slots === undefined) return;
  responseBuffers.delete(resp);
  for (const s of slots) dropRecords(s);
}

function dropRecords(slot: Slot): void {
  slot.out.records = EMPTY;
  slot.release?.();
  slot.release = undefined;
}

/** Reads one partition without waiting; fills `slot.out` and returns the bytes it added. */
async function readSlot(ctx: KafkaContext, slot: Slot, budget: number): Promise<number> {
  if (slot.shard === undefined) return 0;
  const out = slot.out;
  dropRecords(slot); // a re-read after a long-poll wake replaces what the last one found
  try {
    const r = await ctx.journal.read(slot.shard, slot.fetchOffset, {
      maxBytes: Math.max(1, Math.min(slot.maxBytes, budget)),
      maxWaitMs: 0,
    });
    out.errorCode = 0;
    out.records = r.data;
    slot.release = r.release;
    out.highWatermark = r.latestOffset;
    out.lastStableOffset = r.latestOffset;
    out.logStartOffset = r.earliestOffset;
    return r.data.length;
  } catch (err) {
    out.errorCode = kafkaErrorOf(err);
    out.records = EMPTY;
    if (err instanceof OffsetOutOfRangeError) {
      out.highWatermark = err.latestOffset;
      out.lastStableOffset = err.latestOffset;
      out.logStartOffset = err.earliestOffset;
    }
    return 0;
  }
}

/**
 * Fetch v4–13. Returns the stored batches as they are (records are never null: an empty
 * partition, or one with an error, gets zero-length records, which librdkafka needs). When less
 * than `minBytes` is there, the request parks on the journal's long poll of every partition it
 * asks for, so an append wakes it; `maxWaitMs` bounds the wait and a closed connection ends it.
 */
export async function handleFetch(ctx: KafkaContext, req: FetchRequest, info: RequestInfo): Promise<FetchResponse> {
  const v = info.apiVersion;
  const responses: FetchableTopicResponse[] = [];
  const slots: Slot[] = [];
  for (const t of req.topics) {
    const stream = v >= 13 ? ctx.streams.byId(t.topicId ?? ZERO_UUID) : ctx.streams.get(t.topic ?? '');
    const partitions: PartitionData[] = [];
    for (const p of t.partitions) {
      const out: PartitionData = {
        partitionIndex: p.partition,
        errorCode: 0,
        highWatermark: -1n,
        lastStableOffset: -1n,
        logStartOffset: -1n,
        abortedTransactions: null,
        preferredReadReplica: -1,
        records: EMPTY,
      };
      let shard: string | undefined;
      if (stream === undefined) out.errorCode = v >= 13 ? KafkaError.UNKNOWN_TOPIC_ID : KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
      else {
        try {
          shard = await ctx.streams.shardOf(stream, p.partition);
        } catch (err) {
          out.errorCode = kafkaErrorOf(err);
        }
      }
      partitions.push(out);
      slots.push({ stream, shard, out, fetchOffset: p.fetchOffset, maxBytes: p.partitionMaxBytes, release: undefined });
    }
    responses.push({ topic: stream?.name ?? t.topic ?? '', topicId: stream?.topicId ?? t.topicId ?? ZERO_UUID, partitions });
  }

  const readAll = async (): Promise<number> => {
    let total = 0;
    for (const s of slots) {
      const budget = req.maxBytes - total;
      // the response-level limit: the first partition with data is returned whole, as Kafka does
      if (budget <= 0 && total > 0) {
        dropRecords(s);
        continue;
      }
      total += await readSlot(ctx, s, budget <= 0 ? s.maxBytes : budget);
    }
    return total;
  };

  let total = await readAll();
  const minBytes = Math.max(1, req.minBytes);
  if (total < minBytes && req.maxWaitMs > 0 && slots.some((s) => s.shard !== undefined && s.out.errorCode === 0)) {
    const ac = new AbortController();
    const onClose = (): void => ac.abort();
    info.signal.addEventListener('abort', onClose, { once: true });
    ctx.metrics.parkedFetches.inc();
    try {
      // Each partition waits for an append past what it has now (its high watermark, or the
      // fetch offset when that is further): a wake re-reads every partition and, while less than
      // minBytes is there, re-arms the partition that woke. Partitions that already have some
      // data therefore keep the request parked until minBytes or the deadline, as Kafka does.
      const deadline = Date.now() + req.maxWaitMs;
      const live = slots.filter((s) => s.shard !== undefined && s.out.errorCode === 0);
      const arm = (s: Slot): Promise<Slot | undefined> => {
        const hw = s.out.highWatermark;
        const at = hw > s.fetchOffset ? hw : s.fetchOffset;
        return ctx.journal.read(s.shard!, at, { maxBytes: 1, maxWaitMs: Math.max(1, deadline - Date.now()), signal: ac.signal }).then(
          (r) => {
            r.release?.();
            return r.data.length > 0 ? s : undefined;
          },
          () => undefined,
        );
      };
      const waits = new Map<Slot, Promise<{ slot: Slot; woke: Slot | undefined }>>();
      const wait = (s: Slot): void =>
        void waits.set(
          s,
          arm(s).then((woke) => ({ slot: s, woke })),
        );
      for (const s of live) wait(s);
      while (waits.size > 0 && !info.signal.aborted) {
        const { slot, woke } = await Promise.race(waits.values());
        waits.delete(slot);
        if (woke === undefined) continue; // timed out or failed: this partition waits no more
        total = await readAll();
        if (total >= minBytes || total >= req.maxBytes || Date.now() >= deadline) break;
        if (slot.out.errorCode === 0) wait(slot);
      }
    } finally {
      ac.abort();
      info.signal.removeEventListener('abort', onClose);
      ctx.metrics.parkedFetches.dec();
    }
  }
  const resp: FetchResponse = { throttleTimeMs: 0, errorCode: 0, sessionId: 0, responses };
  responseBuffers.set(resp, slots);
  return resp;
}

/** ListOffsets v0–8: −1 latest, −2 earliest, −3 the record with the largest timestamp, −4 earliest local (= earliest), else by timestamp. */
/** ListOffsets special timestamps: latest, earliest, max timestamp (v7+, KIP-734), earliest local (v8+, KIP-405). */
const LATEST = -1n;
const EARLIEST = -2n;
const MAX_TIMESTAMP = -3n;
const EARLIEST_LOCAL = -4n;

/** The timestamp of the record at `offset` (Kafka answers a timestamp lookup with the found record's own). */
async function recordTimestampAt(ctx: KafkaContext, shard: string, offset: bigint): Promise<bigint | undefined> {
  const r = await ctx.journal.read(shard, offset, { maxBytes: 1 });
  try {
    const hit = decodeAllRecords(r.data).find((x) => x.offset === offset);
    return hit === undefined ? undefined : BigInt(hit.timestamp);
  } finally {
    r.release?.();
  }
}

/**
 * The first record with the largest timestamp in the partition (KIP-734). The journal keeps no
 * index of it, so every batch header is read once (the records of the winning batch only).
 */
async function maxTimestampRecord(ctx: KafkaContext, shard: string): Promise<{ offset: bigint; timestamp: bigint } | undefined> {
  let from = await ctx.journal.earliestOffset(shard);
  let best: { maxTimestamp: number; batch: Buffer } | undefined;
  for (;;) {
    const r = await ctx.journal.read(shard, from, { maxBytes: 1024 * 1024 });
    let pos = 0;
    while (pos + BATCH_HEADER_BYTES <= r.data.length) {
      const h = readBatchHeader(r.data, pos);
      const size = h.batchLength + 12;
      if (pos + size > r.data.length) break;
      if (h.recordCount > 0 && (best === undefined || h.maxTimestamp > best.maxTimestamp)) {
        best = { maxTimestamp: h.maxTimestamp, batch: Buffer.from(r.data.subarray(pos, pos + size)) };
      }
      pos += size;
    }
    if (r.data.length === 0 || r.nextOffset <= from || r.nextOffset >= r.latestOffset) break;
    from = r.nextOffset;
  }
  if (best === undefined) return undefined;
  const records = decodeAllRecords(best.batch);
  const top = best.maxTimestamp;
  const hit = records.find((x) => x.timestamp === top) ?? records[records.length - 1];
  return hit === undefined ? undefined : { offset: hit.offset, timestamp: BigInt(top) };
}

/** What ListOffsets found for one partition; `latest` is filled when a timestamp found nothing. */
interface FoundOffset {
  partitionIndex: number;
  errorCode: number;
  timestamp: bigint;
  offset: bigint;
  leaderEpoch: number;
  latest?: bigint;
}

export async function handleListOffsets(ctx: KafkaContext, req: ListOffsetsRequest, info: RequestInfo): Promise<ListOffsetsResponse> {
  const found = await listOffsets(ctx, req);
  const topics: ListOffsetsTopicResponse[] = found.map((t, ti) => ({
    name: t.name,
    partitions: t.partitions.map(({ latest, ...p }, pi) => {
      if (info.apiVersion > 0) return p;
      // v0 answers a list of at most maxNumOffsets offsets: the one found (for a timestamp with
      // no record at or after it, the high watermark, where a v0 client then starts)
      const max = req.topics[ti]!.partitions[pi]!.maxNumOffsets ?? 1;
      const offset = p.offset >= 0n ? p.offset : (latest ?? -1n);
      return { ...p, oldStyleOffsets: p.errorCode === 0 && max > 0 && offset >= 0n ? [offset] : [] };
    }),
  }));
  return { throttleTimeMs: 0, topics };
}

async function listOffsets(ctx: KafkaContext, req: ListOffsetsRequest): Promise<{ name: string; partitions: FoundOffset[] }[]> {
  const topics: { name: string; partitions: FoundOffset[] }[] = [];
  for (const t of req.topics) {
    const s = ctx.streams.get(t.name);
    const partitions = await Promise.all(
      t.partitions.map(async (p) => {
        const out: FoundOffset = {
          partitionIndex: p.partitionIndex,
          errorCode: 0,
          timestamp: -1n,
          offset: -1n,
          leaderEpoch: 0,
        };
        try {
          if (s === undefined) {
            out.errorCode = KafkaError.UNKNOWN_TOPIC_OR_PARTITION;
            return out;
          }
          const shard = await ctx.streams.shardOf(s, p.partitionIndex);
          if (p.timestamp === LATEST) out.offset = await ctx.journal.latestOffset(shard);
          else if (p.timestamp === EARLIEST || p.timestamp === EARLIEST_LOCAL) {
            // no tiered storage: the local log is the whole log
            out.offset = await ctx.journal.earliestOffset(shard);
          } else if (p.timestamp === MAX_TIMESTAMP) {
            const m = await maxTimestampRecord(ctx, shard);
            if (m !== undefined) {
              out.offset = m.offset;
              out.timestamp = m.timestamp;
            }
          } else {
            const o = await ctx.journal.offsetForTimestamp(shard, Number(p.timestamp));
            if (o !== null) {
              out.offset = o;
              out.timestamp = (await recordTimestampAt(ctx, shard, o)) ?? p.timestamp;
            } else out.latest = await ctx.journal.latestOffset(shard);
          }
        } catch (err) {
          out.errorCode = kafkaErrorOf(err);
        }
        return out;
      }),
    );
    topics.push({ name: t.name, partitions });
  }
  return topics;
}
