import type { Packet } from 'mqtt-packet';
import { MqttProtocolError, ReasonCode } from '../reason-codes.js';
import type { Connection } from '../connection.js';

/**
 * AUTH (5.0 §3.15): no authentication method is supported, so no CONNECT can have started an
 * exchange; an AUTH packet is therefore a Protocol Error (5.0 §4.12).
 */
export function handleAuth(_conn: Connection, _p: Packet): void {
  throw new MqttProtocolError(ReasonCode.ProtocolError, 'AUTH without an authentication method');
}
