/**
 * Settles the heap of another Node.js process before its resident memory is read: the process
 * is started with `--inspect=127.0.0.1:0`, and `collectGarbage` sends it the DevTools protocol's
 * `HeapProfiler.collectGarbage` (a full, memory-reducing collection that also shrinks the young
 * generation) over a minimal WebSocket client, so no dependency is needed.
 *
 * Why: right after a burst of connections V8's young generation has grown to tens of MB and
 * garbage from the burst is still resident; V8 shrinks it only when its memory reducer happens to
 * run (seconds later, or not at all while timers keep allocating). Reading RSS then measures the
 * burst, not what the connections hold.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The inspector's WebSocket URL from the `Debugger listening on ws://…` line Node prints on stderr. */
export function inspectorUrl(logFile: string): string | undefined {
  return /Debugger listening on (ws:\/\/\S+)/.exec(readFileSync(logFile, 'utf8'))?.[1];
}

/** One masked client text frame (RFC 6455 §5.2). */
export function encodeTextFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff]);
  if (len > 0xffff) throw new Error('frame too large');
  const mask = randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ mask[i & 3]!;
  return Buffer.concat([header, mask, body]);
}

/** Unmasked server frames out of `buf`: the text payloads and the bytes consumed. */
export function decodeFrames(buf: Buffer): { texts: string[]; used: number } {
  const texts: string[] = [];
  let pos = 0;
  for (;;) {
    if (buf.length - pos < 2) break;
    const opcode = buf[pos]! & 0x0f;
    let len = buf[pos + 1]! & 0x7f;
    let off = pos + 2;
    if (len === 126) {
      if (buf.length - off < 2) break;
      len = buf.readUInt16BE(off);
      off += 2;
    } else if (len === 127) {
      if (buf.length - off < 8) break;
      len = Number(buf.readBigUInt64BE(off));
      off += 8;
    }
    if (buf.length - off < len) break;
    if (opcode === 1) texts.push(buf.toString('utf8', off, off + len));
    pos = off + len;
  }
  return { texts, used: pos };
}

/** Runs a full garbage collection in the process behind `url`; rejects after `timeoutMs`. */
export function collectGarbage(url: string, timeoutMs = 20_000): Promise<void> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port) });
    const timer = setTimeout(() => fail(new Error('inspector: no answer to HeapProfiler.collectGarbage')), timeoutMs);
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    let upgraded = false;
    let buf = Buffer.alloc(0);
    sock.on('connect', () => {
      sock.write(
        `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const status = buf.toString('latin1', 0, buf.indexOf('\r\n'));
        if (!/^HTTP\/1\.1 101/.test(status)) return fail(new Error(`inspector: ${status}`));
        upgraded = true;
        buf = buf.subarray(end + 4);
        sock.write(encodeTextFrame(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })));
      }
      const { texts, used } = decodeFrames(buf);
      buf = buf.subarray(used);
      for (const t of texts) {
        const m = JSON.parse(t) as { id?: number; error?: { message: string } };
        if (m.id !== 1) continue;
        if (m.error !== undefined) return fail(new Error(`inspector: ${m.error.message}`));
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        resolve();
        return;
      }
    });
    sock.on('error', (err) => fail(err));
    sock.on('close', () => fail(new Error('inspector: connection closed')));
  });
}
