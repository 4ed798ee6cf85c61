import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';

/**
 * A fake of robust-server's meta membership API (/api/v1/meta/status, members, promote, remove,
 * transfer-leader) that follows the rules the real one enforces, for the operator's membership
 * tests: learners before voters, promotion refused (409 ERR_MEMBERSHIP_REFUSED) while a learner
 * lags, the last voter never removed, a leader only while a majority of voters is up, a voter
 * that is down falls behind. Whether a node is up comes from `isUp` (tests wire it to the pods).
 * Every change is recorded in `changes` so tests can check order and "one at a time".
 */
export interface FakeMetaOptions {
  /** Founding voters 1..initialVoters; the cluster bootstraps once a majority of them is up. */
  initialVoters: number;
  isUp: (id: number) => boolean;
  groups?: number;
  /** A new learner is this far behind… */
  initialLag?: number;
  /** …and catches up after this long (if up). */
  catchUpMs?: number;
  maxPromoteLag?: number;
  /** The bearer token required on every request (read per request); undefined = no auth. */
  token?: () => string | undefined;
}

export class FakeMeta {
  readonly clusterId = randomUUID();
  voters: number[] = [];
  learners: number[] = [];
  leader = 0;
  bootstrapped = false;
  readonly addresses = new Map<number, string>();
  readonly changes: { op: string; id: number; at: number; votersAfter: number[] }[] = [];
  /** Forced lag per node (overrides the model). */
  readonly forcedLag = new Map<number, number>();
  readonly #addedAt = new Map<number, number>();
  readonly #o: Required<Omit<FakeMetaOptions, 'token'>> & { token?: () => string | undefined };
  readonly #server: Server;
  #url = '';
  requests = 0;
  unauthorized = 0;
  /** Broker registrations by pod name, as `GET /api/v1/brokers` lists them. */
  readonly brokers = new Map<
    string,
    { nodeId: number; name: string; host: string; ports: Record<string, number>; version: string; startedAt: string }
  >();
  /** While true, `register` is ignored (brokers that run but have not reached meta). */
  holdRegistrations = false;

  constructor(o: FakeMetaOptions) {
    this.#o = { groups: 2, initialLag: 500, catchUpMs: 100, maxPromoteLag: 100, ...o };
    this.#server = createServer((req, res) => void this.#handle(req, res));
  }

  get url(): string {
    return this.#url;
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.#url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this.#url;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }

  lagOf(id: number): number {
    const forced = this.forcedLag.get(id);
    if (forced !== undefined) return forced;
    if (!this.#o.isUp(id)) return 10_000;
    const added = this.#addedAt.get(id);
    if (added === undefined) return 0;
    return Date.now() - added >= this.#o.catchUpMs ? 0 : this.#o.initialLag;
  }

  /** Recomputes bootstrap and leadership from which nodes are up. */
  #tick(): void {
    if (!this.bootstrapped) {
      const founders = Array.from({ length: this.#o.initialVoters }, (_, i) => i + 1);
      if (founders.filter((id) => this.#o.isUp(id)).length * 2 > founders.length) {
        this.bootstrapped = true;
        this.voters = founders;
      } else return;
    }
    const up = this.voters.filter((id) => this.#o.isUp(id));
    if (up.length * 2 <= this.voters.length) this.leader = 0;
    else if (!up.includes(this.leader)) this.leader = up[0] ?? 0;
  }

  #status(): unknown {
    const members = [...this.voters, ...this.learners];
    const g = (group: number) => ({
      group,
      leader: this.leader,
      term: 1,
      commit: 1000,
      applied: 1000,
      revision: 1000,
      role: 'leader',
      voters: [...this.voters],
      learners: [...this.learners],
      progress: members.map((id) => ({
        id,
        match: 1000 - this.lagOf(id),
        next: 1001,
        lag: id === this.leader ? 0 : this.lagOf(id),
        state: 'replicate',
        learner: this.learners.includes(id),
      })),
    });
    return {
      nodeId: this.leader,
      clusterId: this.clusterId,
      members: members.map((id) => ({ id, address: this.addresses.get(id) ?? `node-${id}:1228` })),
      groups: Array.from({ length: this.#o.groups }, (_, i) => g(i)),
    };
  }

  #record(op: string, id: number): void {
    this.changes.push({ op, id, at: Date.now(), votersAfter: [...this.voters] });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    const send = (status: number, body: unknown): void =>
      void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    const refuse = (message: string): void => send(409, { error: message, code: 'ERR_MEMBERSHIP_REFUSED', retriable: true });
    if (this.#o.token !== undefined && req.headers.authorization !== `Bearer ${this.#o.token}`)
      return send(401, { error: 'unauthorized', code: 'ERR_UNAUTHORIZED' });
    const url = new URL(req.url ?? '/', 'http://x');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>) : {};
    this.#tick();
    if (!this.bootstrapped || this.leader === 0) return send(503, { error: 'no meta leader', code: 'ERR_NOT_LEADER', retriable: true });
    const route = `${req.method} ${url.pathname}`;
    if (route === 'GET /api/v1/meta/status') return send(200, this.#status());
    if (route === 'GET /api/v1/brokers') return send(200, { brokers: [...this.brokers.values()] });
    if (route === 'POST /api/v1/meta/members') {
      const id = Number(body.id);
      if (typeof body.address !== 'string') return send(400, { error: '"address" must be host:port', code: 'ERR_CONFIG_INVALID' });
      if (this.voters.includes(id) || this.learners.includes(id)) return send(200, { added: id, as: 'learner' });
      this.addresses.set(id, body.address);
      this.learners.push(id);
      this.#addedAt.set(id, Date.now());
      this.#record('AddLearner', id);
      return send(200, { added: id, as: 'learner' });
    }
    if (route === 'POST /api/v1/meta/members/promote') {
      const id = Number(body.id);
      if (this.voters.includes(id)) return send(200, { promoted: id });
      if (!this.learners.includes(id)) return refuse(`node ${id} is not a learner of meta group 0`);
      const lag = this.lagOf(id);
      if (lag > this.#o.maxPromoteLag) return refuse(`node ${id} has not caught up in meta group 0 (behind by ${lag} entries)`);
      this.learners = this.learners.filter((x) => x !== id);
      this.voters = [...this.voters, id].sort((a, b) => a - b);
      this.#record('Promote', id);
      return send(200, { promoted: id });
    }
    if (route === 'DELETE /api/v1/meta/members') {
      const id = Number(url.searchParams.get('id'));
      if (this.voters.length === 1 && this.voters[0] === id) return refuse(`node ${id} is the last voter of meta group 0`);
      const rest = this.voters.filter((v) => v !== id);
      // A real cluster cannot commit a configuration change without a majority of the new configuration.
      if (this.voters.includes(id) && rest.filter((v) => this.#o.isUp(v)).length * 2 <= rest.length)
        return send(504, { error: 'membership change not committed', code: 'ERR_TIMEOUT', retriable: true });
      this.voters = rest;
      this.learners = this.learners.filter((v) => v !== id);
      this.addresses.delete(id);
      this.#addedAt.delete(id);
      if (this.leader === id) this.leader = this.voters.find((v) => this.#o.isUp(v)) ?? 0;
      this.#record('Remove', id);
      return send(200, { removed: id });
    }
    if (route === 'POST /api/v1/meta/transfer-leader') {
      const to = Number(body.to);
      if (!this.voters.includes(to) || !this.#o.isUp(to))
        return send(504, { error: `leadership did not move to node ${to}`, code: 'ERR_TIMEOUT', retriable: true });
      if (this.leader !== to) {
        this.leader = to;
        this.#record('TransferLeader', to);
      }
      return send(200, { group: body.group, leader: to });
    }
    return send(404, { error: `no such endpoint: ${url.pathname}` });
  }

  /** Registers a broker (what a broker does once it reaches meta); ignored while `holdRegistrations`. */
  register(name: string, host = '10.0.0.1'): void {
    if (this.holdRegistrations || this.brokers.has(name)) return;
    this.brokers.set(name, {
      nodeId: 1_000_000 + this.brokers.size,
      name,
      host,
      ports: { mqtt: 1883, kafka: 9092 },
      version: '0.1.0',
      startedAt: new Date().toISOString(),
    });
  }

  /** Revokes a registration (a stopping broker). */
  deregister(name: string): void {
    this.brokers.delete(name);
  }

  /** Simulates a node that lost its disk and came back empty (a learner-to-be; the voter entry stays until removed). */
  forget(id: number): void {
    this.#addedAt.delete(id);
  }
}
