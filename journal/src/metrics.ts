import { Counter, Gauge, type Registry } from 'prom-client';
import { hotCounter, METRIC_PREFIX } from '@robustmq/common';

function counter(registry: Registry, name: string, help: string, labelNames: string[] = []): Counter {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter;
  return new Counter({ name, help, labelNames, registers: [registry] });
}

function gauge(registry: Registry, name: string, help: string, labelNames: string[] = []): Gauge {
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Gauge;
  return new Gauge({ name, help, labelNames, registers: [registry] });
}

/** Counter children for one engine: plain adds, moved into the counters on scrape (see hotCounter). */
export interface EngineCounters {
  appendBytes: { inc(v: number): void };
  appendRecords: { inc(v: number): void };
  appendBatches: { inc(v: number): void };
  readBytes: { inc(v: number): void };
}

/** The journal's metrics; several Journal instances may share one registry (tests). */
export class JournalMetrics {
  readonly appendBytes: Counter;
  readonly appendRecords: Counter;
  readonly appendBatches: Counter;
  readonly readBytes: Counter;
  readonly fsyncs: Counter;
  readonly recoveryTruncatedBytes: Counter;
  readonly corruptReads: Counter;
  readonly segmentsRolled: Counter;
  readonly segmentsDeleted: Counter;
  readonly shards: Gauge;
  readonly waitingReads: Gauge;

  constructor(registry: Registry) {
    const p = `${METRIC_PREFIX}journal_`;
    this.appendBytes = counter(registry, `${p}append_bytes_total`, 'Bytes of record batches appended', ['engine']);
    this.appendRecords = counter(registry, `${p}append_records_total`, 'Records appended', ['engine']);
    this.appendBatches = counter(registry, `${p}append_batches_total`, 'Record batches appended', ['engine']);
    this.readBytes = counter(registry, `${p}read_bytes_total`, 'Bytes returned by reads', ['engine']);
    this.fsyncs = counter(registry, `${p}fsyncs_total`, 'fsync/fdatasync calls', ['engine']);
    this.recoveryTruncatedBytes = counter(
      registry,
      `${p}recovery_truncated_bytes_total`,
      'Bytes of torn or corrupt log tail truncated on open',
      ['engine'],
    );
    this.corruptReads = counter(registry, `${p}corrupt_reads_total`, 'Reads that hit corrupt stored data', ['engine']);
    this.segmentsRolled = counter(registry, `${p}segments_rolled_total`, 'Segments rolled');
    this.segmentsDeleted = counter(registry, `${p}segments_deleted_total`, 'Segments deleted by retention or deleteRecordsBefore');
    this.shards = gauge(registry, `${p}shards`, 'Shards open', ['engine']);
    this.waitingReads = gauge(registry, `${p}waiting_reads`, 'Long-poll reads parked waiting for data');
  }

  forEngine(engine: string): EngineCounters {
    return {
      appendBytes: hotCounter(this.appendBytes, { engine }),
      appendRecords: hotCounter(this.appendRecords, { engine }),
      appendBatches: hotCounter(this.appendBatches, { engine }),
      readBytes: hotCounter(this.readBytes, { engine }),
    };
  }
}
