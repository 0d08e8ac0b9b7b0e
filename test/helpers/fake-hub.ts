/**
 * A small fake hub for the worker SDK's tests: a WebSocket server on a free port at `/worker` that
 * records hellos, answers `welcome` (or refuses), pings on a configurable heartbeat (or stops), and
 * can send tasks and cancels or drop a connection; and `dialWorker`, the same hub side dialing a
 * worker that `listen()`s.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { encodeMessage, FrameDecoder } from '@utils-hub/protocol';
import { checkFrame } from './contract.js';

export type Msg = Record<string, any>;

/** How the hub side of a connection behaves. */
export interface HubSideOptions {
  /** `heartbeat_ms` of the welcome and the ping interval, in ms. Default 15000. */
  heartbeatMs?: number;
  /** Whether to ping at all. Default true. */
  ping?: boolean;
  /** Answer `hello` with `welcome` at once. Default true. */
  autoWelcome?: boolean;
  /** Answer `hello` with this error and close 1008 instead. Default: none. */
  refuse?: { code: string; message: string };
}

let connectionCount = 0;

/** The hub's side of one worker connection. */
export class HubSide {
  readonly received: Msg[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  /** The worker's `hello`. */
  readonly hello: Promise<Msg>;
  readonly id = `conn-${++connectionCount}`;
  #waiters: Array<{ pred: (m: Msg) => boolean; resolve: (m: Msg) => void }> = [];
  #pinger: NodeJS.Timeout | null = null;

  constructor(
    readonly ws: WebSocket,
    readonly request: IncomingMessage | null,
    readonly options: HubSideOptions,
  ) {
    // Every frame of the worker SDK is checked against the contract (a stray one fails the test).
    const decoder = new FrameDecoder({
      onMessage: (m) => {
        checkFrame('workerToHub', m, 'the fake hub');
        this.#onMessage(m);
      },
      onError: (e) => this.received.push({ type: '$decoder_error', message: e.message }),
    });
    ws.on('message', (data, isBinary) => decoder.push(data as Buffer, isBinary));
    ws.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => {
        this.stopPinging();
        resolve({ code, reason: reason.toString() });
      }),
    );
    this.hello = this.next((m) => m.type === 'hello', 10_000);
    void this.hello.then(
      (hello) => {
        if (options.refuse) {
          this.send({ type: 'error', ...options.refuse });
          ws.close(1008, options.refuse.code);
        } else if (options.autoWelcome !== false) this.welcome();
        return hello;
      },
      () => undefined,
    );
    if (options.ping !== false) {
      this.#pinger = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.ping();
      }, options.heartbeatMs ?? 15_000);
    }
  }

  /** The `Authorization` header of the upgrade (hub side of `connect`). */
  get authorization(): string | undefined {
    return this.request?.headers.authorization;
  }

  /** Sends a message; Buffers and `{mime, data: Buffer}` in it go as binary frames. */
  send(message: object): void {
    const { text, binaries } = encodeMessage(message);
    this.ws.send(text);
    for (const b of binaries) this.ws.send(b, { binary: true });
  }

  welcome(extra: Msg = {}): void {
    this.send({ type: 'welcome', service_id: 1, connection_id: this.id, heartbeat_ms: this.options.heartbeatMs ?? 15_000, ...extra });
  }

  task(taskId: string, args: Msg = {}, opts: { timeoutMs?: number; attempt?: number } = {}): void {
    this.send({ type: 'task', task_id: taskId, args, timeout_ms: opts.timeoutMs ?? 60_000, attempt: opts.attempt ?? 1 });
  }

  cancel(taskId: string, reason: 'client' | 'timeout' | 'shutdown' = 'client'): void {
    this.send({ type: 'cancel', task_id: taskId, reason });
  }

  /** The answer (`result` or `failed`) to a task. */
  answer(taskId: string, timeoutMs = 5000): Promise<Msg> {
    return this.next((m) => (m.type === 'result' || m.type === 'failed') && m.task_id === taskId, timeoutMs);
  }

  /** Cuts the connection without a close frame. */
  drop(): void {
    this.ws.terminate();
  }

  stopPinging(): void {
    if (this.#pinger) clearInterval(this.#pinger);
    this.#pinger = null;
  }

  /** The first message (received already or to come) matching `pred`; it is taken from `received`. */
  next(pred: (m: Msg) => boolean, timeoutMs = 5000): Promise<Msg> {
    const seen = this.received.find(pred);
    if (seen) {
      this.received.splice(this.received.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.resolve !== done);
        reject(new Error(`no matching message in ${timeoutMs} ms; got ${JSON.stringify(this.received).slice(0, 600)}`));
      }, timeoutMs);
      const done = (m: Msg) => {
        clearTimeout(timer);
        resolve(m);
      };
      this.#waiters.push({ pred, resolve: done });
    });
  }

  /** Messages of `type` received so far and not taken, without taking them. */
  peek(type: string): Msg[] {
    return this.received.filter((m) => m.type === type);
  }

  #onMessage(m: Msg): void {
    const i = this.#waiters.findIndex((w) => w.pred(m));
    if (i < 0) {
      this.received.push(m);
      return;
    }
    const [w] = this.#waiters.splice(i, 1);
    w.resolve(m);
  }
}

/** A fake hub that workers dial at `ws://127.0.0.1:PORT/worker`. */
export class FakeHub {
  /** Every connection, in the order they came. */
  readonly connections: HubSide[] = [];
  /** How new connections behave; change it between connections. */
  options: HubSideOptions;
  #waiters: Array<{ index: number; resolve: (c: HubSide) => void }> = [];

  private constructor(
    readonly server: Server,
    readonly wss: WebSocketServer,
    readonly url: string,
    options: HubSideOptions,
  ) {
    this.options = options;
    wss.on('connection', (ws, req) => {
      const conn = new HubSide(ws, req, { ...this.options });
      this.connections.push(conn);
      for (const w of this.#waiters.filter((x) => x.index < this.connections.length)) w.resolve(this.connections[w.index]);
      this.#waiters = this.#waiters.filter((x) => x.index >= this.connections.length);
    });
  }

  /** Starts on a free port (or `port`, to bring a hub back where it was). */
  static async start(options: HubSideOptions = {}, port = 0): Promise<FakeHub> {
    const server = createServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ server, path: '/worker', perMessageDeflate: false });
    wss.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
    const { port: bound } = server.address() as AddressInfo;
    return new FakeHub(server, wss, `ws://127.0.0.1:${bound}/worker`, options);
  }

  /** Hellos of every connection so far. */
  async hellos(): Promise<Msg[]> {
    return Promise.all(this.connections.map((c) => c.hello));
  }

  /** Connection number `index` (from 0), once it has come. */
  connection(index: number, timeoutMs = 5000): Promise<HubSide> {
    if (index < this.connections.length) return Promise.resolve(this.connections[index]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no connection #${index} in ${timeoutMs} ms (${this.connections.length} so far)`)), timeoutMs);
      this.#waiters.push({
        index,
        resolve: (c) => {
          clearTimeout(timer);
          resolve(c);
        },
      });
    });
  }

  /** Stops pinging every connection. */
  stopPinging(): void {
    for (const c of this.connections) c.stopPinging();
  }

  async close(): Promise<void> {
    for (const c of this.connections) {
      c.stopPinging();
      c.ws.terminate();
    }
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Dials a worker that `listen()`s at `baseUrl` (`http://HOST:PORT`) as the hub does: `{base}/ws`,
 * with `Authorization: Bearer <secret>` when given. Rejects with `err.status` for a refused upgrade.
 */
export function dialWorker(baseUrl: string, opts: HubSideOptions & { secret?: string } = {}): Promise<HubSide> {
  const url = `${baseUrl.replace(/^http/, 'ws').replace(/\/+$/, '')}/ws`;
  const headers: Record<string, string> = opts.secret ? { authorization: `Bearer ${opts.secret}` } : {};
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    // Listening from the start: the worker says hello as soon as the socket is open.
    const side = new HubSide(ws, null, opts);
    ws.once('open', () => resolve(side));
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode }));
    });
    ws.once('error', reject);
  });
}
