import type { IAuthPacket, Packet } from 'mqtt-packet';
import { MqttProtocolError, ReasonCode } from '../reason-codes.js';
import type { Connection } from '../connection.js';

/**
 * AUTH (5.0 §3.15). Before CONNACK it continues the enhanced authentication (SCRAM-SHA-256)
 * that CONNECT started: reason 0x18 with the same method [MQTT-4.12.0-4]. After CONNACK
 * re-authentication is not offered: AUTH then is a Protocol Error; so is AUTH without an exchange.
 */
export function handleAuth(conn: Connection, p: Packet): void {
  const a = p as IAuthPacket;
  const next = conn.sec.pendingConnect;
  if (conn.connected || next === undefined) {
    if (conn.connected && a.reasonCode === ReasonCode.ReAuthenticate)
      throw new MqttProtocolError(ReasonCode.BadAuthenticationMethod, 're-authentication not supported');
    throw new MqttProtocolError(ReasonCode.ProtocolError, 'AUTH without an authentication exchange');
  }
  if (a.reasonCode !== ReasonCode.ContinueAuthentication) throw new MqttProtocolError(ReasonCode.ProtocolError, 'AUTH reason must be 0x18');
  conn.sec.pendingConnect = undefined;
  next(a.properties?.authenticationData);
}
