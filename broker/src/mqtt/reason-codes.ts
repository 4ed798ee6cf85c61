/**
 * MQTT 5.0 reason codes the server sends (spec §2.4), and how each maps to the 3.1.1 CONNACK
 * return codes and SUBACK failure code. One table for the protocol, beside its codec (STYLE §5).
 */
export const ReasonCode = {
  Success: 0x00,
  GrantedQos1: 0x01,
  GrantedQos2: 0x02,
  DisconnectWithWill: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  QuotaExceeded: 0x97,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QosNotSupported: 0x9b,
  SharedSubscriptionsNotSupported: 0x9e,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;
export type ReasonCode = (typeof ReasonCode)[keyof typeof ReasonCode];

/** 3.1.1 CONNACK return codes (§3.2.2.3). */
export const ConnectReturnCode = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUserNameOrPassword: 4,
  NotAuthorized: 5,
} as const;
export type ConnectReturnCode = (typeof ConnectReturnCode)[keyof typeof ConnectReturnCode];

/** The 3.1.1 return code closest to a 5.0 CONNACK reason code. */
export function toConnectReturnCode(rc: number): ConnectReturnCode {
  switch (rc) {
    case ReasonCode.Success:
      return ConnectReturnCode.Accepted;
    case ReasonCode.UnsupportedProtocolVersion:
      return ConnectReturnCode.UnacceptableProtocolVersion;
    case ReasonCode.ClientIdentifierNotValid:
      return ConnectReturnCode.IdentifierRejected;
    case ReasonCode.BadUserNameOrPassword:
      return ConnectReturnCode.BadUserNameOrPassword;
    case ReasonCode.NotAuthorized:
    case ReasonCode.BadAuthenticationMethod:
      return ConnectReturnCode.NotAuthorized;
    default:
      return ConnectReturnCode.ServerUnavailable;
  }
}

/** 3.1.1 SUBACK failure return code [MQTT-3.9.3-2]. */
export const SUBACK_FAILURE = 0x80;

/** An error a packet handler throws to end the connection with a reason code (5.0 DISCONNECT). */
export class MqttProtocolError extends Error {
  readonly reasonCode: ReasonCode;
  constructor(reasonCode: ReasonCode, message: string) {
    super(message);
    this.name = new.target.name;
    this.reasonCode = reasonCode;
  }
}
