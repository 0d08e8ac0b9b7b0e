/**
 * The attachment codec (docs/protocol.md section 5): media bytes travel as binary frames that follow
 * their message, referred to inside it as `{"$attachment": k}`. Also the base64 and `data:` URL
 * helpers that REST and argument checking share.
 *
 * This is the hub's hot path, so the decoder parses each text frame once and walks a message only
 * when it announces attachments; every walk is bounded in depth and reads own keys only, so a
 * hostile message cannot blow the stack or reach Object.prototype.
 */
import { HubError } from './errors.js';
import { MAX_ATTACHMENTS } from './schemas.js';

/**
 * Deepest level of objects and arrays (the message itself being level 1) that the codec walks; an
 * attachment ref or media object may sit in a container of the last level. A message with
 * attachments that nests containers deeper is refused with `bad_message`; `encodeMessage` and
 * `inlineMedia` leave anything deeper untouched.
 */
export const MAX_MESSAGE_DEPTH = 64;
/** Default bound of the bytes of all binary frames of one message: 32 MiB (HUB_MAX_MESSAGE_BYTES). */
export const DEFAULT_MAX_ATTACHMENT_BYTES = 33_554_432;
/** The mime type given to bytes that come without one. */
export const OCTET_STREAM = 'application/octet-stream';

/** A message ready for the wire: one text frame, then its binary frames in order. */
export interface EncodedMessage {
  text: string;
  binaries: Buffer[];
}

type Obj = Record<string, unknown>;

function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array; // Buffer included
}

/** A Buffer over the same memory (no copy). */
function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/**
 * Sets an own property even when the key is `__proto__` (a plain assignment would set the
 * prototype of an object that does not already own that key).
 */
function setOwn(o: Obj, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  else o[key] = value;
}

function hasOwn(o: object, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, key);
}

// ---- encoding ----

function take(binaries: Buffer[], bytes: Uint8Array): number {
  if (binaries.length >= MAX_ATTACHMENTS) {
    throw new HubError('payload_too_large', `a message carries at most ${MAX_ATTACHMENTS} attachments`);
  }
  binaries.push(toBuffer(bytes));
  return binaries.length - 1;
}

/**
 * Replaces bytes by attachment refs, copying only the objects and arrays on the way to a change
 * (a message without bytes comes back as the same object). `depth` is the level of `v`.
 */
function extract(v: unknown, binaries: Buffer[], depth: number): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (isBytes(v)) return { $attachment: take(binaries, v) };
  if (Array.isArray(v)) {
    if (depth > MAX_MESSAGE_DEPTH) return v;
    let copy: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      const y = extract(x, binaries, depth + 1);
      if (y !== x) (copy ??= v.slice())[i] = y;
    }
    return copy ?? v;
  }
  const o = v as Obj;
  // A media object becomes the ref itself, `$attachment` first; the message root never does
  // (its `data` may be bytes, as in a progress message: that becomes a bare ref).
  if (depth > 1 && hasOwn(o, 'data') && isBytes(o.data)) {
    const ref: Obj = { $attachment: take(binaries, o.data) };
    for (const k of Object.keys(o)) if (k !== 'data') setOwn(ref, k, extract(o[k], binaries, depth + 1));
    return ref;
  }
  if (depth > MAX_MESSAGE_DEPTH) return v;
  let copy: Obj | undefined;
  for (const k of Object.keys(o)) {
    const x = o[k];
    const y = extract(x, binaries, depth + 1);
    if (y !== x) setOwn((copy ??= { ...o }), k, y);
  }
  return copy ?? o;
}

/**
 * Encodes a message for a WebSocket. Every object in it whose `data` is a Buffer or Uint8Array
 * (`{mime, name?, data}`) becomes `{"$attachment": k, mime, name}` and every bare Buffer or
 * Uint8Array becomes `{"$attachment": k}`, k counting from 0 in document order; the bytes become
 * binary frames and `"attachments": n` is set on the message when n > 0 (an `attachments` field
 * already on the message, as a decoded message keeps it, is replaced or removed to match). The
 * input is not mutated. Bytes nested deeper than MAX_MESSAGE_DEPTH are not looked for.
 * Throws HubError `payload_too_large` past 16 attachments, and `bad_message` for a value that
 * JSON cannot write (a cycle, a BigInt, nesting deeper than the stack).
 */
export function encodeMessage(message: object): EncodedMessage {
  const binaries: Buffer[] = [];
  let out = extract(message, binaries, 1) as Obj;
  if (binaries.length > 0 || hasOwn(out, 'attachments')) {
    if (out === message) out = { ...out };
    delete out.attachments;
    if (binaries.length > 0) out.attachments = binaries.length;
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(out);
  } catch (err) {
    throw new HubError('bad_message', `the message cannot be written as JSON: ${(err as Error).message}`);
  }
  if (typeof text !== 'string') throw new HubError('bad_message', 'the message cannot be written as JSON');
  return { text, binaries };
}

// ---- decoding ----

/** Options of FrameDecoder. */
export interface FrameDecoderOptions {
  /** Most binary frames one message may announce. Default 16. */
  maxAttachments?: number;
  /** Most bytes of all binary frames of one message together. Default 33554432. */
  maxAttachmentBytes?: number;
  /**
   * Called with each whole message: attachment refs replaced by `{...rest, data: Buffer}`; `raw`
   * is its text frame and `attachments` its binary frames in order (empty when none), so that a
   * relay can forward the frames as they came.
   */
  onMessage: (message: Record<string, unknown>, raw: string, attachments: readonly Buffer[]) => void;
  /** Called for each broken frame or sequence, with a HubError `bad_message` (or `payload_too_large`). */
  onError: (error: HubError) => void;
}

const NO_FRAMES: readonly Buffer[] = Object.freeze([]);

/** What a frame may be: ws hands Buffer, ArrayBuffer or Buffer[] depending on its `binaryType`. */
export type Frame = Buffer | Uint8Array | ArrayBuffer | Buffer[] | string;

function frameBuffer(frame: Frame): Buffer {
  if (typeof frame === 'string') return Buffer.from(frame, 'utf8');
  if (Array.isArray(frame)) return Buffer.concat(frame);
  if (frame instanceof ArrayBuffer) return Buffer.from(frame);
  return toBuffer(frame);
}

/** `ref` and `task_id` of a refused message, so that the error answer can name its request. */
function about(msg: Obj): Obj {
  const d: Obj = {};
  if (typeof msg.ref === 'string' && msg.ref.length <= 256) d.ref = msg.ref;
  if (typeof msg.task_id === 'string' && msg.task_id.length <= 64) d.task_id = msg.task_id;
  return d;
}

function typeOf(msg: Obj): string {
  return JSON.stringify(String(msg.type).slice(0, 64));
}

/**
 * Replaces the attachment refs `{"$attachment": k, ...rest}` inside `container` (a message at
 * level 1, its members at level 2...), in place, by `{...rest, data: frames[k]}`. Returns the
 * first problem (a ref naming no frame, nesting deeper than MAX_MESSAGE_DEPTH) and stops there,
 * or undefined. Reads own enumerable keys only. The one resolver: the codec's, and the hub's for
 * a stored result and its stored media.
 */
export function resolveRefs(container: Record<string, unknown> | unknown[], frames: readonly Buffer[], depth: number): string | undefined {
  const keys = Array.isArray(container) ? null : Object.keys(container);
  const n = keys ? keys.length : (container as unknown[]).length;
  for (let i = 0; i < n; i++) {
    const key = keys ? keys[i] : i;
    // `key` is an own key, so reading or assigning it (even `__proto__`) touches the own property.
    const child = (container as Obj)[key as string];
    if (typeof child !== 'object' || child === null) continue;
    if (!Array.isArray(child) && hasOwn(child, '$attachment')) {
      const { $attachment: k, ...rest } = child as Obj;
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k >= frames.length) {
        const shown = typeof k === 'string' ? JSON.stringify(k.slice(0, 40)) : typeof k === 'number' ? String(k) : typeof k;
        return `"$attachment" ${shown} does not name one of the ${frames.length} attachment(s) of this message`;
      }
      rest.data = frames[k];
      (container as Obj)[key as string] = rest;
      continue;
    }
    if (depth >= MAX_MESSAGE_DEPTH) return `a message with attachments may nest at most ${MAX_MESSAGE_DEPTH} levels deep`;
    const problem = resolveRefs(child as Obj, frames, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * Reassembles a connection's frames into messages. Feed it every frame with `push`. A text frame
 * that is not a JSON object with a string `type`, an `attachments` count that is not 1 to the
 * maximum, a binary frame nobody announced, a text frame that arrives while binary frames are
 * still owed (the owed message is dropped with an error, the new one is read), a `$attachment`
 * index outside the frames sent, or bytes over the limit: `onError(bad_message)`, and the decoder
 * is ready for the next message. Nothing thrown escapes `push`.
 *
 * The message handed to `onMessage` is the parsed text frame as it is, `attachments` field
 * included, except that each `{"$attachment": k, ...rest}` is replaced by `{...rest, data}` with
 * the k-th Buffer; its schema is not checked here (that is `parseMessage`'s job). A message
 * without `attachments` is handed on without being walked. Frames announced but never referred
 * to are dropped; one frame may be referred to twice. When a message is refused for its count
 * (over the maximum) or its bytes (`payload_too_large`), the binary frames it still owes are
 * swallowed without further errors until the next text frame. An exception thrown by `onMessage`
 * is passed to `onError` (a HubError as it is, anything else as `internal`); one thrown by
 * `onError` is ignored.
 */
export class FrameDecoder {
  readonly #maxAttachments: number;
  readonly #maxBytes: number;
  readonly #onMessage: FrameDecoderOptions['onMessage'];
  readonly #onError: FrameDecoderOptions['onError'];
  #message: Obj | null = null;
  #raw = '';
  #owed = 0;
  #frames: Buffer[] = [];
  #bytes = 0;
  /** Binary frames of a refused message still to swallow silently. */
  #skip = 0;

  constructor(options: FrameDecoderOptions) {
    this.#maxAttachments = options.maxAttachments ?? MAX_ATTACHMENTS;
    this.#maxBytes = options.maxAttachmentBytes ?? DEFAULT_MAX_ATTACHMENT_BYTES;
    this.#onMessage = options.onMessage;
    this.#onError = options.onError;
  }

  /** Binary frames still owed to the message being assembled (0 when idle). */
  get pending(): number {
    return this.#message ? this.#owed - this.#frames.length : 0;
  }

  /** Feeds one frame; `isBinary` as ws reports it. Never throws. */
  push(frame: Frame, isBinary: boolean): void {
    try {
      if (isBinary) this.#binary(frame);
      else this.#text(frame);
    } catch (err) {
      // Only a fault of this code gets here; stay usable.
      this.#reset();
      this.#fail(err instanceof HubError ? err : new HubError('internal', 'the frame could not be decoded'));
    }
  }

  #reset(): void {
    this.#message = null;
    this.#raw = '';
    this.#owed = 0;
    this.#frames = [];
    this.#bytes = 0;
  }

  #fail(error: HubError): void {
    try {
      this.#onError(error);
    } catch {
      // A throwing handler must not break the decoder.
    }
  }

  #deliver(message: Obj, raw: string, attachments: readonly Buffer[] = NO_FRAMES): void {
    try {
      this.#onMessage(message, raw, attachments);
    } catch (err) {
      this.#fail(err instanceof HubError ? err : new HubError('internal', 'the message could not be handled'));
    }
  }

  #text(frame: Frame): void {
    const owing = this.#message;
    if (owing) {
      const got = this.#frames.length;
      const owed = this.#owed;
      this.#reset();
      this.#fail(new HubError('bad_message',
        `a ${typeOf(owing)} message announced ${owed} attachment(s), but the next message came after ${got}`, about(owing)));
    }
    this.#skip = 0;
    const raw = typeof frame === 'string' ? frame : frameBuffer(frame).toString('utf8');
    let msg: unknown;
    try {
      msg = JSON.parse(raw);
    } catch {
      this.#fail(new HubError('bad_message', 'a text frame must hold valid JSON'));
      return;
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || typeof (msg as Obj).type !== 'string') {
      this.#fail(new HubError('bad_message', 'a message must be a JSON object with a string "type"'));
      return;
    }
    const m = msg as Obj;
    if (!hasOwn(m, 'attachments')) {
      this.#deliver(m, raw);
      return;
    }
    const n = m.attachments;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > this.#maxAttachments) {
      if (typeof n === 'number' && Number.isInteger(n) && n > this.#maxAttachments) this.#skip = n;
      const shown = typeof n === 'number' ? String(n) : n === null ? 'null' : typeof n;
      this.#fail(new HubError('bad_message',
        `"attachments" must be a whole number from 1 to ${this.#maxAttachments}, got ${shown}`, about(m)));
      return;
    }
    this.#message = m;
    this.#raw = raw;
    this.#owed = n;
  }

  #binary(frame: Frame): void {
    const message = this.#message;
    if (!message) {
      if (this.#skip > 0) this.#skip--;
      else this.#fail(new HubError('bad_message', 'a binary frame must follow a message that announces it'));
      return;
    }
    const buf = frameBuffer(frame);
    this.#bytes += buf.length;
    if (this.#bytes > this.#maxBytes) {
      const left = this.#owed - this.#frames.length - 1;
      this.#reset();
      this.#skip = left;
      this.#fail(new HubError('payload_too_large',
        `the attachments of a ${typeOf(message)} message exceed ${this.#maxBytes} bytes`, about(message)));
      return;
    }
    this.#frames.push(buf);
    if (this.#frames.length < this.#owed) return;
    const frames = this.#frames;
    const raw = this.#raw;
    this.#reset();
    const problem = resolveRefs(message, frames, 1);
    if (problem) this.#fail(new HubError('bad_message', problem, about(message)));
    else this.#deliver(message, raw, frames);
  }
}

// ---- REST and base64 ----

function inline(v: unknown, depth: number): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (isBytes(v)) return { mime: OCTET_STREAM, data: toBuffer(v).toString('base64') };
  if (depth > MAX_MESSAGE_DEPTH) return v;
  if (Array.isArray(v)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      const y = inline(x, depth + 1);
      if (y !== x) (copy ??= v.slice())[i] = y;
    }
    return copy ?? v;
  }
  const o = v as Obj;
  if (hasOwn(o, 'data') && isBytes(o.data)) {
    const out: Obj = {};
    if (typeof o.mime !== 'string') out.mime = OCTET_STREAM;
    for (const k of Object.keys(o)) {
      setOwn(out, k, k === 'data' ? toBuffer(o.data).toString('base64') : k === 'mime' && typeof o.mime !== 'string' ? OCTET_STREAM : inline(o[k], depth + 1));
    }
    return out;
  }
  let copy: Obj | undefined;
  for (const k of Object.keys(o)) {
    const x = o[k];
    const y = inline(x, depth + 1);
    if (y !== x) setOwn((copy ??= { ...o }), k, y);
  }
  return copy ?? o;
}

/**
 * Turns media bytes into base64 for REST answers: every `{mime, name?, data: Buffer}` becomes
 * `{mime, name?, data: "<base64>"}` and every bare Buffer `{mime: "application/octet-stream", data}`.
 * Returns a new value; the input is not mutated (unchanged parts are shared, not copied).
 * A media object without a string `mime` gets `application/octet-stream`. Nothing nested deeper
 * than MAX_MESSAGE_DEPTH is looked at.
 */
export function inlineMedia(value: unknown): unknown {
  return inline(value, 1);
}

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** True when `s` is well-formed base64 (standard alphabet, padding optional but consistent). */
export function isBase64(s: string): boolean {
  if (typeof s !== 'string') return false;
  const n = s.length;
  if (n % 4 === 1) return false;
  if (n > 0 && s.charCodeAt(n - 1) === 61 /* = */ && n % 4 !== 0) return false;
  return BASE64_RE.test(s);
}

/** The number of bytes that well-formed base64 `s` decodes to, without decoding it. */
export function base64ByteLength(s: string): number {
  let n = s.length;
  if (n > 0 && s.charCodeAt(n - 1) === 61) n--;
  if (n > 0 && s.charCodeAt(n - 1) === 61) n--;
  return Math.floor((n * 3) / 4);
}

/** A mime type: `type/subtype`, with optional parameters. */
export const MIME_RE = /^[A-Za-z0-9][\w!#$&^.+-]*\/[A-Za-z0-9][\w!#$&^.+-]*(?:\s*;[^\r\n]*)?$/;

/**
 * Splits a `data:` URL into its mime type and base64 text without decoding it, or returns null if
 * it is not a well-formed base64 data URL (`data:[<mime>][;params];base64,<base64>`). An empty
 * mime type reads as `text/plain` (RFC 2397).
 */
export function parseDataUrl(url: string): { mime: string; base64: string } | null {
  if (typeof url !== 'string' || url.length < 5 || url.slice(0, 5).toLowerCase() !== 'data:') return null;
  const comma = url.indexOf(',');
  if (comma < 0 || comma > 512) return null;
  const params = url.slice(5, comma).split(';');
  if (params.pop()!.trim().toLowerCase() !== 'base64') return null;
  const mime = params.join(';').trim() || 'text/plain';
  if (mime.length > 255 || !MIME_RE.test(mime)) return null;
  const base64 = url.slice(comma + 1);
  return isBase64(base64) ? { mime, base64 } : null;
}

/** Decodes a `data:` URL into mime and bytes, or returns null if it is not a well-formed base64 data URL. */
export function decodeDataUrl(url: string): { mime: string; data: Buffer } | null {
  const parts = parseDataUrl(url);
  return parts ? { mime: parts.mime, data: Buffer.from(parts.base64, 'base64') } : null;
}
