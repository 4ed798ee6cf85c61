import { createHash } from 'node:crypto';
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode, RobustError, isErrno } from '@robustmq/common';

/** Maps a foreign fs error to StorageFull (ENOSPC, EDQUOT) or StorageIo; RobustErrors pass through. */
export function wrapFsError(err: unknown, what: string): RobustError {
  if (err instanceof RobustError) return err;
  if (isErrno(err, 'ENOSPC') || isErrno(err, 'EDQUOT')) {
    return new RobustError(ErrorCode.StorageFull, `storage full: ${what}`, { cause: err, retriable: true });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new RobustError(ErrorCode.StorageIo, `i/o error: ${what}: ${msg}`, { cause: err });
}

/** fsync of a directory, so a create, rename or unlink in it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Replaces `path` with `data` so that a crash leaves either the old or the new content. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    await fsyncDir(dirname(path));
  } catch (err) {
    throw wrapFsError(err, `write ${path}`);
  }
}

/** Directory name for a shard: URI-encoded, dots escaped (no "." or ".."), never longer than 200 chars. */
export function shardDirName(name: string): string {
  const enc = encodeURIComponent(name).replace(/\./g, '%2E').replace(/\*/g, '%2A');
  if (enc.length <= 200) return enc;
  return `${enc.slice(0, 180)}~${createHash('sha256').update(name).digest('hex').slice(0, 16)}`;
}
