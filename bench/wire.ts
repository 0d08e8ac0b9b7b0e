/**
 * The least framing the bench processes need (docs/protocol.md section 5): a text frame holding one
 * JSON object, followed by the `attachments` binary frames it announces. The load generator, the
 * echo worker and the baseline share it; it validates nothing, on purpose: these processes must
 * cost as little CPU as possible so that they never become what is measured.
 */
import type { WebSocket, RawData } from 'ws';

/** A decoded message: the parsed text frame, the text itself, and its binary frames in order. */
export type OnMessage = (msg: Record<string, any>, text: string, binaries: Buffer[]) => void;

function asBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/**
 * Collects each text frame with the binary frames it announces, then calls `onMessage`.
 * A frame that breaks the framing is counted in `errors` and dropped.
 */
export class Frames {
  /** Frames dropped because they broke the framing. */
  errors = 0;
  /** Bytes of every frame pushed (text and binary). */
  bytesIn = 0;
  #msg: Record<string, any> | null = null;
  #text = '';
  #owed = 0;
  #binaries: Buffer[] = [];

  constructor(private readonly onMessage: OnMessage) {}

  push(data: RawData, isBinary: boolean): void {
    const buf = asBuffer(data);
    this.bytesIn += buf.length;
    if (isBinary) {
      if (!this.#msg) {
        this.errors++;
        return;
      }
      this.#binaries.push(buf);
      if (this.#binaries.length < this.#owed) return;
      const msg = this.#msg;
      const binaries = this.#binaries;
      const text = this.#text;
      this.#msg = null;
      this.#binaries = [];
      this.onMessage(msg, text, binaries);
      return;
    }
    if (this.#msg) this.errors++; // the owed frames never came; drop that message
    this.#msg = null;
    this.#binaries = [];
    const text = buf.toString('utf8');
    let msg: Record<string, any>;
    try {
      msg = JSON.parse(text);
    } catch {
      this.errors++;
      return;
    }
    const n = typeof msg.attachments === 'number' ? msg.attachments : 0;
    if (n > 0) {
      this.#msg = msg;
      this.#text = text;
      this.#owed = n;
      return;
    }
    this.onMessage(msg, text, []);
  }
}

let corking = false;
const corked = new Set<{ cork(): void; uncork(): void }>();

/**
 * Holds each socket's writes until the end of the current tick, so that every frame sent to one
 * peer in one tick leaves in one write system call instead of one each (on loopback, each write
 * also wakes the peer: a context switch on a 2-core machine). The load generator, the echo worker
 * and the baseline turn it on; `baseline.ts --naive` leaves it off, for comparison.
 */
export function setCorking(on: boolean): void {
  corking = on;
}

function cork(ws: WebSocket): void {
  const socket = (ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
  if (!socket || corked.has(socket)) return;
  corked.add(socket);
  socket.cork();
  process.nextTick(() => {
    corked.delete(socket);
    socket.uncork();
  });
}

/** Sends a text frame and then its binary frames; returns the bytes sent. */
export function sendFrames(ws: WebSocket, text: string, binaries?: readonly Buffer[] | null): number {
  if (corking) cork(ws);
  ws.send(text);
  let bytes = Buffer.byteLength(text);
  if (binaries) {
    for (const b of binaries) {
      ws.send(b, { binary: true });
      bytes += b.length;
    }
  }
  return bytes;
}

/** Parses `--name value` and `--flag` arguments into a map (values stay strings). */
export function parseFlags(argv: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) flags.set(a.slice(2), argv[++i]);
    else flags.set(a.slice(2), 'true');
  }
  return flags;
}

/** A numeric flag, or `fallback` when it is absent. */
export function numFlag(flags: Map<string, string>, name: string, fallback: number): number {
  const v = flags.get(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${v}`);
  return n;
}

/** The service description that the echo worker announces (docs/protocol.md section 3). */
export function echoService(name: string): Record<string, unknown> {
  return {
    name,
    description: 'Echoes its arguments back, attachments included',
    input: [
      { argument_name: 'text', argument_description: 'Any text', type: 'str', required: false },
      { argument_name: 'blob', argument_description: 'Any bytes', type: 'file', required: false },
    ],
    output: [
      { argument_name: 'text', argument_description: 'The same text', type: 'str', required: false },
      { argument_name: 'blob', argument_description: 'The same bytes', type: 'file', required: false },
    ],
  };
}
