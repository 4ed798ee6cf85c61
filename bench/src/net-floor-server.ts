/**
 * The floor of per-connection memory and setup cost for any MQTT broker on Node.js, for the
 * comparison scripts: a bare `net` server that answers every CONNECT with a 3.1.1 CONNACK, ends
 * on DISCONNECT and keeps nothing else per client (no parser, no session, no logger).
 * `node bench/dist/src/net-floor-server.js [port] [host]`; prints one JSON `listening` line.
 */
import net from 'node:net';
import { once } from 'node:events';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const port = Number(process.argv[2] ?? 0);
const host = process.argv[3] ?? '127.0.0.1';

function onData(this: net.Socket, chunk: Buffer): void {
  // a CONNECT and a DISCONNECT each arrive whole: the generator writes them in one write
  if (chunk[0] === 0x10) this.write(CONNACK);
  else if (chunk[0] === 0xe0) this.end();
}
function onError(this: net.Socket): void {
  this.destroy();
}

const server = net.createServer({ noDelay: true }, (sock) => {
  sock.on('data', onData);
  sock.on('error', onError);
});
server.listen(port, host);
await once(server, 'listening');
process.stdout.write(`${JSON.stringify({ msg: 'listening', mqttPort: (server.address() as net.AddressInfo).port, pid: process.pid })}\n`);
const stop = (): void => {
  server.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
