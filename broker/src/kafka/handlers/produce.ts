import { BATCH_HEADER_BYTES, BatchAttribute, Compression, readBatchHeader, type JournalRecord } from '@robustmq/journal';
import type { KafkaContext, RequestInfo } from '../context.js';
import { KafkaApiError, KafkaError, kafkaErrorOf } from '../errors.js';
import type { PartitionProduceResponse, ProduceRequest, ProduceResponse, TopicProduceResponse } from '../messages/produce/index.js';
import type { StreamRecord } from '../streams.js';
import { decodeAllRecords } from '../compression.js';
import { NOOP_CLAIM } from '../producers.js';

const MAGIC_OFFSET = 16;

/**
 * Checks what the journal does not: magic 2 only (Produce v3+ carries record batch v2), one batch
 * per partition per request as Kafka requires, zstd only from Produce v7, no transactional or
 * control batches (transactions are not supported). The CRC is checked by the journal's append.
 */
function checkBatch(records: Buffer, version: number): ReturnType<typeof readBatchHeader> {
  if (records.length < BATCH_HEADER_BYTES) throw new KafkaApiError(KafkaError.CORRUPT_MESSAGE, 'records shorter than a batch header');
  if (records[MAGIC_OFFSET] !== 2)
    throw new KafkaApiError(KafkaError.CORRUPT_MESSAGE, `record batch magic ${records[MAGIC_OFFSET]} (only 2 is accepted)`);
  const h = readBatchHeader(records);
  if (h.batchLength + 12 !== records.length) {
    throw new KafkaApiError(
      KafkaError.CORRUPT_MESSAGE,
      h.batchLength + 12 < records.length ? 'more than one batch per partition' : 'truncated batch',
    );
  }
  const codec = h.attributes & 0x07;
  if (codec > Compression.Zstd) throw new KafkaApiError(KafkaError.UNSUPPORTED_COMPRESSION_TYPE, `compression codec ${codec}`);
  if (codec === Compression.Zstd && version < 7) throw new KafkaApiError(KafkaError.UNSUPPORTED_COMPRESSION_TYPE, 'zstd needs Produce v7+');
  if ((h.attributes & (BatchAttribute.Transactional | BatchAttribute.Control)) !== 0) {
    throw new KafkaApiError(KafkaError.INVALID_REQUEST, 'transactional batches are not supported');
  }
  return h;
}

/** Appends one partition's batch; `issued` is called once, when the append was handed to the journal or will not be. */
async function producePartition(
  ctx: KafkaContext,
  s: StreamRecord,
  partition: number,
  records: Buffer | null,
  version: number,
  issued: () => void,
): Promise<PartitionProduceResponse> {
  let told = false;
  const tell = (): void => {
    if (told) return;
    told = true;
    issued();
  };
  const out: PartitionProduceResponse = {
    index: partition,
    errorCode: 0,
    baseOffset: -1n,
    logAppendTimeMs: -1n,
    logStartOffset: -1n,
    recordErrors: [],
    errorMessage: null,
  };
  try {
    if (records === null || records.length === 0) throw new KafkaApiError(KafkaError.CORRUPT_MESSAGE, 'no records');
    const shard = ctx.streams.readyShardOf(s, partition) ?? (await ctx.streams.shardOf(s, partition));
    const h = checkBatch(records, version);
    // Streams bound to MQTT need the records decoded: do it before the append, so a batch that
    // cannot be decoded is refused instead of stored half-bridged.
    const out_ = ctx.bindings.outBinding(s.name);
    let bridged: JournalRecord[] | undefined;
    if (out_ !== undefined) bridged = decodeAllRecords(records);
    // a plain producer (no id) has nothing to claim: skip the await
    const claim =
      h.producerId < 0n ? NOOP_CLAIM : await ctx.producers.claim(shard, h.producerId, h.producerEpoch, h.baseSequence, h.recordCount);
    if (claim.duplicateOf !== undefined) {
      out.baseOffset = claim.duplicateOf;
    } else {
      const appending = ctx.journal.append(shard, records);
      // A failed append rolls the producer's sequence back; registered before `tell()`, so an
      // append that failed at once (a synchronous page-cache write) is rolled back before the
      // connection's next request claims the sequence after it.
      if (claim !== NOOP_CLAIM) appending.catch(() => claim.failed());
      tell();
      const r = await appending;
      claim.done(r.baseOffset);
      out.baseOffset = r.baseOffset;
      ctx.metrics.producedRecords.inc(h.recordCount);
      if (out_ !== undefined && bridged !== undefined) {
        ctx.bindings.publishRecords(out_, bridged);
        ctx.metrics.bridgedRecords.inc({ direction: 'kafka_to_mqtt' }, bridged.length);
      }
    }
    if (version >= 5) out.logStartOffset = await ctx.journal.earliestOffset(shard); // the field exists from v5
  } catch (err) {
    out.errorCode = kafkaErrorOf(err);
    out.errorMessage = (err as Error).message;
    if (out.errorCode === KafkaError.UNKNOWN_SERVER_ERROR) ctx.log.warn({ err, topic: s.name, partition }, 'produce failed');
  } finally {
    tell();
  }
  return out;
}

/**
 * Produce v3–11: each partition's RecordBatch is appended to its shard unchanged (acks 0, 1 and
 * −1 alike: appended = acknowledged). A batch larger than the topic's max.message.bytes is
 * refused by the journal (MESSAGE_TOO_LARGE). v10 and v11 only add tagged leader hints (every
 * broker serves every partition, so there are none to give) and an error code for transactions.
 */
export function handleProduce(ctx: KafkaContext, req: ProduceRequest, info: RequestInfo): Promise<ProduceResponse | undefined> {
  return produce(ctx, req, info, () => undefined);
}

/**
 * Produce as `handleProduce`, telling `onIssued` once every partition's append has been handed
 * to the journal (or will not be): the server starts a connection's next Produce only then, so
 * appends to a partition keep request order while their writes overlap.
 */
export async function produce(
  ctx: KafkaContext,
  req: ProduceRequest,
  info: RequestInfo,
  onIssued: () => void,
): Promise<ProduceResponse | undefined> {
  const v = info.apiVersion;
  const responses: TopicProduceResponse[] = [];
  // partitions (and topics being resolved) whose appends are not handed to the journal yet, +1 until all are counted
  let unissued = 1;
  const issued = (): void => {
    if (--unissued === 0) onIssued();
  };
  if (req.transactionalId !== null) {
    for (const t of req.topicData) {
      responses.push({
        name: t.name,
        partitionResponses: t.partitionData.map((p) => ({
          index: p.index,
          errorCode: KafkaError.UNSUPPORTED_VERSION,
          baseOffset: -1n,
          logAppendTimeMs: -1n,
          errorMessage: 'transactions are not supported',
        })),
      });
    }
  } else if (req.acks !== 0 && req.acks !== 1 && req.acks !== -1) {
    for (const t of req.topicData) {
      responses.push({
        name: t.name,
        partitionResponses: t.partitionData.map((p) => ({
          index: p.index,
          errorCode: KafkaError.INVALID_REQUIRED_ACKS,
          baseOffset: -1n,
          logAppendTimeMs: -1n,
        })),
      });
    }
  } else {
    const work = req.topicData.map(async (t): Promise<TopicProduceResponse> => {
      unissued++;
      let topicIssued = false;
      const tellTopic = (): void => {
        if (topicIssued) return;
        topicIssued = true;
        issued();
      };
      try {
        return await produceTopic(t, tellTopic);
      } finally {
        tellTopic();
      }
    });
    issued();
    responses.push(...(await Promise.all(work)));
  }
  if (unissued > 0) issued(); // transactional or bad acks: nothing was appended
  if (req.acks === 0) {
    // No response to carry the error: Kafka closes the connection instead, so the producer
    // notices (it reconnects and refreshes its metadata) rather than losing records silently.
    const failed = responses.flatMap((t) => t.partitionResponses.filter((p) => p.errorCode !== 0).map((p) => ({ topic: t.name, ...p })));
    if (failed.length > 0) {
      const f = failed[0]!;
      throw new KafkaApiError(
        f.errorCode as KafkaError,
        `acks=0 produce failed for ${failed.length} partition(s), first ${f.topic}-${f.index}: error ${f.errorCode}; closing the connection`,
      );
    }
    return undefined;
  }
  return { responses, throttleTimeMs: 0 };

  async function produceTopic(t: ProduceRequest['topicData'][number], tellTopic: () => void): Promise<TopicProduceResponse> {
    let s = ctx.streams.get(t.name);
    if (s === undefined && ctx.config.autoCreateTopics) {
      try {
        s = await ctx.streams.create(t.name, ctx.config.defaultPartitions, ctx.config.streamEngine);
      } catch {
        s = ctx.streams.get(t.name);
      }
    }
    if (s === undefined) {
      return {
        name: t.name,
        partitionResponses: t.partitionData.map((p) => ({
          index: p.index,
          errorCode: KafkaError.UNKNOWN_TOPIC_OR_PARTITION,
          baseOffset: -1n,
          logAppendTimeMs: -1n,
        })),
      };
    }
    const stream = s;
    const parts = t.partitionData.map((p) => {
      unissued++;
      return producePartition(ctx, stream, p.index, p.records, v, issued);
    });
    tellTopic();
    return { name: t.name, partitionResponses: await Promise.all(parts) };
  }
}
