import { createServer } from 'node:net';
import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { closeServer, listen } from '@robustmq/common';

/**
 * Start-up checks on the part of a configuration that validated, run when another part did
 * not, so the one error message names every problem: ports already in use and an unusable
 * data directory. Nothing is kept open.
 */
export async function checkPorts(partial: Readonly<Record<string, unknown>>): Promise<string[]> {
  const problems: string[] = [];
  const host = typeof partial.bindHost === 'string' ? partial.bindHost : '0.0.0.0';
  const roles = Array.isArray(partial.roles) ? (partial.roles as string[]) : ['meta', 'journal', 'broker'];
  const wanted: [string, string][] = [['http', 'httpPort']];
  if (roles.includes('meta') || roles.includes('journal')) wanted.push(['grpc', 'grpcPort']);
  if (roles.includes('broker')) wanted.push(['mqtt', 'mqttPort'], ['kafka', 'kafkaPort']);
  for (const [name, key] of wanted) {
    const port = partial[key];
    if (typeof port !== 'number' || port === 0) continue;
    const server = createServer();
    try {
      await listen(server, name, host, port);
    } catch (err) {
      problems.push(`${key}: ${(err as Error).message}`);
    } finally {
      await closeServer(server);
    }
  }
  if (typeof partial.dataDir === 'string') {
    const dir = resolve(partial.dataDir);
    try {
      if (!statSync(dir).isDirectory()) problems.push(`dataDir ${dir}: not a directory`);
      else accessSync(dir, constants.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') problems.push(`dataDir ${dir}: not a writable directory (${code ?? (err as Error).message})`);
    }
  }
  return problems;
}
