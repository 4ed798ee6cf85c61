import { statSync, watch, type FSWatcher } from 'node:fs';

export interface FileWatch {
  close(): void;
}

function signature(files: readonly string[]): string {
  return files
    .map((f) => {
      try {
        const s = statSync(f);
        return `${s.mtimeMs}:${s.size}:${s.ino}`;
      } catch {
        return 'missing';
      }
    })
    .join('|');
}

/**
 * Calls `onChange` once the files changed (content, replacement by rename, as cert-manager and
 * Kubernetes secret volumes do). fs.watch gives a prompt signal where it works; a poll every
 * `pollMs` catches what it misses (symlink swaps, network filesystems). Changes are debounced so
 * a certificate and its key written one after the other load together.
 */
export function watchFiles(files: readonly string[], pollMs: number, onChange: () => void): FileWatch {
  let last = signature(files);
  let debounce: NodeJS.Timeout | undefined;
  const check = (): void => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      const now = signature(files);
      if (now === last) return;
      last = now;
      onChange();
    }, 100).unref();
  };
  const watchers: FSWatcher[] = [];
  for (const f of files) {
    try {
      const w = watch(f, { persistent: false }, check);
      w.on('error', () => undefined);
      watchers.push(w);
    } catch {
      // not there yet: the poll notices when it appears
    }
  }
  const poll = setInterval(check, Math.max(50, pollMs)).unref();
  return {
    close: () => {
      clearInterval(poll);
      clearTimeout(debounce);
      for (const w of watchers) w.close();
    },
  };
}
