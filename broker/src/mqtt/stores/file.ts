import { open, readFile, rename, mkdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isErrno } from '@robustmq/common';
import type { PublishProperties } from '../codec.js';
import { MemoryInboxStore, MemoryRetainStore, MemorySessionStore } from './memory.js';
import type { InboxEntry, MqttStores, Qos2Change, SessionRecord, StoredMessage } from './types.js';

/**
 * How this works: each store is its in-memory twin plus an append-only JSON-lines log. Every
 * change is one line; lines written in the same tick share one write and one fdatasync (group
 * commit), and a change's promise resolves after that fsync. Opening replays the log (a torn
 * last line from a crash is ignored), then compacts it: the live state is written to a temporary
 * file, fsynced, and renamed over the log.
 */
class AppendLog {
  readonly path: string;
  #fh: FileHandle;
  /** Lines written since the log was opened or rewritten. */
  written = 0;
  #lines: string[] = [];
  #waiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  #flushing = false;
  #closed = false;

  private constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  /** Replays `path` into `apply`, rewrites it as `compact()` returns, and opens it for appends. */
  static async open(path: string, apply: (rec: Record<string, unknown>) => void, compact: () => unknown[]): Promise<AppendLog> {
    let text = '';
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
    for (const line of text.split('\n')) {
      if (line.length === 0) continue;
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue; // a torn write at the tail after a crash
      }
      apply(rec);
    }
    const tmp = `${path}.tmp`;
    const out = await open(tmp, 'w');
    try {
      const live = compact().map((r) => JSON.stringify(r) + '\n');
      if (live.length > 0) await out.write(live.join(''));
      await out.datasync();
    } finally {
      await out.close();
    }
    await rename(tmp, path);
    return new AppendLog(path, await open(path, 'a'));
  }

  /**
   * Replaces the log by the records `live()` returns (the live state, every change appended so
   * far included) while it runs: no line is being written meanwhile, and lines appended during
   * the rewrite go to the new file after it. A line whose change is in `live()` may still be
   * appended after it (its caller was between the change and `append`): replaying it again is
   * harmless, every record sets or removes a state.
   */
  async rewrite(live: () => unknown[]): Promise<void> {
    while (this.#flushing) await new Promise((r) => setImmediate(r));
    if (this.#closed) return;
    this.#flushing = true;
    try {
      const tmp = `${this.path}.tmp`;
      const out = await open(tmp, 'w');
      try {
        const lines = live().map((r) => JSON.stringify(r) + '\n');
        if (lines.length > 0) await out.write(lines.join(''));
        await out.datasync();
        await rename(tmp, this.path);
      } catch (err) {
        await out.close();
        throw err;
      }
      // The open handle is the renamed file: appends go on from its end.
      const old = this.#fh;
      this.#fh = out;
      this.written = 0;
      await old.close();
    } finally {
      if (this.#lines.length > 0) void this.#flush();
      else this.#flushing = false;
    }
  }

  /** Appends one record; resolves once it is on disk. */
  append(rec: unknown): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`${this.path}: log closed`));
    this.#lines.push(JSON.stringify(rec) + '\n');
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      if (!this.#flushing) {
        this.#flushing = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    while (this.#lines.length > 0) {
      const lines = this.#lines;
      const waiters = this.#waiters;
      this.#lines = [];
      this.#waiters = [];
      try {
        await this.#fh.write(lines.join(''));
        await this.#fh.datasync();
        this.written += lines.length;
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err as Error);
      }
    }
    this.#flushing = false;
  }

  async close(): Promise<void> {
    while (this.#flushing) await new Promise((r) => setImmediate(r));
    this.#closed = true;
    await this.#fh.close();
  }
}

interface MessageJson {
  t: string;
  p: string;
  q: 0 | 1 | 2;
  r: boolean;
  pr?: Record<string, unknown>;
  e?: number;
  at: number;
  pub: string;
}

export function messageToJson(m: StoredMessage): MessageJson {
  const j: MessageJson = { t: m.topic, p: m.payload.toString('base64'), q: m.qos, r: m.retain, at: m.receivedAt, pub: m.publisherId };
  if (m.properties !== undefined) {
    const { correlationData, ...rest } = m.properties;
    j.pr = correlationData === undefined ? rest : { ...rest, correlationData: correlationData.toString('base64') };
  }
  if (m.expiresAt !== undefined) j.e = m.expiresAt;
  return j;
}

export function messageFromJson(j: MessageJson): StoredMessage {
  const m: StoredMessage = { topic: j.t, payload: Buffer.from(j.p, 'base64'), qos: j.q, retain: j.r, receivedAt: j.at, publisherId: j.pub };
  if (j.pr !== undefined) {
    const { correlationData, ...rest } = j.pr as PublishProperties & { correlationData?: string };
    m.properties = correlationData === undefined ? rest : { ...rest, correlationData: Buffer.from(correlationData, 'base64') };
  }
  if (j.e !== undefined) m.expiresAt = j.e;
  return m;
}

type SessionJson = Omit<SessionRecord, 'will'> & { will?: { message: MessageJson; delaySec: number } };

export function sessionToJson(r: SessionRecord): SessionJson {
  const { will, ...rest } = r;
  return will === undefined ? rest : { ...rest, will: { message: messageToJson(will.message), delaySec: will.delaySec } };
}

export function sessionFromJson(j: SessionJson): SessionRecord {
  const { will, ...rest } = j;
  return will === undefined ? rest : { ...rest, will: { message: messageFromJson(will.message), delaySec: will.delaySec } };
}

/** Session records in `sessions.jsonl`. */
export class FileSessionStore extends MemorySessionStore {
  #log: AppendLog | undefined;

  static async open(dir: string): Promise<FileSessionStore> {
    const s = new FileSessionStore();
    s.#log = await AppendLog.open(
      join(dir, 'sessions.jsonl'),
      (rec) => {
        if (rec.op === 'put') s.records.set((rec.s as SessionJson).clientId, sessionFromJson(rec.s as SessionJson));
        else if (rec.op === 'del') s.records.delete(rec.c as string);
      },
      () => [...s.records.values()].map((r) => ({ op: 'put', s: sessionToJson(r) })),
    );
    return s;
  }

  override async put(record: SessionRecord): Promise<void> {
    await super.put(record);
    await this.#log?.append({ op: 'put', s: sessionToJson(record) });
  }
  override async delete(clientId: string): Promise<void> {
    await super.delete(clientId);
    await this.#log?.append({ op: 'del', c: clientId });
  }
  override async close(): Promise<void> {
    await this.#log?.close();
  }
}

interface EntryJson {
  id: number;
  m: MessageJson;
  q: 1 | 2;
  r: boolean;
  s?: number[];
  pid?: number;
}

export function entryToJson(e: InboxEntry): EntryJson {
  const j: EntryJson = { id: e.id, m: messageToJson(e.message), q: e.qos, r: e.retain };
  if (e.subscriptionIds !== undefined) j.s = e.subscriptionIds;
  if (e.packetId !== undefined) j.pid = e.packetId;
  return j;
}

export function entryFromJson(j: EntryJson): InboxEntry {
  const e: InboxEntry = { id: j.id, message: messageFromJson(j.m), qos: j.q, retain: j.r };
  if (j.s !== undefined) e.subscriptionIds = j.s;
  if (j.pid !== undefined) e.packetId = j.pid;
  return e;
}

/** Lines of a store's live state: entries per client, then QoS 2 ids. */
function inboxRecords(store: MemoryInboxStore): unknown[] {
  const q2 = [...store.qos2Ids].flatMap(([c, st]) => [
    ...[...st.received].map((packetId) => ({ op: 'q2', c, ch: { kind: 'received', packetId } })),
    ...[...st.released].map((packetId) => ({ op: 'q2', c, ch: { kind: 'pubrel', packetId, inboxId: 0 } })),
  ]);
  return [...[...store.inboxes].map(([c, box]) => ({ op: 'add', c, e: [...box.values()].map(entryToJson) })), ...q2];
}

/** The inbox log is rewritten once it holds this many lines and 4× its live records. */
const COMPACT_MIN_LINES = 10_000;

/**
 * Session inboxes in `inbox.jsonl`. Every message of a persistent session is a line and its
 * acknowledgement another, so the log is also rewritten while running, once most of it is dead.
 */
export class FileInboxStore extends MemoryInboxStore {
  #log: AppendLog | undefined;
  #nextCheck = COMPACT_MIN_LINES;
  #compacting = false;

  static async open(dir: string): Promise<FileInboxStore> {
    const s = new FileInboxStore();
    const mem = new MemoryInboxStore();
    s.#log = await AppendLog.open(
      join(dir, 'inbox.jsonl'),
      (rec) => {
        const c = rec.c as string;
        if (rec.op === 'add') void mem.append(c, (rec.e as EntryJson[]).map(entryFromJson));
        else if (rec.op === 'ack') void mem.ack(c, rec.ids as number[]);
        else if (rec.op === 'sent') void mem.sent(c, rec.s as Array<[number, number]>);
        else if (rec.op === 'trim') void mem.trim(c, rec.before as number);
        else if (rec.op === 'q2') void mem.qos2(c, rec.ch as Qos2Change);
        else if (rec.op === 'del') void mem.delete(c);
      },
      () => {
        for (const [c, box] of mem.inboxes) s.inboxes.set(c, box);
        for (const [c, st] of mem.qos2Ids) s.qos2Ids.set(c, st);
        return inboxRecords(s);
      },
    );
    return s;
  }

  /** Rewrites the log in the background when it is mostly dead lines (checked every 4096 lines). */
  #maybeCompact(): void {
    const log = this.#log;
    if (log === undefined || this.#compacting || log.written < this.#nextCheck) return;
    this.#nextCheck = log.written + 4096;
    let live = 0;
    for (const box of this.inboxes.values()) live += box.size + 1;
    for (const st of this.qos2Ids.values()) live += st.received.size + st.released.size;
    if (log.written < Math.max(COMPACT_MIN_LINES, 4 * live)) return;
    this.#compacting = true;
    void log
      .rewrite(() => inboxRecords(this))
      // A failed rewrite leaves the log as it was (appends go on to it); the next check retries.
      .catch(() => undefined)
      .finally(() => {
        this.#compacting = false;
        this.#nextCheck = log.written + 4096;
      });
  }

  override async append(clientId: string, entries: readonly InboxEntry[]): Promise<void> {
    await super.append(clientId, entries);
    await this.#log?.append({ op: 'add', c: clientId, e: entries.map(entryToJson) });
  }
  override async sent(clientId: string, sent: ReadonlyArray<readonly [number, number]>): Promise<void> {
    await super.sent(clientId, sent);
    await this.#log?.append({ op: 'sent', c: clientId, s: sent });
  }
  override async ack(clientId: string, ids: readonly number[]): Promise<void> {
    await super.ack(clientId, ids);
    await this.#log?.append({ op: 'ack', c: clientId, ids });
    this.#maybeCompact();
  }
  override async trim(clientId: string, beforeId: number): Promise<void> {
    await super.trim(clientId, beforeId);
    await this.#log?.append({ op: 'trim', c: clientId, before: beforeId });
  }
  override async qos2(clientId: string, change: Qos2Change): Promise<void> {
    await super.qos2(clientId, change);
    // One line: a `pubrel` and the ack of its inbox entry are replayed together or not at all.
    await this.#log?.append({ op: 'q2', c: clientId, ch: change });
  }
  override async delete(clientId: string): Promise<void> {
    await super.delete(clientId);
    await this.#log?.append({ op: 'del', c: clientId });
  }
  override async close(): Promise<void> {
    await this.#log?.close();
  }
}

/** Retained messages in `retained.jsonl`. */
export class FileRetainStore extends MemoryRetainStore {
  #log: AppendLog | undefined;

  static async open(dir: string): Promise<FileRetainStore> {
    const s = new FileRetainStore();
    s.#log = await AppendLog.open(
      join(dir, 'retained.jsonl'),
      (rec) => {
        if (rec.op === 'set') {
          const m = messageFromJson(rec.m as MessageJson);
          s.messages.set(m.topic, m);
        } else if (rec.op === 'clear') s.messages.delete(rec.t as string);
      },
      () => [...s.messages.values()].map((m) => ({ op: 'set', m: messageToJson(m) })),
    );
    return s;
  }

  override async set(message: StoredMessage): Promise<void> {
    await super.set(message);
    await this.#log?.append({ op: 'set', m: messageToJson(message) });
  }
  override async clear(topic: string): Promise<void> {
    await super.clear(topic);
    await this.#log?.append({ op: 'clear', t: topic });
  }
  override async close(): Promise<void> {
    await this.#log?.close();
  }
}

/** File-backed stores under `dir` (created if missing). */
export async function openFileStores(dir: string): Promise<MqttStores> {
  await mkdir(dir, { recursive: true });
  const [sessions, inbox, retain] = await Promise.all([FileSessionStore.open(dir), FileInboxStore.open(dir), FileRetainStore.open(dir)]);
  return { sessions, inbox, retain };
}
