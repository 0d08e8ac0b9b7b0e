/**
 * Base64 on Node's Buffer for the protocol's codec and argument checks: faster than the
 * protocol's portable codec, and media decoded from base64 stay Buffers, as the hub's code and
 * its workers expect.
 */
import type { Base64Codec } from '@utils-hub/protocol';

/** Buffer's base64: `encode` reads the bytes in place (no copy); `decode` returns a Buffer. */
export const nodeBase64: Base64Codec = {
  encode: (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64'),
  decode: (s) => Buffer.from(s, 'base64'),
};
