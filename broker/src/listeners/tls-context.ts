import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import { ErrorCode, RobustError, type Logger } from '@robustmq/common';
import type { TlsConfig } from '../auth/config.js';
import { watchFiles, type FileWatch } from './file-watch.js';

/**
 * The certificate, key and CA of the TLS listeners, read from files and reloaded when they
 * change: every subscribed server gets the new context by `setSecureContext` (connections open
 * already keep theirs). A reload that fails (half-written file, key not matching the
 * certificate) is logged and counted; the previous context stays in use.
 */
export class TlsContextSource {
  readonly config: Readonly<TlsConfig>;
  #options: SecureContextOptions;
  readonly #log: Logger;
  readonly #subscribers = new Set<(o: SecureContextOptions) => void>();
  readonly #onReload: (outcome: 'ok' | 'failed') => void;
  #watch: FileWatch | undefined;

  /** Throws ERR_TLS_INVALID when the files cannot be used. */
  constructor(config: TlsConfig, log: Logger, onReload: (outcome: 'ok' | 'failed') => void = () => undefined) {
    this.config = config;
    this.#log = log;
    this.#onReload = onReload;
    this.#options = this.#read();
  }

  /** Whether TLS listeners can be bound: a certificate and a key are configured. */
  static isConfigured(c: Pick<TlsConfig, 'certFile' | 'keyFile'>): boolean {
    return c.certFile !== '' && c.keyFile !== '';
  }

  get options(): SecureContextOptions {
    return this.#options;
  }

  #read(): SecureContextOptions {
    const c = this.config;
    const read = (what: string, file: string): Buffer => {
      try {
        return readFileSync(file);
      } catch (err) {
        throw new RobustError(ErrorCode.TlsInvalid, `tls.${what} ${file}: cannot read it (${(err as Error).message})`, { cause: err });
      }
    };
    const o: SecureContextOptions = {
      cert: read('certFile', c.certFile),
      key: read('keyFile', c.keyFile),
      minVersion: c.minVersion,
      ...(c.caFile !== '' ? { ca: read('caFile', c.caFile) } : {}),
    };
    try {
      createSecureContext(o); // key matches certificate, PEM parses
    } catch (err) {
      throw new RobustError(ErrorCode.TlsInvalid, `tls: certificate, key or CA not usable (${(err as Error).message})`, { cause: err });
    }
    return o;
  }

  /** Calls `apply` with every new context from now on; starts watching on the first call. */
  subscribe(apply: (o: SecureContextOptions) => void): () => void {
    this.#subscribers.add(apply);
    if (this.#watch === undefined) {
      const files = [this.config.certFile, this.config.keyFile, this.config.caFile].filter((f) => f !== '');
      this.#watch = watchFiles(files, this.config.reloadCheckMs, () => this.reload());
    }
    return () => this.#subscribers.delete(apply);
  }

  /** Reads the files again and hands the new context to every listener. */
  reload(): boolean {
    let o: SecureContextOptions;
    try {
      o = this.#read();
    } catch (err) {
      this.#log.error({ err }, 'tls reload failed; keeping the previous certificate');
      this.#onReload('failed');
      return false;
    }
    this.#options = o;
    for (const s of this.#subscribers) {
      try {
        s(o);
      } catch (err) {
        this.#log.error({ err }, 'tls context swap failed');
      }
    }
    this.#log.info({ certFile: this.config.certFile }, 'tls certificate reloaded');
    this.#onReload('ok');
    return true;
  }

  close(): void {
    this.#watch?.close();
    this.#watch = undefined;
    this.#subscribers.clear();
  }
}

/** The identity of a verified client certificate: subject CN and SAN values (DNS, email, URI). */
export function certIdentity(cert: { subject?: { CN?: string | string[] }; subjectaltname?: string } | undefined): {
  cn: string | undefined;
  sans: string[];
} {
  if (cert === undefined || cert.subject === undefined) return { cn: undefined, sans: [] };
  const cn = Array.isArray(cert.subject.CN) ? cert.subject.CN[0] : cert.subject.CN;
  const sans = (cert.subjectaltname ?? '')
    .split(', ')
    .map((s) => /^(?:DNS|email|URI):(.+)$/.exec(s)?.[1])
    .filter((s): s is string => s !== undefined);
  return { cn, sans };
}
