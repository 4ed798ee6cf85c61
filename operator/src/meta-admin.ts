import { ErrorCode, RobustError } from '@robustmq/common';
import type { RaftView } from './membership.js';

/** GET /api/v1/meta/status as robust-server returns it (meta/src/client.ts MetaStatus). */
export interface MetaStatusResponse {
  nodeId: number;
  clusterId: string;
  members: { id: number; address: string }[];
  groups: {
    group: number;
    leader: number;
    voters: number[];
    learners: number[];
    progress: { id: number; match: number; lag: number; learner: boolean }[];
  }[];
}

/** One broker registration as `GET /api/v1/brokers` lists it; `name` is the broker's pod name. */
export interface BrokerRegistration {
  nodeId: number;
  name: string;
  host: string;
  ports: Record<string, number>;
  version: string;
  startedAt: string;
}

/** Meta's membership API as the operator uses it. */
export interface MetaAdmin {
  status(): Promise<MetaStatusResponse>;
  /** The brokers registered in meta (a stopping broker revokes its registration). */
  brokers(): Promise<BrokerRegistration[]>;
  addLearner(id: number, address: string): Promise<void>;
  promote(id: number): Promise<void>;
  remove(id: number): Promise<void>;
  transferLeader(group: number, to: number): Promise<void>;
}

/** An error answer of the admin API: `code` is the server's ERR_* code (409 ERR_MEMBERSHIP_REFUSED while a learner lags). */
export class MetaAdminError extends RobustError {
  readonly status: number;
  readonly serverCode: string;
  constructor(status: number, serverCode: string, message: string) {
    super(ErrorCode.MembershipRefused, message, { retriable: status >= 500 || serverCode === ErrorCode.MembershipRefused });
    this.status = status;
    this.serverCode = serverCode;
  }
}

export interface HttpMetaAdminOptions {
  /** Base URL of any meta voter's admin API (the `<c>-meta` Service), e.g. http://prod-meta.ns.svc:58080. */
  baseUrl: string;
  /** Base URL of one node's admin API: progress (lag) is only known on a group's leader. */
  nodeUrl?: (id: number) => string;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  timeoutMs?: number;
}

/** MetaAdmin over robust-server's admin REST API (/api/v1/meta/…). */
export class HttpMetaAdmin implements MetaAdmin {
  readonly #o: HttpMetaAdminOptions;
  constructor(o: HttpMetaAdminOptions) {
    this.#o = o;
  }

  async #call(method: string, path: string, body?: unknown, base = this.#o.baseUrl): Promise<unknown> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#o.token) headers.authorization = `Bearer ${this.#o.token}`;
    const res = await fetch(`${base}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(this.#o.timeoutMs ?? 10_000),
    });
    const text = await res.text();
    let json: Record<string, unknown>;
    try {
      json = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
    } catch {
      json = { error: text };
    }
    if (!res.ok)
      throw new MetaAdminError(res.status, String(json.code ?? ''), `meta ${method} ${path}: ${res.status} ${String(json.error ?? '')}`);
    return json;
  }

  async status(): Promise<MetaStatusResponse> {
    const s = (await this.#call('GET', '/api/v1/meta/status')) as MetaStatusResponse;
    const g0 = s.groups[0];
    // Progress is reported by a group's leader only: ask the leader when we hit a follower.
    if (g0 !== undefined && g0.progress.length === 0 && g0.leader !== 0 && g0.leader !== s.nodeId && this.#o.nodeUrl) {
      try {
        return (await this.#call('GET', '/api/v1/meta/status', undefined, this.#o.nodeUrl(g0.leader))) as MetaStatusResponse;
      } catch {
        return s;
      }
    }
    return s;
  }
  async brokers(): Promise<BrokerRegistration[]> {
    const r = (await this.#call('GET', '/api/v1/brokers')) as { brokers?: unknown };
    if (!Array.isArray(r.brokers)) throw new MetaAdminError(502, '', 'meta GET /api/v1/brokers: no "brokers" list in the answer');
    return (r.brokers as Partial<BrokerRegistration>[]).filter((b): b is BrokerRegistration => typeof b?.name === 'string');
  }
  async addLearner(id: number, address: string): Promise<void> {
    await this.#call('POST', '/api/v1/meta/members', { id, address });
  }
  async promote(id: number): Promise<void> {
    await this.#call('POST', '/api/v1/meta/members/promote', { id });
  }
  async remove(id: number): Promise<void> {
    await this.#call('DELETE', `/api/v1/meta/members?id=${id}`);
  }
  async transferLeader(group: number, to: number): Promise<void> {
    await this.#call('POST', '/api/v1/meta/transfer-leader', { group, to });
  }
}

/**
 * The planner's view of meta: group 0's leader (the metadata group), the members every group
 * agrees on, and each member's worst lag over all groups. A node counts as voter only when it
 * is a voter in every group, so a half-applied change reads as "not done".
 */
export function raftView(s: MetaStatusResponse): RaftView {
  const groups = s.groups;
  const g0 = groups[0];
  if (g0 === undefined) return { leader: 0, voters: [], learners: [], lag: new Map() };
  const inAll = (pick: (g: (typeof groups)[number]) => number[]) =>
    [...new Set(groups.flatMap(pick))].filter((id) => groups.every((g) => pick(g).includes(id))).sort((a, b) => a - b);
  const voters = inAll((g) => g.voters);
  const anywhere = [...new Set(groups.flatMap((g) => [...g.voters, ...g.learners]))];
  const learners = anywhere.filter((id) => !voters.includes(id)).sort((a, b) => a - b);
  const lag = new Map<number, number>();
  for (const g of groups) {
    for (const p of g.progress) lag.set(p.id, Math.max(lag.get(p.id) ?? 0, p.lag));
  }
  if (groups.some((g) => g.progress.length === 0)) {
    // Unknown in some group: keep only what every group reported.
    for (const id of [...lag.keys()]) if (!groups.every((g) => g.progress.some((p) => p.id === id))) lag.delete(id);
  }
  if (groups.some((g) => g.leader === 0)) return { leader: 0, voters, learners, lag };
  return { leader: g0.leader, voters, learners, lag };
}
