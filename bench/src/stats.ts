/**
 * Measurement helpers of robust-bench: a fixed-size latency histogram (recording allocates
 * nothing), error counts by kind, the live progress line and the final summary.
 */

/** Sub-buckets per power of two: 2^7 = 128, so a recorded value is off by at most 1/128 (0.8 %). */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
const EXACT = SUB << 1; // values below this are stored exactly
const MAX_VALUE = 0x7fff_ffff;
const BUCKETS = EXACT + (31 - SUB_BITS - 1) * SUB;

/** Bucket index of integer `v` (0 ≤ v ≤ 2^31-1). */
export function bucketOf(v: number): number {
  if (v < EXACT) return v;
  const e = 31 - Math.clz32(v); // floor(log2 v) ≥ SUB_BITS + 1
  const shift = e - SUB_BITS;
  return EXACT + (shift - 1) * SUB + ((v >>> shift) - SUB);
}

/** Highest value that falls in bucket `i` (reported, so percentiles never understate). */
export function bucketHigh(i: number): number {
  if (i < EXACT) return i;
  const shift = Math.floor((i - EXACT) / SUB) + 1;
  const m = ((i - EXACT) % SUB) + SUB;
  return (m + 1) * 2 ** shift - 1;
}

/** Log-linear histogram of non-negative integers (microseconds here), like HdrHistogram. */
export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;
  min = Number.POSITIVE_INFINITY;
  sum = 0;

  record(value: number): void {
    let v = Math.round(value);
    if (v < 0) v = 0;
    else if (v > MAX_VALUE) v = MAX_VALUE;
    this.counts[bucketOf(v)]!++;
    this.count++;
    this.sum += v;
    if (v > this.max) this.max = v;
    if (v < this.min) this.min = v;
  }

  /** Records `n` occurrences of `value` at once. */
  recordMany(value: number, n: number): void {
    if (n <= 0) return;
    let v = Math.round(value);
    if (v < 0) v = 0;
    else if (v > MAX_VALUE) v = MAX_VALUE;
    this.counts[bucketOf(v)]! += n;
    this.count += n;
    this.sum += v * n;
    if (v > this.max) this.max = v;
    if (v < this.min) this.min = v;
  }

  merge(other: Histogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sum += other.sum;
    if (other.max > this.max) this.max = other.max;
    if (other.min < this.min) this.min = other.min;
  }

  /** Nearest-rank percentile (0 < p ≤ 100): the smallest value with at least p % of samples at or below it. */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(bucketHigh(i), this.max);
    }
    return this.max;
  }
}

/** Exact nearest-rank percentile of a list of numbers (small lists: rounds, medians). */
export function percentileOf(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

/** Median; the mean of the two middle values for an even count. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Error counts by kind (`connect ECONNREFUSED`, `CONNACK 0x87`, …). */
export class ErrorCounts {
  readonly byKind = new Map<string, number>();
  total = 0;
  add(kind: string, n = 1): void {
    this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + n);
    this.total += n;
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.byKind].sort((a, b) => b[1] - a[1]));
  }
}

export interface LatencySummary {
  unit: 'ms';
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function summarizeLatency(h: Histogram, unitsPerMs = 1000): LatencySummary {
  const r = (v: number): number => Math.round((v / unitsPerMs) * 1000) / 1000;
  return {
    unit: 'ms',
    count: h.count,
    p50: r(h.percentile(50)),
    p95: r(h.percentile(95)),
    p99: r(h.percentile(99)),
    max: r(h.max),
    mean: h.count ? r(h.sum / h.count) : 0,
  };
}

/** What every robust-bench run reports (`--json` prints it as is). */
export interface Summary {
  bench: string;
  target: string;
  options: Record<string, unknown>;
  elapsedS: number;
  /** Messages (or records) handed to the socket, acknowledged, delivered, expected. */
  sent: number;
  acked: number;
  received: number;
  expected: number;
  lost: number;
  duplicates: number;
  /** Throughput over the measured interval, per second. */
  sendRate: number;
  receiveRate: number;
  receiveMBps: number;
  /** Publish-to-delivery latency (from the send time in the payload). */
  latency: LatencySummary | null;
  /** Publish-to-acknowledgement latency (QoS 1/2, Kafka produce). */
  ackLatency: LatencySummary | null;
  connections?: { count: number; rate: number; latency: LatencySummary } | undefined;
  errors: Record<string, number>;
  errorCount: number;
  /** CPU the generator itself used: seconds, and percent of one core over the run. */
  cpu: { userS: number; systemS: number; percentOfOneCore: number };
}

export function cpuSince(start: NodeJS.CpuUsage, elapsedS: number): Summary['cpu'] {
  const u = process.cpuUsage(start);
  const round = (v: number): number => Math.round(v * 100) / 100;
  return {
    userS: round(u.user / 1e6),
    systemS: round(u.system / 1e6),
    percentOfOneCore: elapsedS > 0 ? Math.round(((u.user + u.system) / 1e6 / elapsedS) * 1000) / 10 : 0,
  };
}

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

/** Human-readable summary. */
export function formatSummary(s: Summary): string {
  const lines = [`${s.bench} against ${s.target}: ${fmt(s.elapsedS, 2)} s`];
  if (s.connections) {
    const c = s.connections;
    lines.push(
      `  connections  ${fmt(c.count)} at ${fmt(c.rate)}/s; CONNACK latency p50 ${c.latency.p50} ms, p95 ${c.latency.p95}, p99 ${c.latency.p99}, max ${c.latency.max}`,
    );
  }
  if (s.sent > 0 || s.received > 0) {
    if (s.sent > 0) lines.push(`  sent         ${fmt(s.sent)} (${fmt(s.sendRate)}/s), acknowledged ${fmt(s.acked)}`);
    if (s.received > 0 || s.expected > 0) {
      lines.push(
        `  received     ${fmt(s.received)} (${fmt(s.receiveRate)}/s, ${fmt(s.receiveMBps, 1)} MB/s) of ${fmt(s.expected)} expected`,
      );
      lines.push(`  lost         ${fmt(s.lost)}${s.duplicates ? `, duplicates ${fmt(s.duplicates)}` : ''}`);
    }
  }
  const lat = (name: string, l: LatencySummary | null): void => {
    if (l && l.count > 0)
      lines.push(`  ${name.padEnd(12)} p50 ${l.p50} ms, p95 ${l.p95}, p99 ${l.p99}, max ${l.max} (${fmt(l.count)} samples)`);
  };
  lat('latency', s.latency);
  lat('ack latency', s.ackLatency);
  lines.push(
    `  errors       ${
      s.errorCount === 0
        ? 'none'
        : Object.entries(s.errors)
            .map(([k, v]) => `${k} × ${fmt(v)}`)
            .join(', ')
    }`,
  );
  lines.push(
    `  generator    CPU ${fmt(s.cpu.userS + s.cpu.systemS, 2)} s (user ${s.cpu.userS}, system ${s.cpu.systemS}), ${s.cpu.percentOfOneCore} % of one core`,
  );
  return lines.join('\n') + '\n';
}

/** The live line on a terminal, rewritten once a second; silent when stderr is not a TTY. */
export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private last = { t: 0, sent: 0, received: 0 };
  private readonly t0 = performance.now();
  private readonly sample: () => { sent: number; received: number; errors: number; label?: string };

  constructor(enabled: boolean, sample: () => { sent: number; received: number; errors: number; label?: string }) {
    this.sample = sample;
    if (!enabled || !process.stderr.isTTY) return;
    this.last.t = this.t0;
    this.timer = setInterval(() => this.draw(), 1000);
    this.timer.unref();
  }

  private draw(): void {
    const now = performance.now();
    const s = this.sample();
    const dt = (now - this.last.t) / 1000;
    const line =
      `${fmt((now - this.t0) / 1000, 1)} s  ` +
      (s.label ? `${s.label}  ` : '') +
      `sent ${fmt(s.sent)} (${fmt((s.sent - this.last.sent) / dt)}/s)  ` +
      `received ${fmt(s.received)} (${fmt((s.received - this.last.received) / dt)}/s)  errors ${fmt(s.errors)}`;
    this.last = { t: now, sent: s.sent, received: s.received };
    process.stderr.write(`\r\x1b[K${line}`);
  }

  stop(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    process.stderr.write('\r\x1b[K');
  }
}
