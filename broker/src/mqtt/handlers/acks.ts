import type { IPubackPacket, IPubcompPacket, IPubrecPacket, IPubrelPacket, Packet } from 'mqtt-packet';
import { PacketType, encodeAck } from '../codec.js';
import { ReasonCode } from '../reason-codes.js';
import type { Connection } from '../connection.js';

/** PUBACK (§3.4): the client received an outbound QoS 1 message. Unknown ids are ignored. */
export function handlePuback(conn: Connection, p: Packet): void {
  conn.session?.onPuback((p as IPubackPacket).messageId ?? 0);
}

/**
 * PUBREC (§3.5): answer PUBREL with the same id [MQTT-4.3.3-4]; 0x92 when unknown (5.0). For a
 * persistent session the PUBREL goes out once the released state is stored.
 */
export function handlePubrec(conn: Connection, p: Packet): void {
  const r = p as IPubrecPacket;
  const id = r.messageId ?? 0;
  const { known, durable } = conn.session?.onPubrec(id, r.reasonCode ?? 0) ?? { known: false, durable: undefined };
  if ((r.reasonCode ?? 0) >= 0x80) return;
  conn.respond(encodeAck(PacketType.Pubrel, id, known ? 0 : ReasonCode.PacketIdentifierNotFound, conn.protocolVersion), durable);
}

/**
 * PUBREL (§3.6): release the inbound QoS 2 id and answer PUBCOMP [MQTT-4.3.3-11], once the
 * release is stored (a persistent session): a PUBCOMP before that could let a restarted server
 * take the client's next message with the reused id for a retransmission.
 */
export function handlePubrel(conn: Connection, p: Packet): void {
  const id = (p as IPubrelPacket).messageId ?? 0;
  const { known, durable } = conn.session?.releasedQos2(id) ?? { known: false, durable: undefined };
  conn.respond(encodeAck(PacketType.Pubcomp, id, known ? 0 : ReasonCode.PacketIdentifierNotFound, conn.protocolVersion), durable);
}

/** PUBCOMP (§3.7): the outbound QoS 2 exchange is complete. */
export function handlePubcomp(conn: Connection, p: Packet): void {
  conn.session?.onPubcomp((p as IPubcompPacket).messageId ?? 0);
}
