import { PacketType, encodeAck, type AckPacket } from '../codec.js';
import { ReasonCode } from '../reason-codes.js';
import type { Connection } from '../connection.js';

/*
 * The packets come from `decodeAck`, which refused wrong lengths, flags, reason codes and packet
 * identifier 0 as malformed: every id here is 1-65535.
 */

/** PUBACK (§3.4): the client received an outbound QoS 1 message. Unknown ids are ignored. */
export function handlePuback(conn: Connection, p: AckPacket): void {
  conn.session?.onPuback(p.packetId);
}

/**
 * PUBREC (§3.5): answer PUBREL with the same id [MQTT-4.3.3-4]; 0x92 when unknown (5.0). For a
 * persistent session the PUBREL goes out once the released state is stored.
 */
export function handlePubrec(conn: Connection, p: AckPacket): void {
  const id = p.packetId;
  const { known, durable } = conn.session?.onPubrec(id, p.reasonCode) ?? { known: false, durable: undefined };
  if (p.reasonCode >= 0x80) return;
  conn.respond(encodeAck(PacketType.Pubrel, id, known ? 0 : ReasonCode.PacketIdentifierNotFound, conn.protocolVersion), durable);
}

/**
 * PUBREL (§3.6): release the inbound QoS 2 id and answer PUBCOMP [MQTT-4.3.3-11], once the
 * release is stored (a persistent session): a PUBCOMP before that could let a restarted server
 * take the client's next message with the reused id for a retransmission.
 */
export function handlePubrel(conn: Connection, p: AckPacket): void {
  const id = p.packetId;
  const { known, durable } = conn.session?.releasedQos2(id) ?? { known: false, durable: undefined };
  conn.respond(encodeAck(PacketType.Pubcomp, id, known ? 0 : ReasonCode.PacketIdentifierNotFound, conn.protocolVersion), durable);
}

/** PUBCOMP (§3.7): the outbound QoS 2 exchange is complete. */
export function handlePubcomp(conn: Connection, p: AckPacket): void {
  conn.session?.onPubcomp(p.packetId);
}
