import { Reader } from './wire/reader.js';
import { Writer } from './wire/writer.js';
import { requestHeader, responseHeader, API_BY_KEY } from './messages/index.js';
import { UnsupportedApiVersionError } from './errors.js';

/** An API as generated (see messages/<api>/index.ts). */
export interface ApiCodec<Req = unknown, Resp = unknown> {
  readonly key: number;
  readonly name: string;
  readonly minVersion: number;
  readonly maxVersion: number;
  readonly flexibleFrom: number;
  readonly codecs: Readonly<
    Record<
      number,
      {
        decodeRequest(r: Reader): Req;
        encodeRequest(w: Writer, m: Req): void;
        decodeResponse(r: Reader): Resp;
        encodeResponse(w: Writer, m: Resp): void;
      }
    >
  >;
}

export const API_KEY_API_VERSIONS = 18;

export interface RequestHeader {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
  clientId: string | null;
}

export function isFlexible(api: ApiCodec, version: number): boolean {
  return api.flexibleFrom >= 0 && version >= api.flexibleFrom;
}

/**
 * Request header version: v2 (tagged fields after the client id) for flexible request versions,
 * v1 otherwise. An ApiVersions request of a version we do not know is read with header v1: its
 * answer must be possible without understanding it (KIP-511).
 */
export function requestHeaderVersion(apiKey: number, apiVersion: number): number {
  const api = (API_BY_KEY as Record<number, ApiCodec | undefined>)[apiKey];
  if (api === undefined || apiVersion < api.minVersion || apiVersion > api.maxVersion) return 1;
  return isFlexible(api, apiVersion) ? 2 : 1;
}

/** Response header v1 for flexible versions, v0 otherwise, and always v0 for ApiVersions. */
export function responseHeaderVersion(api: ApiCodec, version: number): number {
  if (api.key === API_KEY_API_VERSIONS) return 0;
  return isFlexible(api, version) ? 1 : 0;
}

/** Decodes the request header of a frame; the reader is left at the start of the body. */
export function decodeRequestHeader(frame: Buffer): { header: RequestHeader; body: Reader } {
  const r = new Reader(frame);
  const apiKey = r.int16();
  const apiVersion = r.int16();
  r.pos = 0;
  const hv = requestHeaderVersion(apiKey, apiVersion);
  const codec = requestHeader.codecs[hv as 0 | 1 | 2];
  const h = codec.decodeRequest(r);
  return {
    header: { apiKey: h.requestApiKey, apiVersion: h.requestApiVersion, correlationId: h.correlationId, clientId: h.clientId ?? null },
    body: r,
  };
}

/** The API codec for a key and version, or UnsupportedApiVersionError. */
export function apiFor(apiKey: number, apiVersion: number): ApiCodec {
  const api = (API_BY_KEY as Record<number, ApiCodec | undefined>)[apiKey];
  if (api === undefined || apiVersion < api.minVersion || apiVersion > api.maxVersion)
    throw new UnsupportedApiVersionError(apiKey, apiVersion);
  return api;
}

/** Encodes a whole response frame (size prefix, header, body) as chunks ready for the socket. */
export function encodeResponseFrame(api: ApiCodec, version: number, correlationId: number, body: unknown, bodyVersion = version): Buffer[] {
  const w = new Writer(512);
  w.int32(0); // size, patched below
  const hv = responseHeaderVersion(api, version);
  responseHeader.codecs[hv as 0 | 1].encodeResponse(w, { correlationId });
  api.codecs[bodyVersion]!.encodeResponse(w, body);
  const size = w.length - 4;
  const chunks = w.chunks();
  chunks[0]!.writeInt32BE(size, 0);
  return chunks;
}

/** Encodes a request frame (used by tests and tools acting as a client). */
export function encodeRequestFrame(api: ApiCodec, version: number, correlationId: number, clientId: string | null, body: unknown): Buffer {
  const w = new Writer(512);
  w.int32(0);
  const hv = isFlexible(api, version) ? 2 : 1;
  requestHeader.codecs[hv as 1 | 2].encodeRequest(w, { requestApiKey: api.key, requestApiVersion: version, correlationId, clientId });
  api.codecs[version]!.encodeRequest(w, body);
  const buf = w.toBuffer();
  buf.writeInt32BE(buf.length - 4, 0);
  return buf;
}

/** Decodes a response frame body (without the size prefix), for tests and tools. */
export function decodeResponseFrame(api: ApiCodec, version: number, frame: Buffer): { correlationId: number; body: unknown } {
  const r = new Reader(frame);
  const hv = responseHeaderVersion(api, version);
  const h = responseHeader.codecs[hv as 0 | 1].decodeResponse(r);
  return { correlationId: h.correlationId, body: api.codecs[version]!.decodeResponse(r) };
}
