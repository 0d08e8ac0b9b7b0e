/**
 * The attachment codec (PROTOCOL.md section 5). STUB: signatures fixed, body to be written.
 */
import type { HubError } from './errors.js';

/** A message ready for the wire: one text frame, then its binary frames in order. */
export interface EncodedMessage {
  text: string;
  binaries: Buffer[];
}

/**
 * Encodes a message for a WebSocket. Every object in it whose `data` is a Buffer or Uint8Array
 * (`{mime, name?, data}`) becomes `{"$attachment": k, mime, name}` and every bare Buffer or
 * Uint8Array becomes `{"$attachment": k}`, k counting from 0 in document order; the bytes become
 * binary frames and `"attachments": n` is set on the message when n > 0. The input is not mutated.
 * Throws HubError `payload_too_large` past 16 attachments.
 */
export declare function encodeMessage(message: object): EncodedMessage;

/** Options of FrameDecoder. */
export interface FrameDecoderOptions {
  /** Most binary frames one message may announce. Default 16. */
  maxAttachments?: number;
  /** Most bytes of all binary frames of one message together. Default 33554432. */
  maxAttachmentBytes?: number;
  /** Called with each whole message: attachment refs replaced by `{...rest, data: Buffer}`; `raw` is its text frame. */
  onMessage: (message: Record<string, unknown>, raw: string) => void;
  /** Called for each broken frame or sequence, with a HubError `bad_message` (or `payload_too_large`). */
  onError: (error: HubError) => void;
}

/**
 * Reassembles a connection's frames into messages. Feed it every frame with `push`. A text frame
 * that is not a JSON object with a string `type`, an `attachments` count that is not 1 to the
 * maximum, a binary frame nobody announced, a text frame that arrives while binary frames are
 * still owed (the owed message is dropped with an error, the new one is read), a `$attachment`
 * index outside the frames sent, or bytes over the limit: `onError(bad_message)`, and the decoder
 * is ready for the next message. Nothing thrown escapes `push`.
 */
export declare class FrameDecoder {
  constructor(options: FrameDecoderOptions);
  push(frame: Buffer | string, isBinary: boolean): void;
  /** Binary frames still owed to the message being assembled (0 when idle). */
  readonly pending: number;
}

/**
 * Turns media bytes into base64 for REST answers: every `{mime, name?, data: Buffer}` becomes
 * `{mime, name?, data: "<base64>"}` and every bare Buffer `{mime: "application/octet-stream", data}`.
 * Returns a new value; the input is not mutated.
 */
export declare function inlineMedia(value: unknown): unknown;

/** Decodes a `data:` URL into mime and bytes, or returns null if it is not a well-formed base64 data URL. */
export declare function decodeDataUrl(url: string): { mime: string; data: Buffer } | null;

/** True when `s` is well-formed base64 (standard alphabet, padding optional but consistent). */
export declare function isBase64(s: string): boolean;
