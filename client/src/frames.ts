/**
 * The client's side of the WebSocket framing (PROTOCOL.md section 5): a text frame holding one
 * JSON message, followed by the `attachments` binary frames it announces, referred to inside it as
 * `{"$attachment": k, mime, name}`.
 *
 * The protocol package has a codec of its own, but it is built on Node's Buffer; this one works on
 * Uint8Array and Blob so that the SDK runs in a browser too. Walks are bounded in depth and read
 * own keys only, so a hostile message can neither blow the stack nor reach Object.prototype.
 */
import { HubError } from '@utils-hub/protocol/errors';
import { isBlob, isMediaData, outputBytes, syncBytes, type MediaData } from './media.js';

/** Most binary frames one message may carry (PROTOCOL.md section 5). */
export const MAX_ATTACHMENTS = 16;
/** Deepest nesting (the message itself being level 1) that encoding and decoding walk. */
export const MAX_DEPTH = 64;

/** A message ready for the wire: its text frame, then its binary frames in order. */
export interface EncodedFrames {
  text: string;
  binaries: Uint8Array[];
}

type Obj = Record<string, unknown>;

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** Sets an own property even for the key `__proto__`. */
function setOwn(o: Obj, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  else o[key] = value;
}

// ---- encoding ----

class Collector {
  readonly parts: Array<Uint8Array | Promise<Uint8Array>> = [];

  take(data: MediaData): number {
    if (this.parts.length >= MAX_ATTACHMENTS) {
      throw new HubError('payload_too_large', `a message carries at most ${MAX_ATTACHMENTS} attachments`);
    }
    const bytes = syncBytes(data);
    this.parts.push(bytes ?? (data as Blob).arrayBuffer().then((b) => new Uint8Array(b)));
    return this.parts.length - 1;
  }
}

function extract(v: unknown, c: Collector, depth: number): unknown {
  if (typeof v !== 'object' || v === null) return v;
  if (isMediaData(v)) {
    const ref: Obj = { $attachment: c.take(v) };
    // A bare Blob still knows its type (and a File its name).
    if (isBlob(v)) {
      if (v.type) ref.mime = v.type;
      const name = (v as Blob & { name?: unknown }).name;
      if (typeof name === 'string') ref.name = name;
    }
    return ref;
  }
  if (depth > MAX_DEPTH) return v;
  if (Array.isArray(v)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const y = extract(v[i], c, depth + 1);
      if (y !== v[i]) (copy ??= v.slice())[i] = y;
    }
    return copy ?? v;
  }
  const o = v as Obj;
  // `{mime, name?, data: bytes}` becomes the ref itself. The root and its members (such as
  // `args`, whose own `data` may be an argument's name) are containers, never media.
  if (depth > 2 && hasOwn(o, 'data') && isMediaData(o.data)) {
    const ref: Obj = { $attachment: c.take(o.data) };
    if (isBlob(o.data) && o.data.type && !hasOwn(o, 'mime')) ref.mime = o.data.type;
    for (const k of Object.keys(o)) if (k !== 'data') setOwn(ref, k, extract(o[k], c, depth + 1));
    return ref;
  }
  let copy: Obj | undefined;
  for (const k of Object.keys(o)) {
    const y = extract(o[k], c, depth + 1);
    if (y !== o[k]) setOwn((copy ??= { ...o }), k, y);
  }
  return copy ?? o;
}

/**
 * Encodes a message for the hub: every `{mime, name?, data}` whose `data` is bytes (Uint8Array,
 * ArrayBuffer, Blob), below the message's own members (so inside `args`), becomes `{"$attachment": k, mime, name}`, and bare bytes become
 * `{"$attachment": k}` (a bare Blob keeps its type as `mime`); `attachments` is set to the number
 * of binary frames. Blobs are read here, hence the promise. The input is not mutated.
 * Rejects with HubError `payload_too_large` past 16 attachments and `bad_request` for a value
 * that JSON cannot write.
 */
export async function encodeFrames(message: object): Promise<EncodedFrames> {
  const c = new Collector();
  const out = { ...(extract(message, c, 1) as Obj) };
  delete out.attachments;
  if (c.parts.length > 0) out.attachments = c.parts.length;
  let text: string | undefined;
  try {
    text = JSON.stringify(out);
  } catch (err) {
    throw new HubError('bad_request', `the message cannot be written as JSON: ${(err as Error).message}`);
  }
  return { text, binaries: await Promise.all(c.parts) };
}

// ---- decoding ----

/** Replaces each `{"$attachment": k, ...rest}` in `container` by `{...rest, data}`; returns a problem or undefined. */
function resolveRefs(container: Obj | unknown[], frames: Uint8Array[], depth: number): string | undefined {
  const keys = Array.isArray(container) ? null : Object.keys(container);
  const n = keys ? keys.length : (container as unknown[]).length;
  for (let i = 0; i < n; i++) {
    const key = (keys ? keys[i] : i) as string;
    const child = (container as Obj)[key];
    if (typeof child !== 'object' || child === null) continue;
    if (!Array.isArray(child) && hasOwn(child, '$attachment')) {
      const { $attachment: k, ...rest } = child as Obj;
      if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k >= frames.length) {
        return `"$attachment" ${String(k).slice(0, 40)} does not name one of the ${frames.length} attachment(s) of this message`;
      }
      setOwn(rest, 'data', frames[k]);
      setOwn(container as Obj, key, rest);
      continue;
    }
    if (depth >= MAX_DEPTH) return `a message with attachments may nest at most ${MAX_DEPTH} levels deep`;
    const problem = resolveRefs(child as Obj, frames, depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

/** Options of FrameReader. */
export interface FrameReaderOptions {
  /** Each whole message, attachment refs replaced by `{...rest, data}` (a Buffer in Node, else a Uint8Array). */
  onMessage(message: Obj): void;
  /** Each broken frame or sequence, as HubError `bad_message`. */
  onError(error: HubError): void;
}

/**
 * Reassembles the frames of one connection into messages. Text frames come as strings, binary
 * frames as ArrayBuffer or Uint8Array (a Blob must be read by the caller first, in order).
 * Nothing thrown escapes `push`; an exception of `onMessage` goes to `onError`.
 */
export class FrameReader {
  readonly #options: FrameReaderOptions;
  #message: Obj | null = null;
  #owed = 0;
  #frames: Uint8Array[] = [];

  constructor(options: FrameReaderOptions) {
    this.#options = options;
  }

  /** Feeds one frame: a string is a text frame, bytes a binary frame. */
  push(frame: string | ArrayBuffer | Uint8Array): void {
    try {
      if (typeof frame === 'string') this.#text(frame);
      else this.#binary(outputBytes(frame));
    } catch (err) {
      this.#reset();
      this.#fail(err instanceof HubError ? err : new HubError('bad_message', `a message could not be handled: ${(err as Error)?.message}`));
    }
  }

  #reset(): void {
    this.#message = null;
    this.#owed = 0;
    this.#frames = [];
  }

  #fail(error: HubError): void {
    try {
      this.#options.onError(error);
    } catch {
      // A throwing handler must not break the reader.
    }
  }

  #text(raw: string): void {
    if (this.#message) {
      this.#reset();
      this.#fail(new HubError('bad_message', 'a message came before the attachments of the previous one'));
    }
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
      this.#options.onMessage(m);
      return;
    }
    const n = m.attachments;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_ATTACHMENTS) {
      this.#fail(new HubError('bad_message', `"attachments" must be a whole number from 1 to ${MAX_ATTACHMENTS}`));
      return;
    }
    this.#message = m;
    this.#owed = n;
  }

  #binary(bytes: Uint8Array): void {
    const message = this.#message;
    if (!message) {
      this.#fail(new HubError('bad_message', 'a binary frame must follow a message that announces it'));
      return;
    }
    this.#frames.push(bytes);
    if (this.#frames.length < this.#owed) return;
    const frames = this.#frames;
    this.#reset();
    const problem = resolveRefs(message, frames, 1);
    if (problem) this.#fail(new HubError('bad_message', problem));
    else this.#options.onMessage(message);
  }
}
