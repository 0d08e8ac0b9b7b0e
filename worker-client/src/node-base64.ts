/**
 * Base64 on Node's Buffer for the protocol's argument checks: media that a task's args give as
 * base64 reach the handler as Buffers (MediaFile.data), decoded at Buffer's speed.
 */
import type { Base64Codec } from '@utils-hub/protocol';

/** Buffer's base64: `encode` reads the bytes in place (no copy); `decode` returns a Buffer. */
export const nodeBase64: Base64Codec = {
  encode: (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64'),
  decode: (s) => Buffer.from(s, 'base64'),
};
