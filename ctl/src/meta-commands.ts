import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { AdminApi, CtlError } from './admin-api.js';
import { printTable } from './table.js';

export const META_HELP = `  robust-ctl meta status                     meta cluster: members and each Raft group's leader, term, commit, lag
  robust-ctl meta get KEY [--prefix] [--limit N]
  robust-ctl meta put KEY VALUE [--lease ID]
  robust-ctl meta del KEY [--prefix]
  robust-ctl meta watch KEY [--prefix] [--rev N]   stream changes until interrupted
  robust-ctl meta lease grant TTL_MS
  robust-ctl meta member add ID HOST:PORT | promote ID | remove ID
  robust-ctl meta transfer-leader GROUP TO_ID`;

interface Opts {
  json?: boolean | undefined;
  prefix?: boolean | undefined;
  limit?: string | undefined;
  rev?: string | undefined;
  lease?: string | undefined;
}

function usage(msg: string): never {
  throw new CtlError(`${msg}\nUsage:\n${META_HELP}`, 2);
}

function query(params: Record<string, string | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) q.set(k, v);
  return q.toString();
}

interface KvJson {
  key: string;
  value?: string;
  valueBase64?: string;
  modRevision: number;
  version: number;
  lease: number;
}

/** robust-ctl meta …: returns the exit code. */
export async function runMeta(api: AdminApi, args: string[], o: Opts): Promise<number> {
  const [sub, ...rest] = args;
  const out = (v: unknown): void => void process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  switch (sub) {
    case 'status': {
      const { body } = await api.request('GET', '/api/v1/meta/status');
      if (o.json === true) return (out(body), 0);
      const s = body as {
        nodeId: number;
        clusterId: string;
        members: { id: number; address: string }[];
        groups: {
          group: number;
          leader: number;
          term: number;
          commit: number;
          applied: number;
          voters: number[];
          learners: number[];
          progress: { id: number; lag: number }[];
        }[];
      };
      process.stdout.write(`cluster ${s.clusterId}, answered by node ${s.nodeId}\n\n`);
      printTable(
        ['MEMBER', 'ADDRESS'],
        s.members.map((m) => [m.id, m.address]),
      );
      process.stdout.write('\n');
      printTable(
        ['GROUP', 'LEADER', 'TERM', 'COMMIT', 'APPLIED', 'VOTERS', 'LEARNERS', 'MAX LAG'],
        s.groups.map((g) => [
          g.group,
          g.leader || '-',
          g.term,
          g.commit,
          g.applied,
          g.voters.join(','),
          g.learners.join(',') || '-',
          g.progress.length > 0 ? Math.max(...g.progress.map((p) => p.lag)) : '-',
        ]),
      );
      return 0;
    }
    case 'get': {
      const [key] = rest;
      if (key === undefined && o.prefix !== true) usage('meta get needs a KEY');
      const { body } = await api.request(
        'GET',
        `/api/v1/meta/kv?${query({ key: key ?? '', prefix: o.prefix ? 'true' : undefined, limit: o.limit })}`,
      );
      const r = body as { kvs: KvJson[]; count: number; more: boolean; revision: number };
      if (o.json === true) return (out(r), 0);
      if (o.prefix !== true) {
        const kv = r.kvs[0];
        if (kv === undefined) throw new CtlError(`key not found: ${key}`);
        process.stdout.write(`${kv.value ?? kv.valueBase64}\n`);
        return 0;
      }
      printTable(
        ['KEY', 'VALUE', 'REVISION', 'VERSION', 'LEASE'],
        r.kvs.map((kv) => [kv.key, kv.value ?? `base64:${kv.valueBase64}`, kv.modRevision, kv.version, kv.lease || '-']),
      );
      if (r.more) process.stdout.write(`… ${r.count - r.kvs.length} more\n`);
      return 0;
    }
    case 'put': {
      const [key, value] = rest;
      if (key === undefined || value === undefined) usage('meta put needs KEY and VALUE');
      const { body } = await api.request('PUT', `/api/v1/meta/kv?${query({ key, lease: o.lease })}`, { body: value });
      if (o.json === true) out(body);
      else process.stdout.write(`OK revision ${(body as { revision: number }).revision}\n`);
      return 0;
    }
    case 'del': {
      const [key] = rest;
      if (key === undefined && o.prefix !== true) usage('meta del needs a KEY');
      const { body } = await api.request('DELETE', `/api/v1/meta/kv?${query({ key: key ?? '', prefix: o.prefix ? 'true' : undefined })}`);
      if (o.json === true) out(body);
      else process.stdout.write(`deleted ${(body as { deleted: number }).deleted}\n`);
      return 0;
    }
    case 'watch': {
      const [key] = rest;
      if (key === undefined && o.prefix !== true) usage('meta watch needs a KEY');
      const res = await api.fetch(
        'GET',
        `/api/v1/meta/watch?${query({ key: key ?? '', prefix: o.prefix ? 'true' : undefined, startRevision: o.rev })}`,
        { stream: true },
      );
      if (res.status !== 200 || res.body === null) {
        const b = (await res.json()) as { error?: string };
        throw new CtlError(`watch failed: ${res.status} ${b.error ?? ''}`);
      }
      const lines = createInterface({ input: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream) });
      let first = true;
      for await (const line of lines) {
        if (first) {
          first = false;
          continue; // the header line
        }
        const b = JSON.parse(line) as { revision?: number; events?: ({ type: string } & KvJson)[]; error?: string };
        if (b.error !== undefined) throw new CtlError(`watch ended: ${b.error}`);
        if (o.json === true) process.stdout.write(`${line}\n`);
        else
          for (const e of b.events ?? [])
            process.stdout.write(
              `${b.revision} ${e.type.toUpperCase()} ${e.key}${e.type === 'put' ? ` ${e.value ?? e.valueBase64}` : ''}\n`,
            );
      }
      return 0;
    }
    case 'lease': {
      const [what, ttl] = rest;
      if (what !== 'grant' || ttl === undefined) usage('meta lease grant TTL_MS');
      const { body } = await api.request('POST', '/api/v1/meta/leases', { body: JSON.stringify({ ttlMs: Number(ttl) }) });
      if (o.json === true) out(body);
      else process.stdout.write(`lease ${(body as { id: number }).id} granted, ttl ${ttl} ms\n`);
      return 0;
    }
    case 'member': {
      const [what, id, address] = rest;
      if (what === 'add' && id !== undefined && address !== undefined) {
        await api.request('POST', '/api/v1/meta/members', { body: JSON.stringify({ id: Number(id), address }) });
        process.stdout.write(`node ${id} added as a learner\n`);
      } else if (what === 'promote' && id !== undefined) {
        await api.request('POST', '/api/v1/meta/members/promote', { body: JSON.stringify({ id: Number(id) }) });
        process.stdout.write(`node ${id} promoted to voter\n`);
      } else if (what === 'remove' && id !== undefined) {
        await api.request('DELETE', `/api/v1/meta/members?${query({ id })}`);
        process.stdout.write(`node ${id} removed\n`);
      } else usage('meta member add ID HOST:PORT | promote ID | remove ID');
      return 0;
    }
    case 'transfer-leader': {
      const [group, to] = rest;
      if (group === undefined || to === undefined) usage('meta transfer-leader GROUP TO_ID');
      await api.request('POST', '/api/v1/meta/transfer-leader', { body: JSON.stringify({ group: Number(group), to: Number(to) }) });
      process.stdout.write(`group ${group} now led by node ${to}\n`);
      return 0;
    }
    default:
      return usage(sub === undefined ? 'missing meta command' : `unknown meta command: ${sub}`);
  }
}
