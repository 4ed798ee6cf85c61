import type { KafkaContext, RequestInfo } from '../context.js';
import { KafkaError } from '../errors.js';
import { SaslAuthError, type SaslMechanism } from '../sasl.js';
import type { SaslHandshakeRequest, SaslHandshakeResponse } from '../messages/sasl-handshake/index.js';
import type { SaslAuthenticateRequest, SaslAuthenticateResponse } from '../messages/sasl-authenticate/index.js';

/**
 * SaslHandshake v0–1: picks the mechanism. UNSUPPORTED_SASL_MECHANISM lists the enabled ones
 * (none when SASL is off); a second handshake is ILLEGAL_SASL_STATE. After v0 the tokens come
 * as raw frames (kafka-python), after v1 inside SaslAuthenticate.
 */
export async function handleSaslHandshake(
  _ctx: KafkaContext,
  req: SaslHandshakeRequest,
  info: RequestInfo,
): Promise<SaslHandshakeResponse> {
  const sasl = info.sasl;
  const mechanisms = [...(sasl?.enabled ?? [])];
  if (sasl === undefined || !sasl.required) return { errorCode: KafkaError.UNSUPPORTED_SASL_MECHANISM, mechanisms };
  if (sasl.mechanism !== undefined || sasl.authenticated) return { errorCode: KafkaError.ILLEGAL_SASL_STATE, mechanisms };
  const m = req.mechanism.toUpperCase();
  if (!(mechanisms as string[]).includes(m)) return { errorCode: KafkaError.UNSUPPORTED_SASL_MECHANISM, mechanisms };
  sasl.mechanism = m as SaslMechanism;
  sasl.raw = info.apiVersion === 0;
  return { errorCode: KafkaError.NONE, mechanisms };
}

/**
 * SaslAuthenticate v0–2: one token of the exchange. Without a handshake (or once authenticated)
 * ILLEGAL_SASL_STATE; bad credentials SASL_AUTHENTICATION_FAILED with a message. Either error
 * closes the connection after the response (the server checks `sasl.failed`).
 */
export async function handleSaslAuthenticate(
  ctx: KafkaContext,
  req: SaslAuthenticateRequest,
  info: RequestInfo,
): Promise<SaslAuthenticateResponse> {
  const sasl = info.sasl;
  const fail = (errorCode: number, errorMessage: string): SaslAuthenticateResponse => {
    if (sasl !== undefined) sasl.failed = true;
    return { errorCode, errorMessage, authBytes: Buffer.alloc(0), sessionLifetimeMs: 0n };
  };
  if (sasl === undefined || sasl.mechanism === undefined || sasl.raw || sasl.authenticated)
    return fail(KafkaError.ILLEGAL_SASL_STATE, 'Unexpected SaslAuthenticate request: no SaslHandshake v1 or already authenticated');
  try {
    const authBytes = await sasl.step(req.authBytes);
    return { errorCode: KafkaError.NONE, errorMessage: null, authBytes, sessionLifetimeMs: 0n };
  } catch (err) {
    if (err instanceof SaslAuthError) {
      ctx.log.info({ err, ip: info.clientHost, clientId: info.clientId }, 'kafka sasl authentication failed');
      return fail(KafkaError.SASL_AUTHENTICATION_FAILED, err.message);
    }
    throw err;
  }
}
