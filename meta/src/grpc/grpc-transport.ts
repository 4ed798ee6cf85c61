import * as grpc from '@grpc/grpc-js';
import { meta } from '@robustmq/proto';
import type { Logger } from '@robustmq/common';
import type { Envelope, RaftTransport } from '../node/transport.js';
import { decodeMessage } from './message-codec.js';
import { encodeRaftBatch, type HeartbeatItem } from './raft-batch-codec.js';
import { MessageType, makeMessage, type Message } from '../raft/types.js';

/** The generated service, except that batches are written already encoded (see encodeRaftBatch). */
const RaftClient = grpc.makeGenericClientConstructor(
  { send: { ...meta.MetaRaftService.send, requestSerialize: (b: Buffer): Buffer => b } },
  'MetaRaft',
);

/**
 * Heartbeats of every group to one peer travel coalesced (CockroachDB-style): a few numbers per
 * group in the batch instead of a whole message each. Only a heartbeat that carries nothing
 * else is coalesced; anything unusual goes as a full message.
 */
export function coalesce(e: Envelope): HeartbeatItem | undefined {
  const m = e.message;
  const response = m.type === MessageType.HeartbeatResp;
  if (m.type !== MessageType.Heartbeat && !response) return undefined;
  if (m.logTerm !== 0 || m.index !== 0 || m.entries.length > 0 || m.snapshot !== undefined || m.reject || m.rejectHint !== 0)
    return undefined;
  if (response && m.commit !== 0) return undefined;
  return { group: e.group, term: m.term, commit: m.commit, context: m.context, response };
}

export function expandHeartbeat(h: meta.CoalescedHeartbeat | HeartbeatItem, from: number, to: number): Message {
  return makeMessage({
    type: h.response ? MessageType.HeartbeatResp : MessageType.Heartbeat,
    from,
    to,
    term: Number(h.term),
    commit: Number(h.commit),
    context: h.context,
  });
}

interface Peer {
  address: string;
  client: grpc.Client;
  /** Writes batches encoded by encodeRaftBatch. */
  stream: grpc.ClientWritableStream<Buffer> | undefined;
  /** Do not reconnect before this time after a failure (ms since epoch). */
  retryAt: number;
  backoffMs: number;
}

/**
 * Raft messages between meta nodes over gRPC: one long-lived client stream per peer carries
 * batches of every group's messages. A broken stream is reported as unreachable (Raft then
 * probes instead of pipelining) and reopened with exponential backoff on the next send.
 */
export class GrpcRaftTransport implements RaftTransport {
  readonly #nodeId: number;
  readonly #clusterId: () => string;
  readonly #log: Logger;
  readonly #peers = new Map<number, Peer>();
  #handler: ((from: number, envelopes: Envelope[]) => void) | undefined;
  #unreachable: ((peer: number) => void) | undefined;
  #closed = false;

  #address = '';

  constructor(opts: { nodeId: number; clusterId: () => string; log: Logger }) {
    this.#nodeId = opts.nodeId;
    this.#clusterId = opts.clusterId;
    this.#log = opts.log;
  }

  /** This node's own address, sent with every batch (known once the gRPC server is bound). */
  setSelfAddress(address: string): void {
    this.#address = address;
  }

  /** The gRPC service implementation receiving peers' batches; add it to the node's server. */
  service(): meta.MetaRaftServer {
    return {
      send: (call, callback) => {
        call.on('data', (batch: meta.RaftBatch) => {
          const cluster = this.#clusterId();
          if (batch.clusterId !== '' && cluster !== '' && batch.clusterId !== cluster) {
            this.#log.warn(
              { from: Number(batch.from), theirCluster: batch.clusterId, ourCluster: cluster },
              'raft batch from another cluster refused',
            );
            call.destroy(new Error('cluster id mismatch'));
            return;
          }
          const from = Number(batch.from);
          if (!this.#peers.has(from) && batch.fromAddress !== '' && from !== this.#nodeId) {
            this.#log.info({ peer: from, address: batch.fromAddress }, 'meta peer learned from its messages');
            this.setPeer(from, batch.fromAddress);
          }
          const envelopes: Envelope[] = [];
          for (const h of batch.heartbeats) envelopes.push({ group: h.group, message: expandHeartbeat(h, from, this.#nodeId) });
          for (const e of batch.envelopes) {
            try {
              envelopes.push({ group: e.group, message: decodeMessage(e.message) });
            } catch (err) {
              this.#log.warn({ err, from: Number(batch.from) }, 'malformed raft message refused');
            }
          }
          if (envelopes.length > 0) this.#handler?.(Number(batch.from), envelopes);
        });
        call.on('end', () => callback(null, {}));
        call.on('error', () => undefined);
      },
    };
  }

  send(to: number, envelopes: Envelope[]): void {
    if (this.#closed) return;
    const peer = this.#peers.get(to);
    if (peer === undefined) {
      this.#unreachable?.(to);
      return;
    }
    const stream = this.#streamTo(to, peer);
    if (stream === undefined) {
      this.#unreachable?.(to);
      return;
    }
    const heartbeats: HeartbeatItem[] = [];
    const others: Envelope[] = [];
    for (const e of envelopes) {
      const h = coalesce(e);
      if (h !== undefined) heartbeats.push(h);
      else others.push(e);
    }
    stream.write(encodeRaftBatch({ from: this.#nodeId, clusterId: this.#clusterId(), fromAddress: this.#address }, others, heartbeats));
  }

  #streamTo(id: number, peer: Peer): grpc.ClientWritableStream<Buffer> | undefined {
    if (peer.stream !== undefined) return peer.stream;
    if (Date.now() < peer.retryAt) return undefined;
    // grpc-js reports the end of a client stream (server gone, cancelled) through the callback
    // and 'status', not always through 'error' or 'close': listen to all of them.
    const broken = (): void => {
      if (peer.stream !== stream) return;
      peer.stream = undefined;
      peer.retryAt = Date.now() + peer.backoffMs;
      peer.backoffMs = Math.min(peer.backoffMs * 2, 1000);
      this.#unreachable?.(id);
    };
    const client = peer.client as unknown as { send: (cb: (err: grpc.ServiceError | null) => void) => grpc.ClientWritableStream<Buffer> };
    const stream = client.send((err) => {
      if (err !== null && !this.#closed) this.#log.debug({ peer: id, err: err.message }, 'raft stream to peer closed');
      broken();
    });
    stream.on('error', broken);
    stream.on('close', broken);
    stream.on('status', broken);
    stream.on('metadata', () => {
      peer.backoffMs = 50; // the peer answered: connected
    });
    peer.stream = stream;
    return stream;
  }

  onReceive(handler: (from: number, envelopes: Envelope[]) => void): void {
    this.#handler = handler;
  }

  onUnreachable(handler: (peer: number) => void): void {
    this.#unreachable = handler;
  }

  setPeer(id: number, address: string): void {
    const existing = this.#peers.get(id);
    if (existing?.address === address) return;
    if (existing !== undefined) this.#closePeer(existing);
    this.#peers.set(id, {
      address,
      client: new RaftClient(address, grpc.credentials.createInsecure(), {
        'grpc.keepalive_time_ms': 10_000,
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 2000,
        'grpc.max_send_message_length': 64 * 1024 * 1024,
      }),
      stream: undefined,
      retryAt: 0,
      backoffMs: 50,
    });
  }

  removePeer(id: number): void {
    const p = this.#peers.get(id);
    if (p !== undefined) this.#closePeer(p);
    this.#peers.delete(id);
  }

  #closePeer(p: Peer): void {
    p.stream?.end();
    p.stream = undefined;
    p.client.close();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#peers.values()) this.#closePeer(p);
    this.#peers.clear();
  }
}
