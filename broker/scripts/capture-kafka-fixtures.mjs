#!/usr/bin/env node
/**
 * Captures golden Kafka fixtures from real clients: a TCP proxy between a client and a running
 * broker that writes the first request and response frame of each (API, version) it sees to
 * broker/src/kafka/messages/<api>/fixtures/v<N>-request.hex / v<N>-response.hex (size prefix and
 * header stripped: the body only, as the codec decodes it). Existing fixtures are kept.
 *
 *   node broker/scripts/capture-kafka-fixtures.mjs <listen-port> <broker-port>
 *   kcat -b 127.0.0.1:<listen-port> -L   # … any client, then Ctrl-C
 */
import { createServer, connect } from 'node:net';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const messages = await import(join(here, '../dist/src/kafka/messages/index.js'));
const proto = await import(join(here, '../dist/src/kafka/protocol.js'));
const { Reader } = await import(join(here, '../dist/src/kafka/wire/reader.js'));
const OUT = join(here, '../src/kafka/messages');
const kebab = (s) => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

function frames(onFrame) {
  let buf = Buffer.alloc(0);
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
      const n = buf.readInt32BE(0);
      onFrame(buf.subarray(4, 4 + n));
      buf = buf.subarray(4 + n);
    }
  };
}

function save(api, version, kind, body) {
  const file = join(OUT, kebab(api.name), 'fixtures', `v${version}-${kind}.hex`);
  if (existsSync(file)) return;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(
    file,
    body
      .toString('hex')
      .replace(/(.{64})/g, '$1\n')
      .trim() + '\n',
  );
  console.log(`captured ${api.name} v${version} ${kind} (${body.length} bytes)`);
}

const [listenPort, brokerPort] = process.argv.slice(2).map(Number);
createServer((client) => {
  const upstream = connect(brokerPort, '127.0.0.1');
  const inflight = new Map();
  client.on(
    'data',
    frames((f) => {
      const { header, body } = proto.decodeRequestHeader(Buffer.from(f));
      const api = messages.API_BY_KEY[header.apiKey];
      if (api !== undefined && header.apiVersion >= api.minVersion && header.apiVersion <= api.maxVersion) {
        inflight.set(header.correlationId, { api, version: header.apiVersion });
        save(api, header.apiVersion, 'request', body.buf.subarray(body.pos));
      }
    }),
  );
  upstream.on(
    'data',
    frames((f) => {
      const corr = f.readInt32BE(0);
      const req = inflight.get(corr);
      if (req === undefined) return;
      inflight.delete(corr);
      const r = new Reader(Buffer.from(f));
      const hv = proto.responseHeaderVersion(req.api, req.version);
      r.int32();
      if (hv === 1) r.taggedFields(() => false);
      save(req.api, req.version, 'response', r.buf.subarray(r.pos));
    }),
  );
  client.pipe(upstream).pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
}).listen(listenPort, '127.0.0.1', () => console.log(`proxy 127.0.0.1:${listenPort} → ${brokerPort}`));
