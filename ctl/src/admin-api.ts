/** A failure to report to the user; exitCode 2 = bad usage, 1 = the request failed. */
export class CtlError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** The admin HTTP API of one node. Errors become CtlErrors carrying the server's message. */
export class AdminApi {
  readonly server: string;
  readonly #timeoutMs: number;
  readonly #token: string | undefined;

  /** `token` is sent as `Authorization: Bearer …` (the admin API under /api/v1 requires it). */
  constructor(server: string, timeoutMs: number, token?: string) {
    this.server = server;
    this.#timeoutMs = timeoutMs;
    this.#token = token;
  }

  async fetch(method: string, path: string, init: { body?: string | Buffer; stream?: boolean } = {}): Promise<Response> {
    try {
      return await fetch(`http://${this.server}${path}`, {
        method,
        ...(this.#token !== undefined ? { headers: { authorization: `Bearer ${this.#token}` } } : {}),
        ...(init.body !== undefined ? { body: init.body } : {}),
        ...(init.stream === true ? {} : { signal: AbortSignal.timeout(this.#timeoutMs) }),
      });
    } catch (err) {
      const e = err as Error;
      const cause =
        e.cause instanceof Error ? e.cause.message : e.name === 'TimeoutError' ? `no answer within ${this.#timeoutMs} ms` : e.message;
      throw new CtlError(`cannot reach ${this.server}: ${cause}`);
    }
  }

  async request(
    method: string,
    path: string,
    opts: { body?: string | Buffer; allowStatus?: number[] } = {},
  ): Promise<{ status: number; body: unknown }> {
    const res = await this.fetch(method, path, opts);
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    if (res.status >= 400 && !(opts.allowStatus ?? []).includes(res.status)) {
      const b = body as { error?: string; code?: string };
      const hint =
        res.status === 401
          ? '\n(pass the admin token: --token, --token-file or ROBUSTMQ_CTL_TOKEN; the server wrote it to <dataDir>/admin-token)'
          : '';
      throw new CtlError(`${method} ${path}: ${res.status} ${b.error ?? text}${b.code ? ` (${b.code})` : ''}${hint}`);
    }
    return { status: res.status, body };
  }
}
