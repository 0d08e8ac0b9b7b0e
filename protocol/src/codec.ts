/**
 * The attachment codec (docs/protocol.md section 5): media bytes travel as binary frames that
 * follow their message, referred to inside it as `{"$attachment": k}`. Also the base64 inlining
 * that REST answers use. Works on Uint8Array, so the hub, the SDKs and a browser share it; a
 * Buffer (a Uint8Array) passes through as itself, never copied.
 *
 * This is the hub's hot path, so the decoder parses each text frame once and walks a message only
 * when it announces attachments; every walk is bounded in depth and reads own keys only, so a
 * hostile message cannot blow the stack or reach Object.prototype.
 */
import { HubError } from './errors.js';
import { DEFAULT_MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS, MAX_MESSAGE_DEPTH, OCTET_STREAM } from './limits.js';
import { decodeUtf8, isBytes, joinBytes, portableBase64, type Base64Codec } from './bytes.js';
import { hasOwn, messageLabels, parseDataUrl, setOwn } from './rules.js';

/** A message ready for the wire: one text frame, then its binary frames in order. */
export interface EncodedMessage<P = Uint8Array> {
  text: string;
  binaries: P[];
}

/**
 * What one value that goes as an attachment gives: its binary frame (bytes, or whatever the
 * caller resolves to bytes later, such as a Blob being read), and for a bare value the `mime`
 * and `name` it knows of itself.
 */
export interface AttachmentPart<P> {
  part: P;
  mime?: string;
  name?: string;
}

/** Options of encodeParts. */
export interface EncodeOptions<P> {
  /** The attachment `v` is, or undefined when `v` is no bytes. */
  partOf: (v: object) => AttachmentPart<P> | undefined;
  /**
   * The least level (the message being 1) at which `{mime, data: bytes}` is media; a container
   * above it whose `data` is bytes is left a container (its `data` becomes a bare ref). Default 2.
   */
  mediaFrom?: number;
}

type Obj = Record<string, unknown>;

// ---- encoding ----

class Walk<P> {
  readonly parts: P[] = [];
  constructor(
    readonly partOf: (v: object) => AttachmentPart<P> | undefined,
    readonly mediaFrom: number,
  ) {}

  take(a: AttachmentPart<P>): Obj {
    if (this.parts.length >= MAX_ATTACHMENTS) {
      throw new HubError('payload_too_large', `a message carries at most ${MAX_ATTACHMENTS} attachments`);
    }
    this.parts.push(a.part);
    const ref: Obj = { $attachment: this.parts.length - 1 };
    if (a.mime) ref.mime = a.mime;
    if (a.name !== undefined) ref.name = a.name;
    return ref;
  }

  /**
   * Replaces bytes by attachment refs, copying only the objects and arrays on the way to a change
   * (a message without bytes comes back as the same object). `depth` is the level of `v`.
   */
  extract(v: unknown, depth: number): unknown {
    if (typeof v !== 'object' || v === null) return v;
    const bare = this.partOf(v);
    if (bare) return this.take(bare);
    if (Array.isArray(v)) {
      if (depth > MAX_MESSAGE_DEPTH) return v;
      let copy: unknown[] | undefined;
      for (let i = 0; i < v.length; i++) {
        const x: unknown = v[i];
        const y = this.extract(x, depth + 1);
        if (y !== x) (copy ??= v.slice())[i] = y;
      }
      return copy ?? v;
    }
    const o = v as Obj;
    // A media object becomes the ref itself, `$attachment` first; its own fields win over what
    // its bytes know of themselves. The message root never does (its `data` may be bytes, as in
    // a progress message: that becomes a bare ref).
    if (depth >= this.mediaFrom && hasOwn(o, 'data') && typeof o.data === 'object' && o.data !== null) {
      const a = this.partOf(o.data);
      if (a) {
        const ref = this.take(a);
        for (const k of Object.keys(o)) if (k !== 'data') setOwn(ref, k, this.extract(o[k], depth + 1));
        return ref;
      }
    }
    if (depth > MAX_MESSAGE_DEPTH) return v;
    let copy: Obj | undefined;
    for (const k of Object.keys(o)) {
      const x = o[k];
      const y = this.extract(x, depth + 1);
      if (y !== x) setOwn((copy ??= { ...o }), k, y);
    }
    return copy ?? o;
  }
}

/**
 * Encodes a message for a WebSocket with the caller's notion of bytes (`options.partOf`): every
 * object in it whose `data` is bytes (`{mime, name?, data}`, from level `mediaFrom` on) becomes
 * `{"$attachment": k, mime, name}` and all other bytes `{"$attachment": k}`, k counting from 0 in
 * document order; the parts become the binary frames and `"attachments": n` is set on the message
 * when n > 0 (an `attachments` field already on the message, as a decoded message keeps it, is
 * replaced or removed to match). The input is not mutated. Bytes nested deeper than
 * MAX_MESSAGE_DEPTH are not looked for. Throws HubError `payload_too_large` past 16 attachments,
 * and `bad_message` for a value that JSON cannot write (a cycle, a BigInt, nesting deeper than
 * the stack).
 */
export function encodeParts<P>(message: object, options: EncodeOptions<P>): EncodedMessage<P> {
  const walk = new Walk(options.partOf, options.mediaFrom ?? 2);
  let out = walk.extract(message, 1) as Obj;
  const n = walk.parts.length;
  if (n > 0 || hasOwn(out, 'attachments')) {
    if (out === message) out = { ...out };
    delete out.attachments;
    if (n > 0) out.attachments = n;
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(out);
  } catch (err) {
    throw new HubError('bad_message', `the message cannot be written as JSON: ${(err as Error).message}`);
  }
  if (typeof text !== 'string') throw new HubError('bad_message', 'the message cannot be written as JSON');
  return { text, binaries: walk.parts };
}

const bytesPart = (v: object): AttachmentPart<Uint8Array> | undefined => (isBytes(v) ? { part: v } : undefined);

/**
 * Encodes a message whose bytes are Uint8Arrays (Buffers included, sent as they are, not
 * copied): see encodeParts, with media objects from level 2 on.
 */
export function encodeMessage(message: object): EncodedMessage {
  return encodeParts(message, { partOf: bytesPart });
}

// ---- decoding ----

/** Options of FrameDecoder. */
export interface FrameDecoderOptions {
  /** Most binary frames one message may announce. Default 16. */
  maxAttachments?: number;
  /** Most bytes of all binary frames of one message together. Default 33554432. */
  maxAttachmentBytes?: number;
  /**
   * Called with each whole message: attachment refs replaced by `{...rest, data: bytes}` (each
   * binary frame as it was pushed: a Buffer from ws stays a Buffer); `raw`
   * is its text frame and `attachments` its binary frames in order (empty when none), so that a
   * relay can forward the frames as they came.
   */
  onMessage: (message: Record<string, unknown>, raw: string, attachments: readonly Uint8Array[]) => void;
  /** Called for each broken frame or sequence, with a HubError `bad_message` (or `payload_too_large`). */
  onError: (error: HubError) => void;
}

const NO_FRAMES: readonly Uint8Array[] = Object.freeze([]);

/**
 * What a frame may be: ws hands a Buffer, an ArrayBuffer or a Buffer[] depending on its
 * `binaryType`, a browser a string or an ArrayBuffer.
 */
export type Frame = Uint8Array | ArrayBuffer | readonly Uint8Array[] | string;

/** The bytes of a frame: the Uint8Array (or Buffer) itself, a view of an ArrayBuffer, fragments joined, or text as UTF-8. */
function frameBytes(frame: Frame): Uint8Array {
  if (frame instanceof Uint8Array) return frame;
  if (typeof frame === 'string') return new TextEncoder().encode(frame);
  if (frame instanceof ArrayBuffer) return new Uint8Array(frame);
  return joinBytes(frame);
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
export function resolveRefs(container: Record<string, unknown> | unknown[], frames: readonly Uint8Array[], depth: number): string | undefined {
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
 * the k-th frame; its schema is not checked here (that is `parseMessage`'s job). A message
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
  #frames: Uint8Array[] = [];
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

  #deliver(message: Obj, raw: string, attachments: readonly Uint8Array[] = NO_FRAMES): void {
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
      this.#fail(
        new HubError('bad_message', `a ${typeOf(owing)} message announced ${owed} attachment(s), but the next message came after ${got}`, messageLabels(owing)),
      );
    }
    this.#skip = 0;
    const raw = typeof frame === 'string' ? frame : decodeUtf8(frameBytes(frame));
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
      this.#fail(new HubError('bad_message', `"attachments" must be a whole number from 1 to ${this.#maxAttachments}, got ${shown}`, messageLabels(m)));
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
    const buf = frameBytes(frame);
    this.#bytes += buf.length;
    if (this.#bytes > this.#maxBytes) {
      const left = this.#owed - this.#frames.length - 1;
      this.#reset();
      this.#skip = left;
      this.#fail(new HubError('payload_too_large', `the attachments of a ${typeOf(message)} message exceed ${this.#maxBytes} bytes`, messageLabels(message)));
      return;
    }
    this.#frames.push(buf);
    if (this.#frames.length < this.#owed) return;
    const frames = this.#frames;
    const raw = this.#raw;
    this.#reset();
    const problem = resolveRefs(message, frames, 1);
    if (problem) this.#fail(new HubError('bad_message', problem, messageLabels(message)));
    else this.#deliver(message, raw, frames);
  }
}

// ---- REST and base64 ----

function inline(v: unknown, depth: number, b64: Base64Codec): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (isBytes(v)) return { mime: OCTET_STREAM, data: b64.encode(v) };
  if (depth > MAX_MESSAGE_DEPTH) return v;
  if (Array.isArray(v)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      const y = inline(x, depth + 1, b64);
      if (y !== x) (copy ??= v.slice())[i] = y;
    }
    return copy ?? v;
  }
  const o = v as Obj;
  if (hasOwn(o, 'data') && isBytes(o.data)) {
    const out: Obj = {};
    if (typeof o.mime !== 'string') out.mime = OCTET_STREAM;
    for (const k of Object.keys(o)) {
      setOwn(out, k, k === 'data' ? b64.encode(o.data) : k === 'mime' && typeof o.mime !== 'string' ? OCTET_STREAM : inline(o[k], depth + 1, b64));
    }
    return out;
  }
  let copy: Obj | undefined;
  for (const k of Object.keys(o)) {
    const x = o[k];
    const y = inline(x, depth + 1, b64);
    if (y !== x) setOwn((copy ??= { ...o }), k, y);
  }
  return copy ?? o;
}

/**
 * Turns media bytes into base64 for REST answers: every `{mime, name?, data: bytes}` becomes
 * `{mime, name?, data: "<base64>"}` and all other bytes `{mime: "application/octet-stream", data}`.
 * Returns a new value; the input is not mutated (unchanged parts are shared, not copied).
 * A media object without a string `mime` gets `application/octet-stream`. Nothing nested deeper
 * than MAX_MESSAGE_DEPTH is looked at. `base64` defaults to the portable codec.
 */
export function inlineMedia(value: unknown, base64: Base64Codec = portableBase64): unknown {
  return inline(value, 1, base64);
}

/**
 * Decodes a `data:` URL into mime and bytes, or returns null if it is not a well-formed base64
 * data URL. `base64` defaults to the portable codec.
 */
export function decodeDataUrl(url: string, base64: Base64Codec = portableBase64): { mime: string; data: Uint8Array } | null {
  const parts = parseDataUrl(url);
  return parts ? { mime: parts.mime, data: base64.decode(parts.base64) } : null;
}
