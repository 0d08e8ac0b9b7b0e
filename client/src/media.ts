import { isBase64, portableBase64 } from '@utils-hub/protocol/core';

/**
 * Media as the SDK takes and gives it (docs/protocol.md section 4): `{mime, name?, data}` with the bytes
 * in `data`. Works in browsers as well as in Node: bytes are `Uint8Array`s (Node's `Buffer` is one),
 * `Blob`s are read when a message is sent, and Buffer is used only where it exists.
 */

/** Bytes the SDK accepts in `data`: a Buffer, any Uint8Array, an ArrayBuffer or a Blob (a File too). */
export type MediaData = Uint8Array | ArrayBuffer | Blob;

/**
 * Media to send: its mime type (such as `image/png`), an optional file name, and its bytes.
 * Anything of this shape inside the `args` of a task goes out as an attachment (a binary frame),
 * never as base64.
 */
export interface MediaInput {
  mime: string;
  name?: string;
  data: MediaData;
}

/**
 * Media as the SDK hands it back (results, progress data, conversation answers): the bytes are a
 * `Buffer` in Node and a `Uint8Array` elsewhere.
 */
export interface Media {
  mime: string;
  name?: string;
  data: Uint8Array;
}

type NodeBuffer = Uint8Array & { toString(encoding: 'base64'): string };
interface BufferCtor {
  from(data: ArrayBuffer, offset?: number, length?: number): NodeBuffer;
  from(data: string, encoding: 'base64'): NodeBuffer;
  isBuffer(v: unknown): boolean;
}

/** Node's Buffer when this runtime has one; undefined in a browser. */
const NodeBuffer: BufferCtor | undefined = (globalThis as { Buffer?: BufferCtor }).Buffer;

/** True when `v` is a Blob (a File too) in a runtime that has them. */
export function isBlob(v: unknown): v is Blob {
  return typeof Blob !== 'undefined' && v instanceof Blob;
}

/** True when `v` is bytes that the SDK sends as an attachment. */
export function isMediaData(v: unknown): v is MediaData {
  return v instanceof Uint8Array || v instanceof ArrayBuffer || isBlob(v);
}

/**
 * Bytes as the SDK hands them out: a Buffer over the same memory in Node (no copy), the
 * Uint8Array itself elsewhere.
 */
export function outputBytes(data: Uint8Array | ArrayBuffer): Uint8Array {
  const u = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (!NodeBuffer || NodeBuffer.isBuffer(u)) return u;
  return NodeBuffer.from(u.buffer as ArrayBuffer, u.byteOffset, u.byteLength);
}

/** Synchronous bytes of `data` (a view, not a copy); undefined for a Blob, which must be read. */
export function syncBytes(data: MediaData): Uint8Array | undefined {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return undefined;
}

/**
 * Wraps bytes as media to put in the `args` of a task: `media(png, 'image/png', 'cat.png')`.
 * For a Blob or File, `mime` defaults to its `type` and `name` to the File's name.
 * Throws TypeError when no mime type is given or known.
 */
export function media(data: MediaData, mime?: string, name?: string): MediaInput {
  const blobType = isBlob(data) ? data.type : '';
  const fileName = isBlob(data) ? (data as Blob & { name?: unknown }).name : undefined;
  const type = mime ?? (blobType || undefined);
  if (typeof type !== 'string' || type.length === 0) throw new TypeError('media(): give the mime type, such as "image/png"');
  const out: MediaInput = { mime: type, data };
  const n = name ?? (typeof fileName === 'string' ? fileName : undefined);
  if (n !== undefined) out.name = n;
  return out;
}

/**
 * Reads a Blob (a File too) into media whose bytes are at hand, as a conversation needs them:
 * `await mediaFromBlob(file)`. `mime` defaults to the Blob's type (else
 * `application/octet-stream`), `name` to the File's name.
 */
export async function mediaFromBlob(blob: Blob, mime?: string, name?: string): Promise<Media> {
  const m = media(blob, mime ?? (blob.type || 'application/octet-stream'), name);
  return { ...m, data: outputBytes(await blob.arrayBuffer()) };
}

// ---- base64: Buffer where Node has it (faster), the protocol's portable codec elsewhere ----

/** Standard base64 of `bytes`. */
export function toBase64(bytes: Uint8Array): string {
  if (NodeBuffer) return NodeBuffer.from(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength).toString('base64');
  return portableBase64.encode(bytes);
}

/** The bytes of standard base64 `text` (a Buffer in Node). Throws TypeError on malformed text. */
export function fromBase64(text: string): Uint8Array {
  if (!isBase64(text)) throw new TypeError('malformed base64');
  return NodeBuffer ? NodeBuffer.from(text, 'base64') : portableBase64.decode(text);
}
