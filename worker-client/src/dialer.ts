/**
 * `service.connect()`: keeps one connection to a hub's `/worker`, dialing with the worker token,
 * and redialing a lost or refused connection with jittered exponential backoff for as long as the
 * service is not closed. Each socket is handed to a Session, which says hello.
 */
import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { backoffDelay, HubError, isErrorCode } from '@utils-hub/protocol';
import type { ResolvedConnectOptions } from './options.js';
import { Session, type ServiceCore, type SessionHooks } from './session.js';
import type { ConnectedInfo } from './types.js';

/** Reads the error of a refused upgrade: the hub's `{"error": {code, message}}` body when there is one. */
function refusal(url: string, res: IncomingMessage, body: string): Error {
  const status = res.statusCode ?? 0;
  try {
    const e = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown } }).error;
    if (e && isErrorCode(e.code)) return new HubError(e.code, typeof e.message === 'string' ? e.message : e.code, { status });
  } catch {
    // Not the hub's JSON: fall through to the status.
  }
  if (status === 401) return new HubError('unauthorized', `the hub at ${url} refused the worker token (401)`, { status });
  if (status === 403) return new HubError('forbidden', `the hub at ${url} refused the connection (403)`, { status });
  return Object.assign(new Error(`the hub answered ${status} to the WebSocket upgrade at ${url} (is this its /worker URL?)`), { status });
}

/** One `connect()` call: a connection that comes back until stopped. */
export class Dialer {
  readonly #options: ResolvedConnectOptions;
  readonly #core: ServiceCore;
  readonly #hooks: SessionHooks;
  #session: Session | null = null;
  #attempt = 0;
  /** Which of the hub URLs the next dial goes to (modulo their number). */
  #index = 0;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;
  #first: { resolve: (info: ConnectedInfo) => void; reject: (err: Error) => void } | null = null;
  /** Resolves on the first welcome; rejects if the dialer is stopped before one. */
  readonly firstWelcome: Promise<ConnectedInfo>;

  constructor(options: ResolvedConnectOptions, core: ServiceCore, hooks: SessionHooks) {
    this.#options = options;
    this.#core = core;
    this.#hooks = hooks;
    this.firstWelcome = new Promise((resolve, reject) => (this.#first = { resolve, reject }));
    // A caller that does not await the promise must not get an unhandled rejection from close().
    this.firstWelcome.catch(() => undefined);
  }

  /** The current connection (open, opening or welcomed), if any. */
  get session(): Session | null {
    return this.#session;
  }

  /** Dials for the first time. */
  start(): void {
    this.#dial();
  }

  /**
   * Stops redialing and cuts a socket that is not welcomed yet; the welcomed one, if any, is left
   * to the caller to drain and close. Rejects a pending `firstWelcome`.
   */
  stop(): Session | null {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#first?.reject(new Error('the service was closed before the hub welcomed it'));
    this.#first = null;
    const s = this.#session;
    if (s && !s.welcomed) void s.close(1001, 'worker closing');
    return s;
  }

  #dial(): void {
    if (this.#stopped) return;
    const o = this.#options;
    const url = o.urls[this.#index % o.urls.length];
    const headers: Record<string, string> = {};
    if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
    const ws = new WebSocket(url, {
      headers,
      perMessageDeflate: false,
      maxPayload: o.maxMessageBytes,
      handshakeTimeout: o.handshakeTimeoutMs,
    });
    let opened = false;
    let refused = false;
    const session = new Session(
      ws,
      this.#core,
      o,
      { name: url, dialed: true },
      {
        welcome: (info) => {
          this.#attempt = 0;
          this.#first?.resolve(info);
          this.#first = null;
          this.#hooks.welcome(info);
        },
        close: (code, reason, welcomed) => {
          if (this.#session === session) this.#session = null;
          if (opened) this.#hooks.close(code, reason, welcomed);
          this.#redial();
        },
        // After a refused upgrade, the abort that follows says nothing new.
        error: (err) => {
          if (!refused) this.#hooks.error(err);
        },
        task: (id, attempt) => this.#hooks.task(id, attempt),
      },
    );
    this.#session = session;
    ws.on('open', () => {
      opened = true;
      if (this.#stopped) void session.close(1001, 'worker closing');
      else session.start();
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 65_536) body += chunk;
      });
      res.on('error', () => undefined);
      res.on('end', () => {
        this.#hooks.error(refusal(url, res, body));
        refused = true;
        ws.terminate();
      });
    });
  }

  /**
   * With several hub URLs, every loss, refusal or failed dial moves on to the next one (a hub of
   * a cluster that died leaves its workers to the others); the backoff grows until a welcome.
   */
  #redial(): void {
    if (this.#stopped || this.#timer) return;
    this.#index++;
    const delay = backoffDelay(this.#attempt++, this.#options.minDelayMs, this.#options.maxDelayMs);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#dial();
    }, delay);
  }
}
