/**
 * A WebSocket peer for fuzzing: sends frames exactly as given (text frames may hold any bytes)
 * and records what the hub answers without interpreting it through the protocol package, so
 * that the hub's answers are checked by the test and not by the code under test.
 */
import { WebSocket } from 'ws';
import { checkFrame, hubDirectionOf, type Direction } from '../../helpers/contract.js';

/** One message from the hub: its text frame parsed, with the binary frames that followed it. */
export interface Answer {
  msg: Record<string, any>;
  binaries: Buffer[];
}

export class RawPeer {
  /** Answers not yet taken by `take`. */
  inbox: Answer[] = [];
  closeCode: number | null = null;
  readonly closed: Promise<number>;
  /** Text frames from the hub that were not JSON objects: always a fault of the hub. */
  readonly garbage: string[] = [];
  private pings = 0;
  private readonly pongs = new Map<string, () => void>();
  private wake: (() => void) | null = null;

  private constructor(
    readonly ws: WebSocket,
    private readonly direction: Direction,
  ) {
    ws.on('message', (data, isBinary) => {
      const buf = data as Buffer;
      if (isBinary) {
        const last = this.inbox[this.inbox.length - 1];
        if (last) last.binaries.push(buf);
        else this.garbage.push(`a binary frame of ${buf.length} bytes before any message`);
      } else {
        let msg: unknown;
        try {
          msg = JSON.parse(buf.toString('utf8'));
        } catch {
          msg = null;
        }
        if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) this.garbage.push(buf.toString('utf8').slice(0, 200));
        else {
          // Checked against the schemas (the contract), not through the codec under test.
          checkFrame(this.direction, msg, 'a fuzzing peer');
          this.inbox.push({ msg: msg as Record<string, any>, binaries: [] });
        }
      }
      this.wake?.();
    });
    ws.on('pong', (data) => {
      const done = this.pongs.get(data.toString());
      this.pongs.delete(data.toString());
      done?.();
    });
    ws.on('error', () => {
      // The close code says what happened; a refused or broken socket must not throw here.
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code) => {
        this.closeCode = code;
        for (const done of this.pongs.values()) done();
        this.pongs.clear();
        this.wake?.();
        resolve(code);
      }),
    );
  }

  static open(url: string, options: { headers?: Record<string, string>; autoPong?: boolean } = {}): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: options.headers, perMessageDeflate: false, autoPong: options.autoPong ?? true, maxPayload: 256 * 1024 * 1024 });
      const peer = new RawPeer(ws, hubDirectionOf(url));
      ws.once('open', () => resolve(peer));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once('error', reject);
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** A text frame: a string, or raw bytes sent as they are (which may be broken UTF-8). */
  text(data: string | Buffer): void {
    if (this.open) this.ws.send(data, { binary: false });
  }

  /** A binary frame. */
  binary(data: Buffer): void {
    if (this.open) this.ws.send(data, { binary: true });
  }

  /** A message as JSON. */
  json(message: unknown): void {
    this.text(JSON.stringify(message));
  }

  /**
   * Resolves once the hub has read every frame sent so far and sent what it answers to them
   * synchronously: a ping goes after them and the hub's pong comes after those answers. Resolves
   * at once (false) when the connection closes.
   */
  sync(timeoutMs = 10_000): Promise<boolean> {
    if (!this.open) return Promise.resolve(false);
    const token = `s${++this.pings}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pongs.delete(token);
        reject(new Error(`the hub did not answer a ping within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pongs.set(token, () => {
        clearTimeout(timer);
        resolve(this.open);
      });
      this.ws.ping(token);
    });
  }

  /** Waits until `pred` holds (checked after each frame and on close), or fails after `timeoutMs`. */
  async until(pred: () => boolean, timeoutMs = 5000, what = 'a condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; inbox ${JSON.stringify(this.inbox.map((a) => a.msg)).slice(0, 600)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Removes and returns every answer received so far. */
  take(): Answer[] {
    const all = this.inbox;
    this.inbox = [];
    return all;
  }

  /** Closes (normally) and waits for the close. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, 2000))]);
    if (this.closeCode === null) this.ws.terminate();
  }
}
