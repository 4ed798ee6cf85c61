import { PacketType, encodeAck, isValidUtf8, type PublishPacket } from '../codec.js';
import { MqttProtocolError, ReasonCode } from '../reason-codes.js';
import { checkTopicName } from '../topic.js';
import type { Connection } from '../connection.js';
import type { Message } from '../message.js';

/**
 * PUBLISH from a client (spec §3.3): topic alias resolution, validation, routing, and the
 * acknowledgement for its QoS — sent only once every copy that must be stored is durable.
 */
export function handlePublish(conn: Connection, p: PublishPacket): void {
  const engine = conn.engine;
  const c = engine.config;
  const v5 = conn.isV5;
  const session = conn.session;
  if (session === undefined) return;
  engine.stats.received[p.qos]++;
  const sec = engine.security;
  if (sec !== undefined && (sec.limits.publishRatePerClient > 0 || sec.limits.publishBytesPerSecPerClient > 0)) {
    // Over the client's publish budget: reading pauses until the bucket refills.
    const { waitMs, limit } = conn.sec.throttle(sec.limits, p.payload.length, Date.now());
    if (waitMs > 0 && limit !== undefined) {
      sec.metrics.rateLimited.inc({ limit });
      engine.limitHit(limit, conn.clientId);
      conn.throttle(waitMs);
    }
  }

  if (p.qos > 0 && v5) {
    // More unacknowledged QoS 1/2 PUBLISHes than our Receive Maximum [MQTT-3.3.4-9]
    if (conn.inboundPending + session.inboundQos2.size >= c.receiveMaximum && !(p.qos === 2 && session.inboundQos2.has(p.packetId))) {
      engine.limitHit('receive_maximum', conn.clientId);
      throw new MqttProtocolError(ReasonCode.ReceiveMaximumExceeded, 'receive maximum exceeded');
    }
  }

  let topic = p.topic;
  const props = p.properties;
  if (props?.topicAlias !== undefined) {
    const a = props.topicAlias;
    // Alias 0 or above our Topic Alias Maximum is a Topic Alias Invalid error [MQTT-3.3.2-8] [MQTT-3.3.2-9]
    if (a === 0 || a > c.topicAliasMaximum) throw new MqttProtocolError(ReasonCode.TopicAliasInvalid, `topic alias ${a}`);
    if (topic.length > 0) conn.aliasesIn.set(a, topic);
    else {
      const known = conn.aliasesIn.get(a);
      // An empty topic with an alias that has no mapping is a Protocol Error (5.0 §3.3.2.3.4)
      if (known === undefined) throw new MqttProtocolError(ReasonCode.ProtocolError, `unknown topic alias ${a}`);
      topic = known;
    }
    delete props.topicAlias;
  }

  const problem = checkTopicName(topic, c);
  if (problem !== undefined) {
    if (problem === 'too_long' || problem === 'too_many_levels') {
      engine.limitHit(problem === 'too_long' ? 'topic_length' : 'topic_levels', conn.clientId);
      conn.log.warn({ clientId: conn.clientId, problem }, 'publish topic over limit');
    }
    // Wildcards in a topic name [MQTT-3.3.2-2] / empty name without alias [MQTT-4.7.3-1]
    if (v5 && p.qos > 0 && (problem === 'too_long' || problem === 'too_many_levels')) {
      ack(conn, p, ReasonCode.TopicNameInvalid);
      return;
    }
    throw new MqttProtocolError(ReasonCode.TopicNameInvalid, `topic name ${problem}`);
  }
  if (p.retain && !c.retainAvailable) throw new MqttProtocolError(ReasonCode.RetainNotSupported, 'retain not available');

  if (props?.payloadFormatIndicator === 1 && !isValidUtf8(p.payload)) {
    // Payload Format Indicator 1 with a payload that is not UTF-8 (5.0 §3.3.2.3.2): 0x99
    if (p.qos === 0) throw new MqttProtocolError(ReasonCode.PayloadFormatInvalid, 'payload is not UTF-8');
    ack(conn, p, ReasonCode.PayloadFormatInvalid);
    return;
  }

  // Exactly once: a retransmitted QoS 2 PUBLISH whose id is not yet released is not routed
  // again, only acknowledged again [MQTT-4.3.3-10]
  if (p.qos === 2 && session.inboundQos2.has(p.packetId)) {
    conn.respond(encodeAck(PacketType.Pubrec, p.packetId));
    return;
  }

  const now = Date.now();
  const m: Message = { topic, payload: p.payload, qos: p.qos, retain: p.retain, receivedAt: now, publisherId: conn.clientId };
  if (props !== undefined && Object.keys(props).length > 0) {
    m.properties = props;
    if (props.messageExpiryInterval !== undefined) m.expiresAt = now + props.messageExpiryInterval * 1000;
  }
  if (topic.startsWith('$SYS')) {
    // $SYS/ is written by the server only; client messages there are acknowledged and dropped
    // (a QoS 2 id is recorded, so the client's PUBREL completes with PUBCOMP 0x00).
    ack(conn, p, ReasonCode.Success, p.qos === 2 ? session.receivedQos2(p.packetId) : undefined);
    return;
  }
  if (sec !== undefined && !sec.authorize(conn.sec, 'publish', topic)) {
    sec.noteDenied(conn.clientId, 'publish', topic);
    // 5.0: PUBACK/PUBREC 0x87 Not authorized; 3.1.1 has no way to say it: the message is
    // dropped and acknowledged as usual, so the client's flow is not stuck.
    if (v5) ack(conn, p, ReasonCode.NotAuthorized);
    else ack(conn, p, ReasonCode.Success, p.qos === 2 ? session.receivedQos2(p.packetId) : undefined);
    return;
  }
  const { matched, durable } = engine.publish(m, session);
  // The message is routed now (ordered with the client's other messages) while its id is
  // stored; the PUBREC waits for both, so once it is sent a restart cannot deliver the id twice.
  const received = p.qos === 2 ? session.receivedQos2(p.packetId) : undefined;
  ack(
    conn,
    p,
    matched === 0 && v5 ? ReasonCode.NoMatchingSubscribers : ReasonCode.Success,
    received === undefined ? durable : durable === undefined ? received : Promise.all([durable, received]),
  );
}

function ack(conn: Connection, p: PublishPacket, reasonCode: number, durable?: Promise<unknown>): void {
  if (p.qos === 0) return;
  const bytes = encodeAck(p.qos === 1 ? PacketType.Puback : PacketType.Pubrec, p.packetId, reasonCode, conn.protocolVersion);
  if (p.qos === 1) {
    conn.inboundPending++;
    conn.respond(bytes, durable, true);
  } else conn.respond(bytes, durable);
}
