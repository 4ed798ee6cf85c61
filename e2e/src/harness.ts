import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The admin API token file robust-server creates in its data directory on first start. */
export function adminTokenFile(dataDir: string): string {
  return join(dataDir, 'admin-token');
}

/** `Authorization: Bearer …` for the admin API of the server running on `dataDir`. */
export function adminHeaders(dataDir: string): Record<string, string> {
  return { authorization: `Bearer ${readFileSync(adminTokenFile(dataDir), 'utf8').trim()}` };
}

/** The repository root (e2e/dist/src/harness.js → ../../..). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const ROBUST_SERVER = `${REPO_ROOT}bin/robust-server`;

/** Every listener of robust-server on a free port (port 0). */
export const ANY_PORTS: readonly string[] = [
  '--http-port',
  '0',
  '--mqtt-port',
  '0',
  '--kafka-port',
  '0',
  '--grpc-port',
  '0',
  '--ws-port',
  '0',
];
/** ANY_PORTS with anonymous MQTT access allowed (it is off by default). */
export const ANY_PORTS_ANONYMOUS: readonly string[] = [...ANY_PORTS, '--auth-allow-anonymous', 'true'];

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 10 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export interface RunningServer {
  proc: ChildProcess;
  ports: Record<string, number>;
  /** Every JSON log line seen so far. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** Sends a signal and resolves with the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Spawns bin/robust-server with `args` on loopback and waits for its "listening" line.
 * Rejects with the server's stderr if it exits first or does not listen within `timeoutMs`.
 */
export async function startServer(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunningServer> {
  const proc = spawn(process.execPath, [ROBUST_SERVER, ...args], {
    env: { ...process.env, ROBUSTMQ_BIND_HOST: '127.0.0.1', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let err = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = once(proc, 'exit').then(([code]) => code as number | null);
  const listening = new Promise<Record<string, number>>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
    rl.on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'listening') resolve(entry.ports as Record<string, number>);
      } catch {
        logs.push({ raw: line });
      }
    });
    void exited.then((code) => reject(new Error(`robust-server exited with ${code} before listening:\n${err}`)));
    setTimeout(
      () => reject(new Error(`robust-server did not listen within ${opts.timeoutMs ?? 15_000} ms:\n${err}`)),
      opts.timeoutMs ?? 15_000,
    ).unref();
  });
  let ports: Record<string, number>;
  try {
    ports = await listening;
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  return {
    proc,
    ports,
    logs,
    stderr: () => err,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

export interface ProgramResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one of the repository's programs (bin/robust-server, bin/robust-ctl, …) to completion. */
export async function runProgram(program: string, args: string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<ProgramResult> {
  const proc = spawn(process.execPath, [`${REPO_ROOT}bin/${program}`, ...args], {
    env: { ...process.env, ...env },
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  if (input !== undefined) proc.stdin?.end(input);
  let stdout = '';
  let stderr = '';
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code] = await once(proc, 'exit');
  return { code: code as number | null, stdout, stderr };
}

/** Runs bin/robust-server to completion and returns its exit code and output. */
export function runServer(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProgramResult> {
  return runProgram('robust-server', args, env);
}

/** Runs bin/robust-ctl to completion. */
export function runCtl(args: string[], env: NodeJS.ProcessEnv = {}, input?: string): Promise<ProgramResult> {
  return runProgram('robust-ctl', args, env, input);
}

/**
 * Polls /health/ready until it answers 200 (roles finish starting after the listening line:
 * meta elects its leaders, the broker opens its stores) and returns that answer.
 */
export async function waitReady(httpPort: number, timeoutMs = 15_000): Promise<Record<string, unknown>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${httpPort}/health/ready`);
    const body = (await res.json()) as Record<string, unknown>;
    if (res.status === 200) return body;
    if (Date.now() > end) throw new Error(`not ready within ${timeoutMs} ms: ${JSON.stringify(body)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
