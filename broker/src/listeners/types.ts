import type { Socket } from 'node:net';
import type { ConnectionInfo } from '../auth/security.js';

/** A client listener the broker binds and closes (TCP, TLS, WebSocket …). */
export interface Listener {
  readonly name: string;
  /** Binds; resolves with the bound port. */
  listen(): Promise<number>;
  readonly port: number;
  readonly connectionCount: number;
  /** Stops accepting, asks connections to end, destroys what is left after `graceMs`. */
  close(graceMs: number): Promise<void>;
}

/** Where an MQTT listener hands an accepted (and, for TLS, handshaken) connection. */
export type MqttConnectionHandler = (socket: Socket, info: ConnectionInfo) => void;

/** Decides at accept whether a connection may proceed: undefined = yes, else the refusal reason. */
export type AdmitCheck = (listener: string, remoteAddress: string | undefined) => string | undefined;

/** Called when a listener is at its connection limit; returns the refusal reason. */
export type FullCheck = (listener: string, remoteAddress: string | undefined, max: number) => string;
