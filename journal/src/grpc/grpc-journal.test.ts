import * as grpc from '@grpc/grpc-js';
import { journal } from '@robustmq/proto';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import { Journal } from '../journal.js';
import { runEngineSuite } from '../testing/engine-suite.js';
import { createJournalService } from './journal-service.js';
import { GrpcJournalClient } from './grpc-journal-client.js';

// The whole engine suite again, through the gRPC service and client over real loopback TCP:
// what a broker on another node sees must be what an in-process caller sees.
runEngineSuite({
  engine: 'segment',
  persistent: true,
  storesBatchesAsGiven: true,
  open: async (dataDir) => {
    const j = new Journal({ dataDir, logger: pino({ level: 'silent' }), registry: new Registry() });
    await j.open();
    const server = new grpc.Server();
    server.addService(journal.JournalService, createJournalService(j) as unknown as grpc.UntypedServiceImplementation);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const client = new GrpcJournalClient(`127.0.0.1:${port}`);
    const closeChannel = client.close.bind(client);
    return Object.assign(client, {
      close: async () => {
        closeChannel();
        server.forceShutdown();
        await j.close();
      },
    }) as GrpcJournalClient & { close(): Promise<void> };
  },
});
