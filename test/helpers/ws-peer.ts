/**
 * A raw WebSocket peer for tests: sends messages (with attachments) and waits for the ones it
 * expects, keeping everything it received.
 */
import { WebSocket } from 'ws';
import { encodeMessage, FrameDecoder } from '@utils-hub/protocol';
import { checkFrame, hubDirectionOf } from './contract.js';

export type Msg = Record<string, any>;

export class WsPeer {
  readonly received: Msg[] = [];
  readonly errors: Error[] = [];
  closeCode: number | null = null;
  closeReason = '';
  private waiters: Array<{ pred: (m: Msg) => boolean; resolve: (m: Msg) => void }> = [];
  private readonly decoder: FrameDecoder;
  readonly closed: Promise<number>;

  private constructor(
    readonly ws: WebSocket,
    url: string,
  ) {
    // Every frame from the hub is checked against the contract (a stray one fails the test).
    const direction = hubDirectionOf(url);
    this.decoder = new FrameDecoder({
      onMessage: (m) => {
        checkFrame(direction, m, `a test peer at ${new URL(url).pathname}`);
        this.onMessage(m);
      },
      onError: (e) => this.errors.push(e),
    });
    ws.on('message', (data, isBinary) => this.decoder.push(data as Buffer, isBinary));
    ws.on('error', (e) => this.errors.push(e));
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve(code);
      }),
    );
  }

  /** Opens a peer; rejects with the HTTP status of a refused upgrade as `err.status`. */
  static open(url: string, headers: Record<string, string> = {}): Promise<WsPeer> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers, perMessageDeflate: false });
      const peer = new WsPeer(ws, url);
      ws.once('open', () => resolve(peer));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => {
          ws.terminate();
          reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, body }));
        });
      });
      ws.once('error', reject);
    });
  }

  private onMessage(m: Msg): void {
    this.received.push(m);
    const i = this.waiters.findIndex((w) => w.pred(m));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w.resolve(m);
    }
  }

  /** Sends a message; Buffers and `{mime, data: Buffer}` in it go as binary frames. */
  send(message: object): void {
    const { text, binaries } = encodeMessage(message);
    this.ws.send(text);
    for (const b of binaries) this.ws.send(b, { binary: true });
  }

  /** Sends raw frames as they are. */
  sendRaw(data: string | Buffer, binary = false): void {
    this.ws.send(data, { binary });
  }

  /** The first message (already received or to come) matching `pred`. */
  next(pred: (m: Msg) => boolean | undefined, timeoutMs = 5000, from = 0): Promise<Msg> {
    const seen = this.received.slice(from).find((m) => pred(m));
    if (seen) {
      this.received.splice(this.received.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no matching message in ${timeoutMs} ms; got ${JSON.stringify(this.received).slice(0, 800)}`));
      }, timeoutMs);
      const done = (m: Msg) => {
        clearTimeout(timer);
        this.received.splice(this.received.indexOf(m), 1);
        resolve(m);
      };
      this.waiters.push({ pred: (m) => !!pred(m), resolve: done });
    });
  }

  /** The next message of `type` (about `taskId` when given). */
  nextOf(type: string, taskId?: string, timeoutMs?: number): Promise<Msg> {
    return this.next((m) => m.type === type && (taskId === undefined || m.task_id === taskId), timeoutMs);
  }

  close(): Promise<number> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }

  terminate(): void {
    this.ws.terminate();
  }
}
