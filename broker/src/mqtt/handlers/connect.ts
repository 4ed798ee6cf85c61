import type { IConnackPacket, IConnectPacket } from 'mqtt-packet';
import {
  checkConnectPropertyStrings,
  encodePacket,
  isValidUtf8,
  peekConnectProtocol,
  PacketDecoder,
  decodeConnectV3,
  type Frame,
  type PublishProperties,
  type UserProperty,
} from '../codec.js';
import { MqttProtocolError, ReasonCode, toConnectReturnCode } from '../reason-codes.js';
import { checkTopicName } from '../topic.js';
import { NEVER_EXPIRES } from '../session.js';
import type { Connection } from '../connection.js';
import type { StoredMessage, WillRecord } from '../stores/types.js';
import type { ConnectAttempt, ConnectDecision } from '../../auth/security.js';

/** mqtt-packet's user properties (an object of string | string[]) as ordered pairs. */
export function toUserProperties(up: Record<string, string | string[]> | undefined): UserProperty[] | undefined {
  if (up === undefined) return undefined;
  const out: UserProperty[] = [];
  for (const [k, v] of Object.entries(up)) {
    if (Array.isArray(v)) for (const x of v) out.push([k, x]);
    else out.push([k, v]);
  }
  return out;
}

/** A string decoded by mqtt-packet (which replaces bad bytes by U+FFFD) that was valid UTF-8 without U+0000. */
export function isCleanString(s: string): boolean {
  return !s.includes('\ufffd') && !s.includes('\u0000');
}

/** 3.1 / 3.1.1 CONNACK: fixed header, remaining length 2, session present flag, return code (§3.2). */
const CONNACK_ACCEPTED = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const CONNACK_ACCEPTED_PRESENT = Buffer.from([0x20, 0x02, 0x01, 0x00]);

function sendConnack(conn: Connection, reasonCode: number, sessionPresent: boolean, properties?: IConnackPacket['properties']): void {
  if (conn.protocolVersion !== 5) {
    const rc = toConnectReturnCode(reasonCode);
    // Session Present is 0 with a non-zero return code [MQTT-3.2.2-4]
    conn.write(rc !== 0 ? Buffer.from([0x20, 0x02, 0x00, rc]) : sessionPresent ? CONNACK_ACCEPTED_PRESENT : CONNACK_ACCEPTED);
    return;
  }
  const p: IConnackPacket = { cmd: 'connack', sessionPresent, reasonCode, ...(properties !== undefined ? { properties } : {}) };
  let bytes = encodePacket(p, 5);
  // the reason string goes only if it fits the client's Maximum Packet Size [MQTT-3.2.2-19]
  if (bytes.length > conn.clientMaxPacketSize && properties?.reasonString !== undefined) {
    const { reasonString: _dropped, ...rest } = properties;
    bytes = encodePacket({ ...p, properties: rest }, 5);
  }
  conn.write(bytes);
}

/** Refuses the CONNECT: CONNACK with the reason, then the connection closes [MQTT-3.2.2-6] [MQTT-3.2.2-7]. */
function refuse(conn: Connection, reasonCode: number, why: string): void {
  conn.log.info({ clientId: conn.clientId, reasonCode, why }, 'mqtt connect refused');
  conn.engine.metrics.disconnects.inc({ reason: 'connect_refused' });
  sendConnack(conn, reasonCode, false, conn.protocolVersion === 5 && conn.requestProblemInformation ? { reasonString: why } : undefined);
  conn.close();
}

/** Decodes a CONNECT of a known protocol level and checks what the decoder leaves to us. */
function decodeCheckedConnect(conn: Connection, f: Frame, level: number): IConnectPacket {
  const p = decodeConnectV3(f) ?? (PacketDecoder.forVersion(level).decode(f) as IConnectPacket);
  const v5 = level === 5;
  const props = p.properties;
  if (v5 && props?.requestProblemInformation === false) conn.requestProblemInformation = false;

  // 3.1.1: a password requires a username [MQTT-3.1.2-22]
  if (!v5 && p.password !== undefined && p.username === undefined)
    throw new MqttProtocolError(ReasonCode.MalformedPacket, 'password without username');
  if (p.will !== undefined && (p.will.qos as number) > 2) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'will QoS 3');
  if (!isCleanString(p.clientId) || (p.username !== undefined && !isCleanString(p.username))) {
    throw new MqttProtocolError(ReasonCode.MalformedPacket, 'ill-formed UTF-8 in CONNECT');
  }
  if (v5) {
    // mqtt-packet turns bad bytes in property strings into U+FFFD: those are checked on the raw bytes
    checkConnectPropertyStrings(f);
    if (props?.receiveMaximum === 0) throw new MqttProtocolError(ReasonCode.ProtocolError, 'receive maximum 0');
    if (props?.maximumPacketSize === 0) throw new MqttProtocolError(ReasonCode.ProtocolError, 'maximum packet size 0');
    // known from here on, so that even a refusing CONNACK respects it
    if (props?.maximumPacketSize !== undefined) conn.clientMaxPacketSize = props.maximumPacketSize;
  }
  return p;
}

/**
 * CONNECT (spec §3.1): validates protocol name and level, flags, client identifier, will and
 * properties; opens, resumes or takes over the session; answers CONNACK.
 */
export function handleConnect(conn: Connection, f: Frame): void {
  const engine = conn.engine;
  const c = engine.config;
  const proto = peekConnectProtocol(f);
  if (proto === undefined) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'truncated CONNECT');
  const known =
    (proto.name === 'MQTT' && (proto.level === 4 || proto.level === 5)) || (proto.name === 'MQIsdp' && proto.level === 3 && c.allowMqtt31);
  if (!known) {
    if (proto.name !== 'MQTT' && proto.name !== 'MQIsdp') {
      // An incorrect protocol name: the server MAY disconnect [MQTT-3.1.2-1]
      throw new MqttProtocolError(ReasonCode.UnsupportedProtocolVersion, `protocol name ${JSON.stringify(proto.name)}`);
    }
    // Unsupported level: CONNACK 0x01 (3.1.1 format) then close [MQTT-3.1.2-2]
    conn.protocolVersion = 4;
    refuse(conn, ReasonCode.UnsupportedProtocolVersion, `protocol level ${proto.level}`);
    return;
  }
  conn.protocolVersion = proto.level;
  const v5 = proto.level === 5;
  let p: IConnectPacket;
  try {
    p = decodeCheckedConnect(conn, f, proto.level);
  } catch (err) {
    // 5.0: a malformed CONNECT or a protocol error in it is answered with a CONNACK carrying
    // the reason code (0x81, 0x82) and what was wrong, then the connection closes [MQTT-4.13.1-1]
    if (v5 && err instanceof MqttProtocolError) {
      refuse(conn, err.reasonCode, err.message);
      return;
    }
    throw err;
  }
  const props = p.properties;

  let clientId = p.clientId;
  conn.clientId = clientId;
  conn.refreshLog();
  let assigned: string | undefined;
  if (clientId.length === 0) {
    // 3.1 requires 1-23 characters; 3.1.1 allows an empty id only with CleanSession=1
    // [MQTT-3.1.3-7] [MQTT-3.1.3-8]; 5.0 assigns one and returns it [MQTT-3.1.3-6] [MQTT-3.2.2-16]
    if (!c.allowEmptyClientId || proto.level === 3 || (proto.level === 4 && !p.clean)) {
      refuse(conn, ReasonCode.ClientIdentifierNotValid, 'empty client identifier');
      return;
    }
    clientId = engine.assignClientId();
    conn.clientId = clientId;
    conn.refreshLog();
    if (v5) assigned = clientId;
  } else if (proto.level === 3 && clientId.length > 23 && [...clientId].length > 23) {
    // 3.1: the client identifier is 1 to 23 characters, else return code 2 (identifier
    // rejected); 3.1.1 and 5.0 servers may accept longer ones [MQTT-3.1.3-5]
    refuse(conn, ReasonCode.ClientIdentifierNotValid, 'client identifier longer than 23 characters');
    return;
  }

  const sec = engine.security;
  const authMethod = v5 ? props?.authenticationMethod : undefined;
  if (authMethod !== undefined && (sec === undefined || !sec.offersScram(conn.info.listener, authMethod))) {
    // An enhanced authentication method this listener does not offer (5.0 §4.12)
    refuse(conn, ReasonCode.BadAuthenticationMethod, `authentication method ${authMethod} not supported`);
    return;
  }

  if (engine.connectedCount >= c.maxConnections) {
    engine.limitHit('connections', clientId);
    conn.log.warn({ clientId, maxConnections: c.maxConnections }, 'connection limit reached');
    refuse(conn, v5 ? ReasonCode.QuotaExceeded : ReasonCode.ServerUnavailable, 'connection limit reached');
    return;
  }

  let will: WillRecord | undefined;
  if (p.will !== undefined) {
    const topic = p.will.topic;
    if (!isCleanString(topic)) throw new MqttProtocolError(ReasonCode.MalformedPacket, 'ill-formed UTF-8 will topic');
    if (checkTopicName(topic, c) !== undefined) {
      refuse(conn, ReasonCode.TopicNameInvalid, 'invalid will topic');
      return;
    }
    if (p.will.retain && !c.retainAvailable) {
      refuse(conn, ReasonCode.RetainNotSupported, 'retain not available');
      return;
    }
    const wp = p.will.properties;
    const payload = Buffer.isBuffer(p.will.payload) ? p.will.payload : Buffer.from(p.will.payload);
    if (wp?.payloadFormatIndicator === true && !isValidUtf8(payload)) {
      refuse(conn, ReasonCode.PayloadFormatInvalid, 'will payload is not UTF-8');
      return;
    }
    const now = Date.now();
    const message: StoredMessage = {
      topic,
      payload: Buffer.from(payload),
      qos: (p.will.qos ?? 0) as 0 | 1 | 2,
      retain: p.will.retain === true,
      receivedAt: now,
      publisherId: clientId,
    };
    if (wp !== undefined) {
      const mp: PublishProperties = {};
      if (wp.payloadFormatIndicator !== undefined) mp.payloadFormatIndicator = wp.payloadFormatIndicator ? 1 : 0;
      if (wp.contentType !== undefined) mp.contentType = wp.contentType;
      if (wp.responseTopic !== undefined) mp.responseTopic = wp.responseTopic;
      if (wp.correlationData !== undefined) mp.correlationData = Buffer.from(wp.correlationData);
      const up = toUserProperties(wp.userProperties as Record<string, string | string[]> | undefined);
      if (up !== undefined) mp.userProperties = up;
      if (wp.messageExpiryInterval !== undefined) mp.messageExpiryInterval = wp.messageExpiryInterval;
      message.properties = mp;
    }
    will = { message, delaySec: wp?.willDelayInterval ?? 0 };
  }

  // Session Expiry Interval: 5.0 from the property (absent = 0); 3.x CleanSession=0 sessions
  // never expire unless a maximum is configured.
  let expirySec: number;
  if (v5) expirySec = props?.sessionExpiryInterval ?? 0;
  else expirySec = p.clean ? 0 : NEVER_EXPIRES;
  let expiryChanged = false;
  if (c.maxSessionExpirySec > 0 && expirySec > c.maxSessionExpirySec) {
    expirySec = c.maxSessionExpirySec;
    expiryChanged = true;
  }

  // Keep alive: the server may impose its own (5.0 Server Keep Alive [MQTT-3.2.2-21])
  let keepAlive = p.keepalive ?? 0;
  let serverKeepAlive: number | undefined;
  if (c.maxKeepAliveSec > 0 && (keepAlive === 0 || keepAlive > c.maxKeepAliveSec)) {
    if (v5) {
      keepAlive = c.maxKeepAliveSec;
      serverKeepAlive = keepAlive;
    }
  }
  conn.keepAliveSec = keepAlive;
  if (v5) {
    conn.outboundWindow = Math.min(props?.receiveMaximum ?? 65535, c.maxInflightMessages);
    conn.clientTopicAliasMax = props?.topicAliasMaximum ?? 0;
  }
  conn.decoderVersion = proto.level;

  if (sec === undefined) {
    completeConnect(conn, p, clientId, expirySec, will, { expiryChanged, assigned, serverKeepAlive }, undefined, undefined);
    return;
  }
  // Authentication is asynchronous (meta cache, scrypt, webhook): packets wait meanwhile.
  const attempt: ConnectAttempt = {
    info: conn.info,
    clientId,
    username: p.username,
    password: p.password === undefined ? undefined : Buffer.from(p.password),
  };
  const extra = { expiryChanged, assigned, serverKeepAlive };
  const decided = (d: ConnectDecision & { data?: Buffer }): void => {
    if (conn.closed) return;
    if (!d.ok) {
      refuse(conn, d.reasonCode, d.why);
      return;
    }
    conn.sec.principal = d.principal;
    if (d.principal.username !== undefined) conn.refreshLog();
    if (d.expiresAt !== undefined) {
      conn.sec.expireAt(d.expiresAt, () => {
        sec.noteTokenExpired(conn.clientId);
        conn.close(ReasonCode.NotAuthorized, 'token expired');
      });
    }
    let w = will;
    if (w !== undefined && !sec.authorize(conn.sec, 'publish', w.message.topic)) {
      // A will the client may not publish is dropped (the connection itself is allowed).
      sec.noteDenied(clientId, 'publish', w.message.topic);
      w = undefined;
    }
    conn.guard(() => completeConnect(conn, p, clientId, expirySec, w, extra, authMethod, d.data));
    conn.release();
  };
  const failed = (err: unknown): void => {
    conn.log.error({ err, clientId }, 'authentication failed');
    if (!conn.closed) refuse(conn, ReasonCode.UnspecifiedError, 'authentication failed');
  };
  conn.hold();
  if (authMethod === undefined) {
    sec.authenticate(attempt).then(decided, failed);
    return;
  }
  // SCRAM-SHA-256: CONNECT carries client-first; AUTH 0x18 answers server-first; the client's
  // AUTH carries client-final; CONNACK carries server-final (5.0 §4.12).
  sec.scramStart(attempt, props?.authenticationData, conn.sec).then((r) => {
    if (conn.closed) return;
    if (!r.ok) {
      refuse(conn, r.reasonCode, r.why);
      return;
    }
    conn.sec.pendingConnect = (data) => decided(sec.scramFinish(attempt, data, conn.sec));
    conn.write(
      encodePacket(
        {
          cmd: 'auth',
          reasonCode: ReasonCode.ContinueAuthentication,
          properties: { authenticationMethod: authMethod, authenticationData: r.data },
        },
        5,
      ),
    );
    conn.release();
  }, failed);
}

/** Opens or resumes the session and answers CONNACK, once the client is authenticated. */
function completeConnect(
  conn: Connection,
  p: IConnectPacket,
  clientId: string,
  expirySec: number,
  will: WillRecord | undefined,
  extra: { expiryChanged: boolean; assigned: string | undefined; serverKeepAlive: number | undefined },
  authMethod: string | undefined,
  authData: Buffer | undefined,
): void {
  const engine = conn.engine;
  const c = engine.config;
  const v5 = conn.isV5;
  const props = p.properties;
  const { expiryChanged, assigned, serverKeepAlive } = extra;
  if (engine.connectedCount >= c.maxConnections) {
    engine.limitHit('connections', clientId);
    conn.log.warn({ clientId, maxConnections: c.maxConnections }, 'connection limit reached');
    refuse(conn, v5 ? ReasonCode.QuotaExceeded : ReasonCode.ServerUnavailable, 'connection limit reached');
    return;
  }
  const { session, present } = engine.openSession(conn, clientId, !p.clean, expirySec, conn.protocolVersion, will);

  let connackProps: IConnackPacket['properties'];
  if (v5) {
    connackProps = {
      receiveMaximum: c.receiveMaximum,
      maximumPacketSize: c.maxPacketSizeBytes,
      topicAliasMaximum: c.topicAliasMaximum,
      retainAvailable: c.retainAvailable,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      sharedSubscriptionAvailable: true,
    };
    if (expiryChanged) connackProps.sessionExpiryInterval = expirySec;
    if (assigned !== undefined) connackProps.assignedClientIdentifier = assigned;
    if (serverKeepAlive !== undefined) connackProps.serverKeepAlive = serverKeepAlive;
    // Request Response Information: the server MAY answer with a prefix for response topics
    if (props?.requestResponseInformation === true) connackProps.responseInformation = `$response/${clientId}/`;
    if (authMethod !== undefined) {
      connackProps.authenticationMethod = authMethod;
      if (authData !== undefined) connackProps.authenticationData = authData;
    }
  }
  conn.connected = true;
  sendConnack(conn, ReasonCode.Success, present, connackProps);
  engine.onConnected(conn);
  if (present) session.resume();
}
