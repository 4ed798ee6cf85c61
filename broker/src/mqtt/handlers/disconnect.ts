import type { IDisconnectPacket, Packet } from 'mqtt-packet';
import { MqttProtocolError, ReasonCode } from '../reason-codes.js';
import type { Connection } from '../connection.js';

/**
 * DISCONNECT from the client (§3.14): only 0x00 (and every 3.x DISCONNECT) discards the will
 * [MQTT-3.14.4-3]; 0x04 and the error codes (0x80 and above) keep it, so it is published
 * (5.0 §3.1.2.5); a 5.0 client may change the Session Expiry Interval, but not from 0
 * [MQTT-3.14.2-2].
 */
export function handleDisconnect(conn: Connection, p: Packet): void {
  const d = p as IDisconnectPacket;
  const rc = d.reasonCode ?? 0;
  const session = conn.session;
  const expiry = d.properties?.sessionExpiryInterval;
  if (expiry !== undefined && session !== undefined) {
    if (session.expiryIntervalSec === 0 && expiry !== 0) {
      throw new MqttProtocolError(ReasonCode.ProtocolError, 'session expiry changed from 0 on DISCONNECT');
    }
    const max = conn.engine.config.maxSessionExpirySec;
    session.expiryIntervalSec = max > 0 ? Math.min(expiry, max) : expiry;
  }
  if (rc === ReasonCode.Success) conn.willCancelled = true;
  conn.engine.countDisconnect(rc === 0 ? 'normal' : 'client_reason');
  conn.close();
}
