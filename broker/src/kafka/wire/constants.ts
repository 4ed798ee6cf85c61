/** Shared constant values of the generated codecs. */

/** The null/zero topic id (Kafka's `Uuid.ZERO_UUID`). */
export const ZERO_UUID = '00000000-0000-0000-0000-000000000000';

/** An empty byte string (default of `bytes` and `records` fields). */
export const EMPTY: Buffer = Buffer.alloc(0);
