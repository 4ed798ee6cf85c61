import type { MetaClient } from '@robustmq/meta';
import { KafkaApiError, KafkaError } from './errors.js';

/** Batches remembered per (producer, partition) to answer retried duplicates (Kafka keeps 5). */
const DEDUP_WINDOW = 5;
const ID_BLOCK = 1000n;
const ID_KEY = '/kafka/producer-ids/next';
const MAX_SEQ = 2 ** 31 - 1;

interface BatchEntry {
  firstSeq: number;
  lastSeq: number;
  /** Offsets once appended; undefined while the append is in flight. */
  baseOffset: bigint | undefined;
}

interface PartitionState {
  /** Last sequence accepted (in flight or appended). */
  lastSeq: number;
  entries: BatchEntry[];
}

interface ProducerState {
  epoch: number;
  partitions: Map<string, PartitionState>;
  lastUsedMs: number;
  /** State rebuilt after this broker lost it (restart): the first batch per partition sets the sequence. */
  recovered: boolean;
}

/** A claim on a sequence range; settle it with `done(baseOffset)` or `failed()`. */
export interface SequenceClaim {
  /** A retried duplicate: the offset it was stored at (nothing is appended). */
  duplicateOf?: bigint;
  done(baseOffset: bigint): void;
  failed(): void;
}

export const NOOP_CLAIM: SequenceClaim = { done: () => undefined, failed: () => undefined };

/** Sequence arithmetic wraps from 2^31−1 to 0. */
function nextSeq(seq: number, n = 1): number {
  return (seq + n) % (MAX_SEQ + 1);
}

/**
 * Producer ids (InitProducerId) and the idempotent-producer checks of Produce: per producer id,
 * epoch and partition, the next sequence is accepted, a retry of one of the last five batches
 * is answered with its original offset, a gap is OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch is
 * INVALID_PRODUCER_EPOCH and an id never handed out is UNKNOWN_PRODUCER_ID.
 *
 * Ids are allocated from meta in blocks (a compare-and-swap on one key), so they are unique
 * across brokers and restarts. Sequence state is in memory: after a restart the first batch of
 * a known id on each partition re-establishes it.
 */
export class ProducerStateManager {
  readonly #meta: MetaClient;
  readonly #idleExpiryMs: number;
  readonly #producers = new Map<bigint, ProducerState>();
  #next = 0n;
  #limit = 0n;
  /** Highest id handed out by the cluster as last seen (ids above it were never issued). */
  #issuedBelow = 0n;
  #allocating: Promise<void> | undefined;

  constructor(meta: MetaClient, idleExpiryMs: number) {
    this.#meta = meta;
    this.#idleExpiryMs = idleExpiryMs;
  }

  async #allocateBlock(): Promise<void> {
    for (;;) {
      const kv = await this.#meta.get(ID_KEY);
      const start = kv === undefined ? 0n : BigInt(kv.value.toString('utf8'));
      const end = start + ID_BLOCK;
      const t = await this.#meta.txn({
        compare: [{ key: ID_KEY, target: 'modRevision', result: '=', value: kv?.modRevision ?? 0 }],
        success: [{ op: 'put', key: ID_KEY, value: Buffer.from(end.toString()) }],
        failure: [],
      });
      if (t.succeeded) {
        this.#next = start;
        this.#limit = end;
        if (end > this.#issuedBelow) this.#issuedBelow = end;
        return;
      }
    }
  }

  /** InitProducerId without a transactional id: a new id at epoch 0, or the epoch bumped for a known one. */
  async initProducerId(producerId: bigint, epoch: number): Promise<{ producerId: bigint; epoch: number }> {
    if (producerId >= 0n) {
      const st = this.#producers.get(producerId);
      if (st !== undefined && epoch === st.epoch && epoch < 32767) {
        st.epoch++;
        st.partitions.clear();
        st.lastUsedMs = Date.now();
        return { producerId, epoch: st.epoch };
      }
      if (st !== undefined && epoch !== st.epoch) throw new KafkaApiError(KafkaError.INVALID_PRODUCER_EPOCH, 'producer epoch is stale');
    }
    while (this.#next >= this.#limit) {
      this.#allocating ??= this.#allocateBlock().finally(() => (this.#allocating = undefined));
      await this.#allocating;
    }
    const id = this.#next++;
    this.#producers.set(id, { epoch: 0, partitions: new Map(), lastUsedMs: Date.now(), recovered: false });
    return { producerId: id, epoch: 0 };
  }

  /** Checks an idempotent batch before its append. Non-idempotent batches (producerId −1) pass. */
  async claim(shard: string, producerId: bigint, epoch: number, baseSeq: number, recordCount: number): Promise<SequenceClaim> {
    if (producerId < 0n) return NOOP_CLAIM;
    let st = this.#producers.get(producerId);
    const now = Date.now();
    if (st === undefined || now - st.lastUsedMs > this.#idleExpiryMs) {
      if (producerId >= this.#issuedBelow) {
        // maybe issued by another broker or before a restart: look at the allocation counter
        const kv = await this.#meta.get(ID_KEY);
        if (kv !== undefined) this.#issuedBelow = BigInt(kv.value.toString('utf8'));
      }
      if (producerId >= this.#issuedBelow) throw new KafkaApiError(KafkaError.UNKNOWN_PRODUCER_ID, `unknown producer id ${producerId}`);
      st = { epoch, partitions: new Map(), lastUsedMs: now, recovered: true };
      this.#producers.set(producerId, st);
    }
    if (epoch < st.epoch) throw new KafkaApiError(KafkaError.INVALID_PRODUCER_EPOCH, `producer epoch ${epoch} is older than ${st.epoch}`);
    if (epoch > st.epoch) {
      if (baseSeq !== 0) throw new KafkaApiError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, 'a new producer epoch starts at sequence 0');
      st.epoch = epoch;
      st.partitions.clear();
    }
    st.lastUsedMs = now;
    const lastSeq = nextSeq(baseSeq, recordCount - 1);
    let ps = st.partitions.get(shard);
    if (ps !== undefined) {
      const dup = ps.entries.find((e) => e.firstSeq === baseSeq && e.lastSeq === lastSeq);
      if (dup !== undefined) {
        if (dup.baseOffset === undefined) throw new KafkaApiError(KafkaError.DUPLICATE_SEQUENCE_NUMBER, 'batch is being written');
        return { duplicateOf: dup.baseOffset, done: () => undefined, failed: () => undefined };
      }
      if (baseSeq !== nextSeq(ps.lastSeq)) {
        throw new KafkaApiError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, `expected sequence ${nextSeq(ps.lastSeq)}, got ${baseSeq}`);
      }
    } else {
      if (baseSeq !== 0 && !st.recovered) {
        throw new KafkaApiError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, `first sequence on a partition must be 0, got ${baseSeq}`);
      }
      ps = { lastSeq: -1, entries: [] };
      st.partitions.set(shard, ps);
    }
    const part = ps;
    const prevLast = part.lastSeq;
    const entry: BatchEntry = { firstSeq: baseSeq, lastSeq, baseOffset: undefined };
    part.lastSeq = lastSeq;
    part.entries.push(entry);
    if (part.entries.length > DEDUP_WINDOW) part.entries.shift();
    return {
      done: (baseOffset) => {
        entry.baseOffset = baseOffset;
      },
      failed: () => {
        // This batch and every later one of the partition are forgotten: the later ones were
        // claimed while this one was in flight and cannot stand without it (the journal fails
        // appends queued behind a failed write too), so the retry of this batch is expected next.
        const i = part.entries.indexOf(entry);
        if (i < 0) return; // dropped already, with an earlier batch that failed
        part.entries.splice(i);
        part.lastSeq = prevLast;
      },
    };
  }
}
