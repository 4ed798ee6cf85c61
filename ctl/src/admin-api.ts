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

  constructor(server: string, timeoutMs: number) {
    this.server = server;
    this.#timeoutMs = timeoutMs;
  }

  async fetch(method: string, path: string, init: { body?: string | Buffer; stream?: boolean } = {}): Promise<Response> {
    try {
      return await fetch(`http://${this.server}${path}`, {
        method,
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
      throw new CtlError(`${method} ${path}: ${res.status} ${b.error ?? text}${b.code ? ` (${b.code})` : ''}`);
    }
    return { status: res.status, body };
  }
}
