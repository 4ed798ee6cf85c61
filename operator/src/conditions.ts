import type { Condition } from './api/types.js';

export const ConditionType = {
  Ready: 'Ready',
  Reconciled: 'Reconciled',
  MetaQuorumHealthy: 'MetaQuorumHealthy',
  MetaMembershipSynced: 'MetaMembershipSynced',
  JournalReady: 'JournalReady',
  BrokersAvailable: 'BrokersAvailable',
  CertificatesValid: 'CertificatesValid',
  Progressing: 'Progressing',
  Paused: 'Paused',
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export type ConditionInput = { type: ConditionType; status: boolean | 'Unknown'; reason: string; message?: string };

/** RFC 3339 to the second, as metav1.Time is written. */
export const nowTime = (now = new Date()): string => now.toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * Merges computed conditions into the previous list (a list-map keyed by type, in a fixed order):
 * lastTransitionTime moves only when the status flips, as metav1.Condition requires.
 */
export function mergeConditions(prev: Condition[] | undefined, next: ConditionInput[], generation: number, now = new Date()): Condition[] {
  const order = Object.values(ConditionType) as string[];
  const out = next.map((c): Condition => {
    const status = c.status === 'Unknown' ? 'Unknown' : c.status ? 'True' : 'False';
    const old = prev?.find((p) => p.type === c.type);
    return {
      type: c.type,
      status,
      reason: c.reason,
      message: c.message ?? '',
      observedGeneration: generation,
      lastTransitionTime: old !== undefined && old.status === status ? old.lastTransitionTime : nowTime(now),
    };
  });
  return out.sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type));
}

export function conditionOf(list: Condition[] | undefined, type: ConditionType): Condition | undefined {
  return list?.find((c) => c.type === type);
}
