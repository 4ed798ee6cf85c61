import * as grpc from '@grpc/grpc-js';
import { health } from '@robustmq/proto';
import { ErrorCode, RobustError, type Logger } from '@robustmq/common';

const ServingStatus = health.HealthCheckResponse_ServingStatus;
type Status = health.HealthCheckResponse_ServingStatus;

export interface GrpcService {
  definition: grpc.ServiceDefinition;
  implementation: object;
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  log: Logger;
  /** Services of the roles this process runs (registered before the server binds). */
  services: readonly GrpcService[];
  /** Service name → whether it serves now. "" is the whole process. */
  serving: () => Record<string, boolean>;
}

/**
 * The node's gRPC server: grpc.health.v1 for probes, and the meta and journal services of the
 * roles this process runs (insecure inside the cluster network; mTLS comes with the security
 * issue).
 */
export class GrpcServer {
  readonly #opts: GrpcServerOptions;
  readonly #server = new grpc.Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  readonly #watchers = new Set<{
    service: string;
    last: Status;
    call: grpc.ServerWritableStream<health.HealthCheckRequest, health.HealthCheckResponse>;
  }>();

  constructor(opts: GrpcServerOptions) {
    this.#opts = opts;
    const healthImpl: health.HealthServer = {
      check: (call, cb) => {
        const status = this.#statusOf(call.request.service);
        if (status === ServingStatus.SERVICE_UNKNOWN)
          cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
        else cb(null, { status });
      },
      watch: (call) => {
        const w = { service: call.request.service, last: this.#statusOf(call.request.service), call };
        this.#watchers.add(w);
        call.write({ status: w.last });
        call.on('cancelled', () => this.#watchers.delete(w));
      },
    };
    this.#server.addService(health.HealthService, healthImpl as unknown as grpc.UntypedServiceImplementation);
    for (const s of opts.services) this.#server.addService(s.definition, s.implementation as grpc.UntypedServiceImplementation);
  }

  #statusOf(service: string): Status {
    const all = this.#opts.serving();
    if (!(service in all)) return ServingStatus.SERVICE_UNKNOWN;
    return all[service] ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  }

  /** Tells Watch streams about status changes; call after readiness may have changed. */
  notify(): void {
    for (const w of this.#watchers) {
      const s = this.#statusOf(w.service);
      if (s !== w.last) {
        w.last = s;
        w.call.write({ status: s });
      }
    }
  }

  listen(): Promise<number> {
    const { host, port } = this.#opts;
    return new Promise((resolve, reject) => {
      this.#server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
        if (err === null) return resolve(bound);
        const inUse = /EADDRINUSE|address already in use|No address added/i.test(err.message);
        reject(
          new RobustError(
            inUse ? ErrorCode.PortInUse : ErrorCode.ListenFailed,
            inUse ? `grpc: port ${port} on ${host} is already in use` : `grpc: cannot listen on ${host}:${port}: ${err.message}`,
            { cause: err },
          ),
        );
      });
    });
  }

  /** Stops taking calls and waits up to `graceMs` for running ones, then cancels them. */
  async close(graceMs: number): Promise<void> {
    for (const w of this.#watchers) {
      w.call.write({ status: ServingStatus.NOT_SERVING });
      w.call.end();
    }
    this.#watchers.clear();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, graceMs);
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
