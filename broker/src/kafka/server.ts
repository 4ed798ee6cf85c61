import type { Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { hotCounter, type Logger, type UvSocket } from '@robustmq/common';
import type { MetaClient } from '@robustmq/meta';
import { GrpcJournalClient, type JournalClient } from '@robustmq/journal';
import type { Message } from '../mqtt/message.js';
import { resolveKafkaConfig, type KafkaConfig } from './config.js';
import type { Handler, KafkaBrokerAddress, KafkaContext, RequestInfo } from './context.js';
import { coordinatorOf, type BrokerCluster } from '../cluster.js';
import { createKafkaMetrics, type KafkaMetrics } from './metrics.js';
import { StreamRegistry } from './streams.js';
import { GroupCoordinator } from './groups.js';
import { OffsetStore } from './offsets.js';
import { ProducerStateManager } from './producers.js';
import { BindingManager } from './bindings.js';
import { FrameReader } from './framing.js';
import { API_KEY_API_VERSIONS, apiFor, decodeRequestHeader, encodeResponseFrame, type ApiCodec } from './protocol.js';
import { API_BY_KEY } from './messages/index.js';
import type { ProduceRequest } from './messages/produce/index.js';
import { KafkaApiError, KafkaError } from './errors.js';
import {
  apiVersionsBody,
  handleApiVersions,
  handleCreateTopics,
  handleDeleteTopics,
  handleDescribeCluster,
  handleDescribeConfigs,
  handleMetadata,
} from './handlers/admin.js';
import { handleProduce, produce } from './handlers/produce.js';
import { ResponsePipeline } from './pipeline.js';
import { handleDeleteGroups, handleOffsetDelete } from './handlers/group-admin.js';
import { handleAlterConfigs, handleCreatePartitions, handleDeleteRecords, handleIncrementalAlterConfigs } from './handlers/topic-admin.js';
import { handleSaslAuthenticate, handleSaslHandshake } from './handlers/sasl.js';
import { parseSaslMechanisms, SaslAuthError, SaslConnection, type SaslMechanism, type SaslUserSource } from './sasl.js';
import { handleFetch, handleListOffsets, releaseResponseBuffers } from './handlers/fetch.js';
import {
  handleDescribeGroups,
  handleFindCoordinator,
  handleHeartbeat,
  handleInitProducerId,
  handleJoinGroup,
  handleLeaveGroup,
  handleListGroups,
  handleOffsetCommit,
  handleOffsetFetch,
  handleSyncGroup,
} from './handlers/groups.js';

/** Handler per API key; ApiVersions advertises the generated range of each (they match: a test checks it). */
export const HANDLERS: Readonly<Record<number, Handler>> = {
  0: handleProduce as Handler,
  1: handleFetch as Handler,
  2: handleListOffsets as Handler,
  3: handleMetadata as Handler,
  8: handleOffsetCommit as Handler,
  9: handleOffsetFetch as Handler,
  10: handleFindCoordinator as Handler,
  11: handleJoinGroup as Handler,
  12: handleHeartbeat as Handler,
  13: handleLeaveGroup as Handler,
  14: handleSyncGroup as Handler,
  15: handleDescribeGroups as Handler,
  16: handleListGroups as Handler,
  17: handleSaslHandshake as Handler,
  18: handleApiVersions as Handler,
  19: handleCreateTopics as Handler,
  20: handleDeleteTopics as Handler,
  21: handleDeleteRecords as Handler,
  22: handleInitProducerId as Handler,
  32: handleDescribeConfigs as Handler,
  33: handleAlterConfigs as Handler,
  36: handleSaslAuthenticate as Handler,
  37: handleCreatePartitions as Handler,
  42: handleDeleteGroups as Handler,
  44: handleIncrementalAlterConfigs as Handler,
  47: handleOffsetDelete as Handler,
  60: handleDescribeCluster as Handler,
};

export interface KafkaServerOptions {
  meta: MetaClient;
  journal: JournalClient;
  log: Logger;
  registry: Registry;
  config?: Partial<KafkaConfig>;
  /** Broker id reported in Metadata (the node id). */
  nodeId: number;
  /** Host clients are told to connect to. */
  advertisedHost: () => string;
  /** Port clients are told to connect to (the Kafka listener's bound port). */
  advertisedPort: () => number;
  /** Publishes a message to MQTT subscribers (Kafka → MQTT bindings). */
  publish: (m: Message) => void;
  /** Users SASL authenticates against (the MQTT users); required when `kafka.saslMechanisms` is set. */
  users?: SaslUserSource | undefined;
  /**
   * The live brokers (registrations in meta): Metadata lists them, partition leaders and group
   * coordinators are spread over them. Without it this broker is alone and coordinates every group.
   */
  cluster?: BrokerCluster | undefined;
}

/** APIs a connection may use before it has authenticated (when SASL is required). */
const API_KEY_SASL_HANDSHAKE = 17;
const API_KEY_SASL_AUTHENTICATE = 36;
const UNAUTHENTICATED_APIS: ReadonlySet<number> = new Set([API_KEY_API_VERSIONS, API_KEY_SASL_HANDSHAKE, API_KEY_SASL_AUTHENTICATE]);
const API_KEY_PRODUCE = 0;
/** Request bytes a connection's pipelined Produce requests may hold (one larger request still runs, alone). */
const PIPELINED_REQUEST_BYTES = 16 * 1024 * 1024;
/** Bytes of whole request frames a connection holds before its request loop takes them; reading pauses beyond. */
const READ_AHEAD_BYTES = 1024 * 1024;

/** A client connection: a Node socket (TLS, or `kafka.tcpTransport: node`) or the native transport's. */
export type KafkaSocket = Socket | UvSocket;

/** Resolves on the socket's next 'drain'; rejects when it closes first or `timeoutMs` passes. */
function drained(socket: KafkaSocket, timeoutMs: number): Promise<void> {
  const s = socket as unknown as { on(e: string, fn: () => void): unknown; off(e: string, fn: () => void): unknown };
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer);
      s.off('drain', onDrain);
      s.off('close', onClose);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new Error('connection closed before the response was written'));
    const timer = setTimeout(() => done(new Error(`response not written within drainTimeoutMs (${timeoutMs} ms)`)), timeoutMs);
    s.on('drain', onDrain);
    s.on('close', onClose);
  });
}

/** A listener's view of the Kafka server (the TLS listener advertises its own port). */
export interface KafkaListenerOptions {
  advertisedPort?: () => number;
}

/** What one connection carries from request to request. */
interface KafkaConnection {
  ctx: KafkaContext;
  sasl: SaslConnection;
  clientHost: string;
  signal: AbortSignal;
  log: Logger;
  /** Pipelined Produce requests and their responses, in request order. */
  pipeline: ResponsePipeline;
}

/**
 * The Kafka protocol on one listener: every connection's requests, served over the journal
 * (records) and meta (streams, bindings, committed offsets, producer ids).
 *
 * How this works: each connection reads frames in a loop and serves one request at a time, as
 * Kafka does, so responses leave in request order without a reorder buffer; while a request
 * is served nothing more is read from the socket and TCP backpressure reaches the client. A
 * frame that cannot be parsed, an oversized frame, or an API version that is not advertised
 * closes that connection only.
 */
export class KafkaServer {
  readonly config: Readonly<KafkaConfig>;
  readonly metrics: KafkaMetrics;
  readonly streams: StreamRegistry;
  readonly groups: GroupCoordinator;
  readonly bindings: BindingManager;
  /** Resolves once streams and bindings are loaded; requests wait for it. */
  readonly ready: Promise<void>;
  readonly #opts: KafkaServerOptions;
  readonly #log: Logger;
  readonly #closing = new AbortController();
  readonly #saslMechanisms: readonly SaslMechanism[];
  #ctx: KafkaContext | undefined;
  #nextConnId = 1;
  #unsubscribeCluster: (() => void) | undefined;
  /** Produce requests a connection may have in flight (see KafkaConfig.maxInflightProduceRequests). */
  readonly #produceDepth: number;
  /** Labelled metric children by API/version/outcome (prom-client hashes label objects on every call). */
  readonly #requestCounters = new Map<string, { inc: () => void }>();
  readonly #requestTimers = new Map<string, { observe: (v: number) => void }>();

  constructor(opts: KafkaServerOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.config = resolveKafkaConfig(opts.config);
    this.#saslMechanisms = parseSaslMechanisms(this.config.saslMechanisms);
    if (this.#saslMechanisms.length > 0 && opts.users === undefined) throw new Error('kafka.saslMechanisms needs a user source');
    this.metrics = createKafkaMetrics(opts.registry);
    // Overlapping appends keep request order only when the journal takes calls in order, as the
    // in-process Journal does (its group commit queue); over gRPC a retried call could overtake.
    this.#produceDepth = opts.journal instanceof GrpcJournalClient ? 1 : this.config.maxInflightProduceRequests;
    this.streams = new StreamRegistry(opts.meta, opts.journal, opts.log);
    this.groups = new GroupCoordinator({
      log: opts.log,
      initialRebalanceDelayMs: this.config.groupInitialRebalanceDelayMs,
      minSessionTimeoutMs: this.config.groupMinSessionTimeoutMs,
      maxSessionTimeoutMs: this.config.groupMaxSessionTimeoutMs,
    });
    this.bindings = new BindingManager({
      meta: opts.meta,
      journal: opts.journal,
      streams: this.streams,
      config: this.config,
      log: opts.log,
      publish: opts.publish,
    });
    this.ready = this.#open();
    this.ready.catch((err: unknown) => this.#log.error({ err }, 'kafka state failed to load'));
  }

  async #open(): Promise<void> {
    const o = this.#opts;
    // meta may still be electing its leaders when the listener opens: retry until it answers
    for (let attempt = 0; ; attempt++) {
      try {
        await this.streams.open();
        await this.bindings.open();
        break;
      } catch (err) {
        if (this.#closing.signal.aborted || attempt > 600) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    let clusterId = 'robustmq';
    try {
      clusterId = (await o.meta.status()).clusterId || clusterId;
    } catch {
      // status is informative only
    }
    this.#ctx = {
      config: this.config,
      meta: o.meta,
      journal: o.journal,
      streams: this.streams,
      groups: this.groups,
      offsets: new OffsetStore(o.meta),
      producers: new ProducerStateManager(o.meta, this.config.producerIdleExpiryMs),
      bindings: this.bindings,
      metrics: this.metrics,
      log: this.#log,
      nodeId: o.nodeId,
      clusterId,
      advertisedHost: o.advertisedHost,
      advertisedPort: o.advertisedPort,
      brokers: () => this.#brokers(false, o.advertisedPort),
      isCoordinator: (groupId) => this.#isCoordinator(groupId),
    };
    if (o.cluster !== undefined && !this.#closing.signal.aborted) {
      // Groups whose coordinator moved to another broker are dropped: their members get
      // NOT_COORDINATOR, look the coordinator up again and re-join there.
      this.#unsubscribeCluster = o.cluster.onChange(() => {
        const dropped = this.groups.retain((groupId) => this.#isCoordinator(groupId));
        if (dropped > 0)
          this.#log.info({ dropped, brokers: this.#brokers(false, o.advertisedPort).length }, 'groups moved to another coordinator');
      });
    }
    this.#log.info({ streams: this.streams.list().length, bindings: this.bindings.list().length }, 'kafka ready');
  }

  /**
   * The live brokers as a listener's clients reach them: each one's Kafka port (the Kafka/TLS
   * port for the TLS listener), this broker with its advertised address.
   */
  #brokers(tls: boolean, selfPort: () => number): KafkaBrokerAddress[] {
    const o = this.#opts;
    const self: KafkaBrokerAddress = { nodeId: o.nodeId, host: o.advertisedHost(), port: selfPort() };
    const live = o.cluster?.live();
    if (live === undefined) return [self];
    const out: KafkaBrokerAddress[] = [];
    for (const b of live) {
      if (b.nodeId === o.nodeId) out.push(self);
      else {
        const port = tls ? b.ports.kafkaTls : b.ports.kafka;
        if (port !== undefined) out.push({ nodeId: b.nodeId, host: b.host, port });
      }
    }
    return out.length > 0 ? out : [self];
  }

  #isCoordinator(groupId: string): boolean {
    const live = this.#opts.cluster?.live();
    if (live === undefined) return true;
    const ids = live.filter((b) => b.nodeId === this.#opts.nodeId || b.ports.kafka !== undefined).map((b) => b.nodeId);
    return ids.length === 0 || coordinatorOf(groupId, ids) === this.#opts.nodeId;
  }

  /** The MQTT engine's publish sink (MQTT → Kafka bindings). */
  onPublish(m: Message): Promise<void> | undefined {
    const p = this.bindings.onPublish(m);
    if (p === undefined) return undefined;
    const settled = p.then(
      () => this.metrics.bridgedRecords.inc({ direction: 'mqtt_to_kafka' }),
      (err: unknown) => this.#log.warn({ err, topic: m.topic }, 'mqtt message not stored in its bound stream'),
    );
    // QoS 0 is best effort: nothing waits, so the failure is logged, never an unhandled rejection.
    // QoS 1/2: a rejection reaches the MQTT connection, which withholds the acknowledgement.
    return m.qos === 0 ? settled : p;
  }

  /** Serves one client connection until it closes. */
  handleSocket(socket: KafkaSocket, listener: KafkaListenerOptions = {}): void {
    const connId = this.#nextConnId++;
    void this.#serve(socket, connId, listener);
  }

  async #serve(socket: KafkaSocket, connId: number, listener: KafkaListenerOptions): Promise<void> {
    const log = this.#log.child({ connId });
    const closed = new AbortController();
    const onRootAbort = (): void => closed.abort();
    this.#closing.signal.addEventListener('abort', onRootAbort, { once: true });
    socket.once('close', () => closed.abort());
    const bytesIn = this.metrics.bytesIn;
    const reader = new FrameReader(socket, this.config.maxRequestBytes, READ_AHEAD_BYTES, (n) => bytesIn.inc(n));
    const clientHost = socket.remoteAddress ?? '';
    try {
      await this.ready;
      const base = this.#ctx!;
      const conn: KafkaConnection = {
        ctx:
          listener.advertisedPort === undefined
            ? base
            : {
                ...base,
                advertisedPort: listener.advertisedPort,
                brokers: () => this.#brokers(true, listener.advertisedPort as () => number),
              },
        sasl: new SaslConnection(this.#saslMechanisms, this.#opts.users as SaslUserSource, clientHost),
        clientHost,
        signal: closed.signal,
        log,
        pipeline: new ResponsePipeline(this.#produceDepth, PIPELINED_REQUEST_BYTES, {
          write: (chunks) => this.#send(socket, chunks),
          cork: () => socket.cork(),
          uncork: () => socket.uncork(),
          onError: (err) => {
            if (!closed.signal.aborted) log.debug({ err }, 'kafka connection closed on error');
            socket.destroy();
          },
        }),
      };
      for (let frame = await reader.next(); frame !== undefined; frame = await reader.next()) {
        if (conn.sasl.raw) {
          await conn.pipeline.idle();
          await this.#handleRawSasl(socket, frame, conn);
        } else await this.#handle(socket, frame, conn);
        if (socket.destroyed) return;
      }
      await conn.pipeline.idle(); // the client ended its side: answer what it sent
    } catch (err) {
      if (!closed.signal.aborted) log.debug({ err }, 'kafka connection closed on error');
    } finally {
      this.#closing.signal.removeEventListener('abort', onRootAbort);
      closed.abort();
      socket.destroy();
    }
  }

  /**
   * A raw SASL token after SaslHandshake v0 (no request header): the answer is a size-prefixed
   * raw frame; a failed exchange closes the connection, as Kafka does.
   */
  async #handleRawSasl(socket: KafkaSocket, frame: Buffer, conn: KafkaConnection): Promise<void> {
    let reply: Buffer;
    try {
      reply = await conn.sasl.step(frame);
    } catch (err) {
      this.metrics.requests.inc({ api: 'SaslRaw', version: '0', outcome: 'closed' });
      if (err instanceof SaslAuthError) conn.log.info({ ip: conn.clientHost, err }, 'kafka sasl authentication failed');
      throw err;
    }
    this.metrics.requests.inc({ api: 'SaslRaw', version: '0', outcome: 'ok' });
    const size = Buffer.allocUnsafe(4);
    size.writeInt32BE(reply.length, 0);
    await this.#send(socket, [size, reply]);
  }

  async #handle(socket: KafkaSocket, frame: Buffer, conn: KafkaConnection): Promise<void> {
    const { ctx, clientHost, signal, log, sasl } = conn;
    const started = process.hrtime.bigint();
    const { header, body } = decodeRequestHeader(frame);
    if (sasl.required && !sasl.authenticated && !UNAUTHENTICATED_APIS.has(header.apiKey)) {
      this.metrics.requests.inc({ api: String(header.apiKey), version: String(header.apiVersion), outcome: 'closed' });
      log.debug({ apiKey: header.apiKey, clientId: header.clientId }, 'kafka request before sasl authentication; closing');
      throw new SaslAuthError(`API ${header.apiKey} before SASL authentication`);
    }
    let api: ApiCodec;
    try {
      api = apiFor(header.apiKey, header.apiVersion);
    } catch (err) {
      if (header.apiKey === API_KEY_API_VERSIONS) {
        // An ApiVersions version we do not know: answer UNSUPPORTED_VERSION in the v0 shape with
        // our ranges, so the client retries with one of them (KIP-511).
        await conn.pipeline.idle();
        const apiVersions = API_BY_KEY[API_KEY_API_VERSIONS] as ApiCodec;
        await this.#send(
          socket,
          encodeResponseFrame(apiVersions, 0, header.correlationId, apiVersionsBody(KafkaError.UNSUPPORTED_VERSION)),
        );
        this.metrics.requests.inc({ api: 'ApiVersions', version: String(header.apiVersion), outcome: 'error' });
        return;
      }
      this.metrics.requests.inc({ api: String(header.apiKey), version: String(header.apiVersion), outcome: 'closed' });
      log.debug({ apiKey: header.apiKey, apiVersion: header.apiVersion, clientId: header.clientId }, 'unsupported kafka request; closing');
      throw err;
    }
    const version = header.apiVersion;
    const req = api.codecs[version]!.decodeRequest(body);
    const info: RequestInfo = { apiVersion: version, clientId: header.clientId ?? '', clientHost, signal, sasl };
    if (api.key === API_KEY_PRODUCE) {
      // Pipelined: the next request may start once this one's appends are handed to the journal.
      await conn.pipeline.room(frame.length);
      let onIssued: () => void = () => undefined;
      const issued = new Promise<void>((resolve) => (onIssued = resolve));
      const response = produce(ctx, req as ProduceRequest, info, onIssued).then(
        (resp) => {
          this.#countRequest(api.name, version, 'ok');
          this.#timeRequest(api.name, started);
          return resp === undefined || socket.destroyed ? undefined : encodeResponseFrame(api, version, header.correlationId, resp);
        },
        (err: unknown) => {
          onIssued();
          this.#countRequest(api.name, version, 'closed');
          // a KafkaApiError is the client's (acks=0 produce refused): not a server problem
          if (err instanceof KafkaApiError) log.info({ err: err.message, api: api.name, version }, 'kafka request failed; closing');
          else log.warn({ err, api: api.name, version }, 'kafka request failed; closing');
          throw err;
        },
      );
      conn.pipeline.push(response, frame.length);
      await issued;
      return;
    }
    await conn.pipeline.idle();
    const handler = HANDLERS[api.key]!;
    let resp: unknown;
    try {
      resp = await (handler as (c: KafkaContext, r: unknown, i: RequestInfo) => Promise<unknown>)(ctx, req, info);
    } catch (err) {
      this.#countRequest(api.name, version, 'closed');
      log.warn({ err, api: api.name, version }, 'kafka request failed; closing');
      throw err;
    }
    this.#countRequest(api.name, version, 'ok');
    // Fetch records are views of the journal's read buffers: they go back once written.
    const written = (): void => releaseResponseBuffers(resp);
    if (resp !== undefined && !socket.destroyed)
      await this.#send(socket, encodeResponseFrame(api, version, header.correlationId, resp), written);
    else written();
    this.#timeRequest(api.name, started);
    if (sasl.failed) {
      // Kafka closes the connection after a failed exchange: flush the response, then end.
      await new Promise<void>((resolve) => void socket.end(() => resolve()));
      throw new SaslAuthError('authentication failed');
    }
  }

  #countRequest(api: string, version: number, outcome: 'ok' | 'closed'): void {
    const key = `${api}/${version}/${outcome}`;
    let c = this.#requestCounters.get(key);
    if (c === undefined) {
      c = hotCounter(this.metrics.requests, { api, version: String(version), outcome });
      this.#requestCounters.set(key, c);
    }
    c.inc();
  }

  #timeRequest(api: string, started: bigint): void {
    let h = this.#requestTimers.get(api);
    if (h === undefined) {
      h = this.metrics.requestDuration.labels(api);
      this.#requestTimers.set(api, h);
    }
    h.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }

  /**
   * Writes a response; a full socket buffer is waited on with a deadline, never ignored.
   * `written` runs once the kernel has all of it, or the write failed (the socket is gone).
   */
  async #send(socket: KafkaSocket, chunks: Buffer[], written?: () => void): Promise<void> {
    let ok = true;
    let bytes = 0;
    if (chunks.length > 1) socket.cork();
    const last = chunks.length - 1;
    for (let i = 0; i <= last; i++) {
      const c = chunks[i]!;
      bytes += c.length;
      ok = i === last && written !== undefined ? socket.write(c, () => written()) : socket.write(c);
    }
    if (last < 0) written?.();
    if (chunks.length > 1) socket.uncork();
    this.metrics.bytesOut.inc(bytes);
    if (!ok && !socket.destroyed) await drained(socket, this.config.drainTimeoutMs);
  }

  /** Ends long polls and group timers; connections are closed by the listener. */
  close(): void {
    this.#closing.abort();
    this.#unsubscribeCluster?.();
    this.groups.close();
    this.streams.close();
    this.bindings.close();
  }
}
