import type { ShardConfig } from '@robustmq/journal';
import { KafkaApiError, KafkaError } from './errors.js';

/**
 * Kafka topic configs this broker knows: their defaults (what DescribeConfigs reports as
 * DEFAULT_CONFIG, equal to the journal defaults they map onto) and how each is checked. Every
 * one of them is enforced, not only stored:
 * - `retention.ms`, `retention.bytes`, `segment.bytes`, `segment.ms`, `max.message.bytes` become
 *   the journal shard settings of every partition (`retentionMs`, `retentionBytes`,
 *   `segmentBytes`, `segmentMs`, `maxBatchBytes`); the journal deletes whole sealed segments
 *   past the retention limits and refuses larger appends (Produce: MESSAGE_TOO_LARGE);
 * - `cleanup.policy` picks the journal engine at creation (`delete` → segment log, `compact` →
 *   compacted engine); an engine cannot be switched later, so a change is INVALID_CONFIG;
 * - `message.timestamp.type`, `compression.type` accept only what the broker does (CreateTime,
 *   producer), `min.insync.replicas` any positive count (replication is the journal's).
 */
export const TOPIC_CONFIG_DEFAULTS: Readonly<Record<string, string>> = {
  'cleanup.policy': 'delete',
  'retention.ms': String(7 * 24 * 3600 * 1000),
  'retention.bytes': '-1',
  'segment.bytes': String(1024 * 1024 * 1024),
  'segment.ms': String(7 * 24 * 3600 * 1000),
  'max.message.bytes': String(1024 * 1024 + 12),
  'message.timestamp.type': 'CreateTime',
  'min.insync.replicas': '1',
  'compression.type': 'producer',
};

/** Configs whose value is a comma-separated list (IncrementalAlterConfigs APPEND / SUBTRACT). */
export const LIST_CONFIGS: ReadonlySet<string> = new Set(['cleanup.policy']);

const bad = (message: string): KafkaApiError => new KafkaApiError(KafkaError.INVALID_CONFIG, message);

function integer(key: string, value: string, min: number, zeroAllowed = true): number {
  const n = /^-?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || (!zeroAllowed && n === 0)) {
    const range = min === -1 ? `-1 or ${zeroAllowed ? 'at least 0' : 'positive'}` : `at least ${min}`;
    throw bad(`Invalid value ${JSON.stringify(value)} for configuration ${key}: must be an integer, ${range}`);
  }
  return n;
}

/** The values of a list config, trimmed, without empties. */
export function listValues(value: string): string[] {
  return value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** The cleanup policy a config asks for (`delete` when unset). */
export function cleanupPolicyOf(config: Readonly<Record<string, string>>): 'delete' | 'compact' {
  const v = listValues(config['cleanup.policy'] ?? 'delete');
  return v.length === 1 && v[0] === 'compact' ? 'compact' : 'delete';
}

/** Checks one config value; INVALID_CONFIG with a message naming the key otherwise. */
function checkValue(key: string, value: string): void {
  switch (key) {
    case 'retention.ms':
    case 'retention.bytes':
      // 0 would delete everything at once; the journal takes −1 (no limit) or a positive limit
      integer(key, value, -1, false);
      return;
    case 'segment.bytes':
      integer(key, value, 14);
      return;
    case 'segment.ms':
    case 'max.message.bytes':
    case 'min.insync.replicas':
      integer(key, value, 1);
      return;
    case 'cleanup.policy': {
      const v = listValues(value);
      if (v.length === 0 || v.some((x) => x !== 'delete' && x !== 'compact'))
        throw bad(`Invalid value ${JSON.stringify(value)} for configuration cleanup.policy: must be delete or compact`);
      if (new Set(v).size === 2)
        throw bad('cleanup.policy=compact,delete is not supported: a topic is either compacted or deleted by retention');
      return;
    }
    case 'message.timestamp.type':
      if (value !== 'CreateTime') throw bad(`message.timestamp.type=${value} is not supported (only CreateTime)`);
      return;
    case 'compression.type':
      if (value !== 'producer') throw bad(`compression.type=${value} is not supported (batches are stored as the producer sent them)`);
      return;
    default:
      throw bad(`Unknown topic config name: ${key}`);
  }
}

/** Validates a whole topic config (CreateTopics, AlterConfigs): unknown keys and bad values are INVALID_CONFIG. */
export function validateTopicConfig(config: Readonly<Record<string, string>>): void {
  for (const [k, v] of Object.entries(config)) checkValue(k, v);
}

/** The journal shard settings of a topic config (keys left out fall back to the journal defaults). */
export function shardConfigOf(config: Readonly<Record<string, string>>): ShardConfig {
  const out: ShardConfig = {};
  const int = (k: string): number | undefined => {
    const v = config[k];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n)) throw bad(`${k} must be an integer`);
    return n;
  };
  const retentionMs = int('retention.ms');
  if (retentionMs !== undefined) out.retentionMs = retentionMs;
  const retentionBytes = int('retention.bytes');
  if (retentionBytes !== undefined) out.retentionBytes = retentionBytes;
  const segmentBytes = int('segment.bytes');
  if (segmentBytes !== undefined) out.segmentBytes = segmentBytes;
  const segmentMs = int('segment.ms');
  if (segmentMs !== undefined) out.segmentMs = segmentMs;
  const maxMessageBytes = int('max.message.bytes');
  if (maxMessageBytes !== undefined) out.maxBatchBytes = maxMessageBytes;
  return out;
}

/** IncrementalAlterConfigs operations (KIP-339). */
export const ConfigOp = { Set: 0, Delete: 1, Append: 2, Subtract: 3 } as const;

/**
 * Applies IncrementalAlterConfigs operations to a topic config and returns the new one
 * (validated by the caller). SET replaces, DELETE returns to the default, APPEND / SUBTRACT add
 * or remove values of a list config (starting from the current or default value).
 */
export function applyIncremental(
  current: Readonly<Record<string, string>>,
  ops: readonly { name: string; configOperation: number; value: string | null }[],
): Record<string, string> {
  let next: Record<string, string> = { ...current };
  const seen = new Set<string>();
  for (const op of ops) {
    if (seen.has(op.name)) throw new KafkaApiError(KafkaError.INVALID_REQUEST, `Config ${op.name} appears more than once in the request`);
    seen.add(op.name);
    if (!(op.name in TOPIC_CONFIG_DEFAULTS)) throw bad(`Unknown topic config name: ${op.name}`);
    switch (op.configOperation) {
      case ConfigOp.Set:
        if (op.value === null) throw bad(`SET of ${op.name} needs a value`);
        next[op.name] = op.value;
        break;
      case ConfigOp.Delete:
        next = Object.fromEntries(Object.entries(next).filter(([k]) => k !== op.name));
        break;
      case ConfigOp.Append:
      case ConfigOp.Subtract: {
        if (!LIST_CONFIGS.has(op.name)) throw bad(`${op.name} is not a list config: APPEND and SUBTRACT apply to list configs only`);
        const have = listValues(next[op.name] ?? TOPIC_CONFIG_DEFAULTS[op.name] ?? '');
        const given = listValues(op.value ?? '');
        const out =
          op.configOperation === ConfigOp.Append
            ? [...have, ...given.filter((g) => !have.includes(g))]
            : have.filter((h) => !given.includes(h));
        if (out.length === 0) throw bad(`${op.name} cannot become empty`);
        next[op.name] = out.join(',');
        break;
      }
      default:
        throw new KafkaApiError(KafkaError.INVALID_REQUEST, `Unknown config operation ${op.configOperation} for ${op.name}`);
    }
  }
  return next;
}
