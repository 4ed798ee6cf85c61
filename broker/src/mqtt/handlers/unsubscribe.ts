import type { IUnsubscribePacket, Packet } from 'mqtt-packet';
import { encodePacket } from '../codec.js';
import { MqttProtocolError, ReasonCode } from '../reason-codes.js';
import { isCleanString } from './connect.js';
import type { Connection } from '../connection.js';

/** UNSUBSCRIBE (§3.10): removes each subscription [MQTT-3.10.4-1]; UNSUBACK codes per filter (5.0). */
export function handleUnsubscribe(conn: Connection, p: Packet): void {
  const u = p as IUnsubscribePacket;
  const session = conn.session;
  if (session === undefined) return;
  // An UNSUBSCRIBE with no filters is a Protocol Error [MQTT-3.10.3-2]
  if (u.unsubscriptions.length === 0) throw new MqttProtocolError(ReasonCode.ProtocolError, 'UNSUBSCRIBE without filters');
  // Every filter is checked before any is removed: a bad one closes the connection instead.
  for (const f of u.unsubscriptions) {
    // Ill-formed UTF-8 or U+0000 is a malformed packet [MQTT-1.5.4-1] [MQTT-1.5.4-2]
    if (!isCleanString(f)) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'ill-formed UTF-8 topic filter');
    // A topic filter is at least one character long [MQTT-4.7.3-1]
    if (f.length === 0) throw new MqttProtocolError(ReasonCode.ProtocolError, 'empty topic filter');
  }
  const codes = u.unsubscriptions.map((f) => (conn.engine.unsubscribe(session, f) ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted));
  const durable = session.isPersistent ? conn.engine.saveSession(session) : undefined;
  const v5 = conn.isV5;
  conn.respond(encodePacket({ cmd: 'unsuback', messageId: u.messageId ?? 0, granted: codes }, v5 ? 5 : 4), durable);
}
