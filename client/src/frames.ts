/**
 * The client's side of the WebSocket framing (docs/protocol.md section 5), on the protocol's
 * codec: what the SDK takes as bytes (Uint8Array, ArrayBuffer, Blob) becomes attachments, and
 * Blobs are read before the frames go out.
 */
import type { ClientToHubMessage } from '@utils-hub/protocol';
import { encodeParts, HubError, type AttachmentPart } from '@utils-hub/protocol/core';
import { isMediaData, syncBytes } from './media.js';

/** A message ready for the wire: its text frame, then its binary frames in order. */
export interface EncodedFrames {
  text: string;
  binaries: Uint8Array[];
}

type Part = Uint8Array | Promise<Uint8Array>;

/** The attachment of a value the SDK sends as bytes; a Blob (a File too) also gives its type and name. */
function partOf(v: object): AttachmentPart<Part> | undefined {
  if (!isMediaData(v)) return undefined;
  const bytes = syncBytes(v);
  if (bytes) return { part: bytes };
  const blob = v as Blob & { name?: unknown };
  return {
    part: blob.arrayBuffer().then((b) => new Uint8Array(b)),
    mime: blob.type || undefined,
    name: typeof blob.name === 'string' ? blob.name : undefined,
  };
}

/**
 * Encodes a message for the hub: every `{mime, name?, data}` whose `data` is bytes (Uint8Array,
 * ArrayBuffer, Blob), below the message's own members (so inside `args`, whose own `data` may be
 * an argument's name), becomes `{"$attachment": k, mime, name}`, and bare bytes become
 * `{"$attachment": k}` (a bare Blob keeps its type as `mime` and a File its name); `attachments`
 * is set to the number of binary frames. Blobs are read here, hence the promise. The input is not
 * mutated. Rejects with HubError `payload_too_large` past 16 attachments and `bad_request` for a
 * value that JSON cannot write.
 */
export async function encodeFrames(message: ClientToHubMessage): Promise<EncodedFrames> {
  // biome-ignore lint/suspicious/noImplicitAnyLet: typed by encodeParts's result, assigned in the try below
  let encoded;
  try {
    encoded = encodeParts(message, { partOf, mediaFrom: 3 });
  } catch (err) {
    // What the caller gave cannot be sent: their request is at fault, not a message of the hub.
    if (err instanceof HubError && err.code === 'bad_message') throw new HubError('bad_request', err.message);
    throw err;
  }
  return { text: encoded.text, binaries: await Promise.all(encoded.binaries) };
}
