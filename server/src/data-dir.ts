import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync, unlinkSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';
import { ErrorCode, RobustError } from '@robustmq/common';

/**
 * The data directory of a node, held with a lock file so two processes never share one.
 * A lock left by a dead process (after kill -9) is taken over.
 */
export class DataDir {
  readonly path: string;
  readonly #lockPath: string;

  private constructor(path: string) {
    this.path = path;
    this.#lockPath = join(path, 'LOCK');
  }

  /** Creates the directory if needed, checks it is writable, and takes the lock. */
  static open(dir: string): DataDir {
    const path = resolve(dir);
    try {
      mkdirSync(path, { recursive: true });
      const probe = join(path, `.write-probe-${process.pid}`);
      writeFileSync(probe, 'ok');
      unlinkSync(probe);
    } catch (err) {
      throw new RobustError(ErrorCode.DataDirUnusable, `dataDir ${path}: not a writable directory (${(err as Error).message})`, {
        cause: err,
      });
    }
    const d = new DataDir(path);
    d.#lock();
    return d;
  }

  #lock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.#lockPath, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
        writeFileSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new RobustError(ErrorCode.DataDirUnusable, `dataDir ${this.path}: cannot create lock file (${(err as Error).message})`, {
            cause: err,
          });
        }
      }
      const holder = Number.parseInt(readFileSync(this.#lockPath, 'utf8'), 10);
      if (Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) {
        throw new RobustError(ErrorCode.DataDirLocked, `dataDir ${this.path}: in use by another robust-server (pid ${holder})`);
      }
      unlinkSync(this.#lockPath); // stale: its process is gone
    }
    throw new RobustError(ErrorCode.DataDirLocked, `dataDir ${this.path}: cannot take the lock`);
  }

  /** A subdirectory for one role (created). */
  sub(name: string): string {
    const p = join(this.path, name);
    mkdirSync(p, { recursive: true });
    return p;
  }

  release(): void {
    try {
      if (Number.parseInt(readFileSync(this.#lockPath, 'utf8'), 10) === process.pid) unlinkSync(this.#lockPath);
    } catch {
      // already gone
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
