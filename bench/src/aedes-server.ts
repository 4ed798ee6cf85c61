/**
 * Aedes on a TCP port, for the comparison scripts: `node bench/dist/src/aedes-server.js [port] [host]`.
 * In-memory persistence and emitter (Aedes' defaults); prints one JSON `listening` line with the port.
 */
import net from 'node:net';
import { once } from 'node:events';
import { Aedes } from 'aedes';

const port = Number(process.argv[2] ?? 0);
const host = process.argv[3] ?? '127.0.0.1';
const broker = await Aedes.createBroker();
const server = net.createServer(broker.handle);
server.listen(port, host);
await once(server, 'listening');
process.stdout.write(`${JSON.stringify({ msg: 'listening', mqttPort: (server.address() as net.AddressInfo).port, pid: process.pid })}\n`);
const stop = (): void => {
  server.close();
  broker.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
