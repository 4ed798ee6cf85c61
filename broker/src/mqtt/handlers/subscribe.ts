import type { ISubscribePacket, Packet } from 'mqtt-packet';
import { encodePacket } from '../codec.js';
import { MqttProtocolError, ReasonCode, SUBACK_FAILURE } from '../reason-codes.js';
import { checkTopicFilter, parseFilter } from '../topic.js';
import { isCleanString } from './connect.js';
import type { Connection } from '../connection.js';
import type { SubscriptionRecord } from '../stores/types.js';

/**
 * SUBSCRIBE (§3.8): validates each filter, adds or replaces the subscription [MQTT-3.8.4-3],
 * answers SUBACK with one code per filter in order [MQTT-3.8.4-6], then sends the matching
 * retained messages per Retain Handling.
 */
export function handleSubscribe(conn: Connection, p: Packet): void {
  const s = p as ISubscribePacket;
  const engine = conn.engine;
  const c = engine.config;
  const session = conn.session;
  if (session === undefined) return;
  const v5 = conn.isV5;
  const subId = s.properties?.subscriptionIdentifier as number | number[] | undefined;
  if (Array.isArray(subId)) throw new MqttProtocolError(ReasonCode.ProtocolError, 'more than one subscription identifier');
  // Subscription Identifier 0 is a Protocol Error (5.0 §3.8.2.1.2)
  if (subId === 0) throw new MqttProtocolError(ReasonCode.ProtocolError, 'subscription identifier 0');
  // A SUBSCRIBE with no filters is a Protocol Error [MQTT-3.8.3-3]
  if (s.subscriptions.length === 0) throw new MqttProtocolError(ReasonCode.ProtocolError, 'SUBSCRIBE without filters');

  const codes: number[] = [];
  const added: Array<{ rec: SubscriptionRecord; isNew: boolean }> = [];
  for (const req of s.subscriptions) {
    if (!isCleanString(req.topic)) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'ill-formed UTF-8 topic filter');
    const parsed = parseFilter(req.topic);
    const problem = parsed === undefined ? 'bad_share' : checkTopicFilter(parsed.filter, c);
    if (parsed === undefined || problem !== undefined) {
      if (problem === 'too_long' || problem === 'too_many_levels') {
        engine.limitHit(problem === 'too_long' ? 'topic_length' : 'topic_levels', conn.clientId);
        conn.log.warn({ clientId: conn.clientId, filter: req.topic, problem }, 'subscription filter over limit');
      }
      codes.push(v5 ? ReasonCode.TopicFilterInvalid : SUBACK_FAILURE);
      continue;
    }
    // No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4]
    if (parsed.group !== undefined && req.nl === true)
      throw new MqttProtocolError(ReasonCode.ProtocolError, 'no local on a shared subscription');
    const sec = engine.security;
    if (sec !== undefined && !sec.authorize(conn.sec, 'subscribe', req.topic)) {
      // Not authorized: 0x87 (5.0) / failure 0x80 (3.1.1) for this filter only
      sec.noteDenied(conn.clientId, 'subscribe', req.topic);
      codes.push(v5 ? ReasonCode.NotAuthorized : SUBACK_FAILURE);
      continue;
    }
    const existing = session.subscriptions.has(req.topic);
    if (!existing && session.subscriptions.size >= c.maxSubscriptionsPerClient) {
      engine.limitHit('subscriptions', conn.clientId);
      conn.log.warn({ clientId: conn.clientId, max: c.maxSubscriptionsPerClient }, 'subscription limit reached');
      codes.push(v5 ? ReasonCode.QuotaExceeded : SUBACK_FAILURE);
      continue;
    }
    const rec: SubscriptionRecord = {
      filter: req.topic,
      qos: Math.min(req.qos, 2) as 0 | 1 | 2,
      noLocal: v5 && req.nl === true,
      retainAsPublished: v5 && req.rap === true,
      retainHandling: v5 ? ((req.rh ?? 0) as 0 | 1 | 2) : 0,
    };
    if (subId !== undefined) rec.subscriptionId = subId;
    engine.subscribe(session, rec);
    added.push({ rec, isNew: !existing });
    // The granted QoS is the requested one: the server supports QoS 2 [MQTT-3.8.4-7]
    codes.push(rec.qos);
  }
  const suback = encodePacket({ cmd: 'suback', messageId: s.messageId, granted: codes }, conn.protocolVersion === 5 ? 5 : 4);
  const durable = added.length > 0 && session.isPersistent ? engine.saveSession(session) : undefined;
  conn.respond(suback, durable);
  if (added.length === 0) return;
  const sendRetained = (): void => {
    for (const { rec, isNew } of added) engine.sendRetained(session, rec, isNew);
  };
  if (durable === undefined) sendRetained();
  else durable.then(sendRetained, () => undefined);
}
