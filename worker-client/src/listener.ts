/**
 * `service.listen()`: an HTTP server for a hub that dials the worker (docs/protocol.md 5.1): `GET /me`
 * answers the service description, and the WebSocket at `/ws` becomes a Session that says hello
 * just as a dialing worker does. With a secret, both need `Authorization: Bearer <secret>`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ResolvedListenOptions } from './options.js';
import { Session, type ServiceCore, type SessionHooks } from './session.js';

/** Where a listening worker can be reached. */
export interface ListenAddress {
  /** The bound address, such as `127.0.0.1` or `::`. */
  host: string;
  /** The bound port (the one picked when 0 was asked). */
  port: number;
  /** The base URL to give the hub (`utils-hub workers add URL`), such as `http://127.0.0.1:9001`. */
  url: string;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function refuseUpgrade(socket: Duplex, status: number, text: string, code: string): void {
  const body = JSON.stringify({ error: { code, message: text } });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\n` + `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** One `listen()` call: the server and the sessions of the hubs that dialed it. */
export class Listener {
  readonly sessions = new Set<Session>();
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #options: ResolvedListenOptions;
  readonly #core: ServiceCore;
  readonly #hooks: SessionHooks;
  readonly #secret: Buffer | null;
  #stopped = false;

  constructor(options: ResolvedListenOptions, core: ServiceCore, hooks: SessionHooks) {
    this.#options = options;
    this.#core = core;
    this.#hooks = hooks;
    this.#secret = options.secret === undefined ? null : digest(`Bearer ${options.secret}`);
    this.#wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: options.maxMessageBytes });
    this.#wss.on('error', (err) => hooks.error(err));
    this.#server = createServer((req, res) => this.#onRequest(req, res));
    this.#server.on('upgrade', (req, socket, head) => this.#onUpgrade(req, socket, head));
    this.#server.on('clientError', (_err, socket) => socket.destroy());
  }

  /** Binds the server; resolves with the address. */
  listen(): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once('error', onError);
      this.#server.listen(this.#options.port, this.#options.host, () => {
        this.#server.off('error', onError);
        this.#server.on('error', (err) => this.#hooks.error(err));
        const a = this.#server.address() as AddressInfo;
        const host = a.family === 'IPv6' || a.address.includes(':') ? `[${a.address}]` : a.address;
        resolve({ host: a.address, port: a.port, url: `http://${host}:${a.port}` });
      });
    });
  }

  /** Refuses new requests and upgrades from now on (503); live sessions are left to the caller. */
  stop(): void {
    this.#stopped = true;
  }

  /** Closes the server and every socket still open. Resolves once the server has closed. */
  async close(): Promise<void> {
    this.#stopped = true;
    for (const s of this.sessions) await s.close(1001, 'worker closing').catch(() => undefined);
    this.#wss.close();
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #authorized(req: IncomingMessage): boolean {
    if (!this.#secret) return true;
    const given = req.headers.authorization;
    return typeof given === 'string' && timingSafeEqual(digest(given), this.#secret);
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    if (this.#stopped) return sendJson(res, 503, { error: { code: 'shutting_down', message: 'the worker is stopping' } });
    if (path !== '/me') return sendJson(res, 404, { error: { code: 'not_found', message: `no route ${req.method} ${path}` } });
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 404, { error: { code: 'not_found', message: `no route ${req.method} ${path}` } });
    if (!this.#authorized(req)) return sendJson(res, 401, { error: { code: 'unauthorized', message: 'a valid Authorization: Bearer <secret> is required' } });
    sendJson(res, 200, this.#core.me);
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/ws') return refuseUpgrade(socket, 404, 'Not Found', 'not_found');
    if (!this.#authorized(req)) return refuseUpgrade(socket, 401, 'Unauthorized', 'unauthorized');
    if (this.#stopped) return refuseUpgrade(socket, 503, 'Service Unavailable', 'shutting_down');
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onConnection(ws, req));
  }

  #onConnection(ws: WebSocket, req: IncomingMessage): void {
    const remote = req.socket.remoteAddress ?? 'unknown';
    const name = `${remote.includes(':') ? `[${remote}]` : remote}:${req.socket.remotePort ?? 0}`;
    const session = new Session(
      ws,
      this.#core,
      this.#options,
      { name, dialed: false },
      {
        ...this.#hooks,
        close: (code, reason, welcomed) => {
          this.sessions.delete(session);
          this.#hooks.close(code, reason, welcomed);
        },
      },
    );
    this.sessions.add(session);
    if (this.#stopped) void session.close(1001, 'worker closing');
    else session.start();
  }
}
