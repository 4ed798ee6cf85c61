import type { MqttConfig } from './config.js';

/** Why a topic name or filter was refused; undefined when it is valid. */
export type TopicProblem = 'empty' | 'too_long' | 'too_many_levels' | 'wildcard_in_name' | 'bad_wildcard';

/**
 * A topic name: at least one character [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2], within the
 * configured length and level limits.
 */
export function checkTopicName(topic: string, c: Pick<MqttConfig, 'maxTopicLengthBytes' | 'maxTopicLevels'>): TopicProblem | undefined {
  if (topic.length === 0) return 'empty';
  if (topic.length > c.maxTopicLengthBytes || Buffer.byteLength(topic) > c.maxTopicLengthBytes) return 'too_long';
  let levels = 1;
  for (let i = 0; i < topic.length; i++) {
    const ch = topic.charCodeAt(i);
    if (ch === 0x2b || ch === 0x23) return 'wildcard_in_name';
    if (ch === 0x2f) levels++;
  }
  return levels > c.maxTopicLevels ? 'too_many_levels' : undefined;
}

/**
 * A topic filter: '+' occupies a whole level [MQTT-4.7.1-3], '#' is last and alone in its level
 * [MQTT-4.7.1-2], at least one character [MQTT-4.7.3-1].
 */
export function checkTopicFilter(filter: string, c: Pick<MqttConfig, 'maxTopicLengthBytes' | 'maxTopicLevels'>): TopicProblem | undefined {
  if (filter.length === 0) return 'empty';
  if (Buffer.byteLength(filter) > c.maxTopicLengthBytes) return 'too_long';
  const levels = filter.split('/');
  if (levels.length > c.maxTopicLevels) return 'too_many_levels';
  for (let i = 0; i < levels.length; i++) {
    const l = levels[i] as string;
    if (l.includes('#') && (l !== '#' || i !== levels.length - 1)) return 'bad_wildcard';
    if (l.includes('+') && l !== '+') return 'bad_wildcard';
  }
  return undefined;
}

/** True when `topic` matches `filter`; wildcards in the first level skip `$` topics [MQTT-4.7.2-1]. */
export function topicMatches(filter: string, topic: string): boolean {
  if (filter === topic) return true;
  const f = filter.split('/');
  const t = topic.split('/');
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    const fl = f[i] as string;
    if (fl === '#') return true; // '#' also matches the parent level [MQTT-4.7.1-2]
    if (i >= t.length) return false;
    if (fl !== '+' && fl !== t[i]) return false;
  }
  return f.length === t.length;
}

/** A parsed subscription filter: plain, `$share/{group}/{filter}` or `$queue/{filter}`. */
export interface ParsedFilter {
  /** The filter topics are matched against. */
  filter: string;
  /** Shared subscription group, undefined for a plain subscription. */
  group: string | undefined;
}

/**
 * Splits a shared subscription (5.0 §4.8.2): the share name has no '/', '+' or '#'
 * [MQTT-4.8.2-2] and is followed by a filter [MQTT-4.8.2-1]. `$queue/f` is the group `$queue`.
 * Returns undefined when a `$share/` filter is malformed.
 */
export function parseFilter(full: string): ParsedFilter | undefined {
  if (full.startsWith('$share/')) {
    const slash = full.indexOf('/', 7);
    if (slash < 0) return undefined;
    const group = full.slice(7, slash);
    if (group.length === 0 || group.includes('+') || group.includes('#')) return undefined;
    const filter = full.slice(slash + 1);
    if (filter.length === 0) return undefined;
    return { filter, group };
  }
  if (full.startsWith('$queue/')) {
    const filter = full.slice(7);
    if (filter.length === 0) return undefined;
    return { filter, group: '$queue' };
  }
  return { filter: full, group: undefined };
}

export function hasWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}
