import type { EncodedPublish } from './codec.js';
import type { StoredMessage } from './stores/types.js';

/**
 * A message routed by the engine: what was published plus a cache of its encodings, so a
 * PUBLISH going to many subscribers is encoded once per (version, QoS, retain, properties)
 * variant and the bytes are reused (QoS 1/2 copies only patch the packet identifier).
 */
export interface Message extends StoredMessage {
  cache?: Map<string, EncodedPublish>;
}

/** Seconds left before `m` expires (rounded up), or undefined when it never expires. */
export function remainingExpirySec(m: StoredMessage, now: number): number | undefined {
  if (m.expiresAt === undefined) return undefined;
  return Math.max(0, Math.ceil((m.expiresAt - now) / 1000));
}

export function isExpired(m: StoredMessage, now: number): boolean {
  return m.expiresAt !== undefined && m.expiresAt <= now;
}
