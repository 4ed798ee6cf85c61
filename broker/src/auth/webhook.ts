import { createHash } from 'node:crypto';
import type { Logger } from '@robustmq/common';
import type { WebhookConfig } from './config.js';
import { aclRulesFrom, type AclRule } from './records.js';

export interface WebhookRequest {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  peerAddress: string;
  listener: string;
}

export interface WebhookAnswer {
  result: 'allow' | 'deny' | 'ignore';
  superuser: boolean;
  rules: AclRule[];
  /** Why a deny happened when the hook could not answer (timeout, status, bad body). */
  failure?: string;
}

/**
 * Asks an HTTP endpoint: `POST {clientId, username, password, peerAddress, listener}` (password
 * as UTF-8 text), answer `200 {"result": "allow" | "deny" | "ignore", "superuser"?, "acl"?}`.
 * Answers are cached for `cacheTtlMs` per (client id, username, password, address), so a
 * reconnect storm does not become a request storm. A timeout, a transport error, a non-2xx
 * status or a body that is not one of those answers is a deny: the hook fails closed.
 */
export class AuthWebhook {
  readonly #c: WebhookConfig;
  readonly #log: Logger;
  readonly #cache = new Map<string, { at: number; answer: WebhookAnswer }>();

  constructor(c: WebhookConfig, log: Logger) {
    this.#c = c;
    this.#log = log;
  }

  async check(req: WebhookRequest): Promise<WebhookAnswer> {
    const key = createHash('sha256')
      .update(JSON.stringify([req.clientId, req.username ?? null, req.password?.toString('base64') ?? null, req.peerAddress, req.listener]))
      .digest('base64');
    const now = Date.now();
    const hit = this.#cache.get(key);
    if (hit !== undefined && now - hit.at < this.#c.cacheTtlMs) return hit.answer;
    const answer = await this.#ask(req);
    if (answer.failure === undefined) {
      this.#cache.delete(key);
      if (this.#cache.size >= this.#c.cacheMaxEntries) {
        const oldest = this.#cache.keys().next().value;
        if (oldest !== undefined) this.#cache.delete(oldest);
      }
      this.#cache.set(key, { at: now, answer });
    }
    return answer;
  }

  async #ask(req: WebhookRequest): Promise<WebhookAnswer> {
    const deny = (failure: string): WebhookAnswer => {
      this.#log.warn({ url: this.#c.url, clientId: req.clientId, failure }, 'auth webhook failed; denying');
      return { result: 'deny', superuser: false, rules: [], failure };
    };
    let res: Response;
    try {
      res = await fetch(this.#c.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          clientId: req.clientId,
          username: req.username ?? null,
          password: req.password?.toString('utf8') ?? null,
          peerAddress: req.peerAddress,
          listener: req.listener,
        }),
        signal: AbortSignal.timeout(this.#c.timeoutMs),
      });
    } catch (err) {
      return deny((err as Error).name === 'TimeoutError' ? `no answer within ${this.#c.timeoutMs} ms` : (err as Error).message);
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      return deny(`status ${res.status}, body is not JSON`);
    }
    if (res.status < 200 || res.status > 299) return deny(`status ${res.status}`);
    const b = body as { result?: unknown; superuser?: unknown; acl?: unknown };
    if (b.result !== 'allow' && b.result !== 'deny' && b.result !== 'ignore') return deny('answer has no result allow/deny/ignore');
    const rules = aclRulesFrom(b.acl, 'hook');
    return { result: b.result, superuser: b.superuser === true, rules };
  }
}
