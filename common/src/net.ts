import type { Server } from 'node:net';
import { ErrorCode, RobustError, isErrno } from './errors.js';

/** The error of a listener that cannot bind: PortInUse for EADDRINUSE, else ListenFailed. */
export function listenError(name: string, host: string, port: number, err: Error): RobustError {
  if (isErrno(err, 'EADDRINUSE'))
    return new RobustError(ErrorCode.PortInUse, `${name}: port ${port} on ${host} is already in use`, { cause: err });
  return new RobustError(ErrorCode.ListenFailed, `${name}: cannot listen on ${host}:${port}: ${err.message}`, { cause: err });
}

/**
 * Binds `server` to host:port and resolves with the bound port (port 0 = any free port).
 * Rejects with a RobustError naming the listener, so a caller can collect every failure at once.
 */
export function listen(server: Server, name: string, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(listenError(name, host, port, err));
    };
    const onListening = (): void => {
      server.off('error', onError);
      const addr = server.address();
      resolve(typeof addr === 'object' && addr !== null ? addr.port : port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host, port, exclusive: true });
  });
}

/** Closes a server, resolving once it no longer accepts; tolerates a server that never listened. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}
