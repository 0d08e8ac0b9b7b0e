/**
 * Keeps one WebSocket to a hub's `/client` alive (one of several hubs of a cluster: the next one
 * after a loss): dials, redials with jittered exponential
 * backoff, cuts a connection gone silent (with `ws`), and turns frames into messages. It knows
 * nothing of tasks; HubClient does.
 */
import { backoffDelay, FrameDecoder, HubError } from '@utils-hub/protocol/core';
import { TypedEmitter } from './emitter.js';
import type { EncodedFrames } from './frames.js';
import { outputBytes } from './media.js';
import type { HubEndpoints, ResolvedOptions } from './options.js';
import { OPEN, hasWsExtras, loadWebSocket, refusedStatus, type WebSocketLike } from './socket.js';

/** Events of a Connection. */
export interface ConnectionEvents {
  /** A socket opened. */
  open: () => void;
  /** The open socket closed; a redial follows unless the connection was closed. */
  close: (info: { code: number; reason: string }) => void;
  /** A whole message from the hub, attachments resolved. */
  message: (message: Record<string, unknown>) => void;
  /** A failed dial, a broken frame, a refused upgrade (HubError `unauthorized` or `forbidden`). */
  error: (error: Error) => void;
}

/** The error of everything that waited on a client that was closed. */
export function closedError(): HubError {
  return new HubError('interrupted', 'the client was closed');
}

interface OpenWaiter {
  resolve(): void;
  reject(err: HubError): void;
  timer: ReturnType<typeof setTimeout>;
}

/** One logical connection to the hub, over as many sockets as it takes. */
export class Connection extends TypedEmitter<ConnectionEvents> {
  readonly #options: ResolvedOptions;
  #socket: WebSocketLike | null = null;
  #started = false;
  #stopped = false;
  #attempt = 0;
  /** Which of the hubs the current (or next) socket goes to, modulo their number. */
  #index = 0;
  #redial: ReturnType<typeof setTimeout> | null = null;
  #idle: ReturnType<typeof setTimeout> | null = null;
  #waiters = new Set<OpenWaiter>();
  #closing: Promise<void> | null = null;

  constructor(options: ResolvedOptions) {
    super();
    this.#options = options;
  }

  /** True while a socket is open. */
  get isOpen(): boolean {
    return this.#socket !== null && this.#socket.readyState === OPEN;
  }

  /** The hub the current socket goes to (or the next dial, while none is open). */
  get hub(): HubEndpoints {
    const hubs = this.#options.hubs;
    return hubs[this.#index % hubs.length];
  }

  /** True once `close()` was called. */
  get isClosed(): boolean {
    return this.#stopped;
  }

  /** Starts dialing (once); later calls do nothing. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    void this.#dial();
  }

  /**
   * Resolves once a socket is open (at once if one is). Rejects with HubError `timeout` after
   * `timeoutMs`, with the refusal of the upgrade (`unauthorized`, `forbidden`) when there is one,
   * or `interrupted` when the connection is closed.
   */
  whenOpen(timeoutMs: number): Promise<void> {
    if (this.#stopped) return Promise.reject(closedError());
    if (this.isOpen) return Promise.resolve();
    this.start();
    return new Promise((resolve, reject) => {
      const w: OpenWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(w);
          reject(new HubError('timeout', `no connection to the hub within ${timeoutMs} ms`));
        }, timeoutMs),
      };
      this.#waiters.add(w);
    });
  }

  /** Sends a message's frames; false when no socket is open (nothing is sent then). */
  send(frames: EncodedFrames): boolean {
    const sock = this.#socket;
    if (!sock || sock.readyState !== OPEN) return false;
    sock.send(frames.text);
    for (const b of frames.binaries) sock.send(b);
    return true;
  }

  /** Stops redialing and closes the socket. Safe to call twice: returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#stopped = true;
    if (this.#redial) clearTimeout(this.#redial);
    this.#stopIdle();
    this.#settleWaiters(closedError());
    const sock = this.#socket;
    this.#socket = null;
    if (!sock) return;
    await new Promise<void>((resolve) => {
      // The hub answers a close at once; a hub that does not is cut after a second.
      const timer = setTimeout(() => {
        if (hasWsExtras(sock)) sock.terminate();
        resolve();
      }, 1000);
      sock.addEventListener('close', () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        sock.close(1000, 'client closed');
      } catch {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  #settleWaiters(err?: HubError): void {
    for (const w of this.#waiters) {
      clearTimeout(w.timer);
      if (err) w.reject(err);
      else w.resolve();
    }
    this.#waiters.clear();
  }

  #error(err: Error): void {
    this.emit('error', err);
  }

  async #dial(): Promise<void> {
    if (this.#stopped) return;
    let sock: WebSocketLike;
    try {
      const Ctor = await loadWebSocket(this.#options.WebSocket);
      if (this.#stopped) return;
      sock = new Ctor(this.hub.wsUrl);
    } catch (err) {
      this.#error(err instanceof Error ? err : new Error(String(err)));
      this.#scheduleRedial();
      return;
    }
    this.#socket = sock;
    sock.binaryType = 'arraybuffer';
    let opened = false;
    // Blobs (from a WebSocket that ignores binaryType) are read in order, behind any earlier one.
    let chain: Promise<void> | null = null;
    const decoder = new FrameDecoder({
      // The hub bounds what it sends; the SDK takes whatever it relays.
      maxAttachmentBytes: Infinity,
      onMessage: (m) => this.emit('message', m),
      onError: (e) => this.#error(e),
    });
    // Binary frames become Buffers in Node (a view, not a copy), Uint8Arrays elsewhere.
    const push = (frame: string | ArrayBuffer | Uint8Array) =>
      typeof frame === 'string' ? decoder.push(frame, false) : decoder.push(outputBytes(frame), true);

    sock.addEventListener('open', () => {
      if (this.#socket !== sock) return;
      opened = true;
      this.#attempt = 0;
      this.#touch(sock);
      this.#settleWaiters();
      this.emit('open');
    });
    sock.addEventListener('message', (ev: { data: unknown }) => {
      if (this.#socket !== sock) return;
      this.#touch(sock);
      const data = ev.data;
      if (chain || (typeof Blob !== 'undefined' && data instanceof Blob)) {
        const prev = chain ?? Promise.resolve();
        const next: Promise<void> = prev
          .then(async () => push(data instanceof Blob ? await data.arrayBuffer() : (data as string | ArrayBuffer)))
          .finally(() => {
            if (chain === next) chain = null;
          });
        chain = next;
        return;
      }
      if (typeof data === 'string' || data instanceof ArrayBuffer || data instanceof Uint8Array) push(data);
    });
    sock.addEventListener('error', (ev: { error?: unknown; message?: unknown }) => {
      if (this.#socket !== sock) return;
      const cause = ev.error ?? ev;
      const status = refusedStatus(cause);
      if (status === 401 || status === 403) {
        const err = new HubError(status === 401 ? 'unauthorized' : 'forbidden', `the hub refused the connection (${status})`);
        // Nobody waiting should wait out a refusal; later dials may still succeed (a key added).
        this.#settleWaiters(err);
        this.#error(err);
        return;
      }
      const message = typeof ev.message === 'string' && ev.message ? ev.message : (cause as Error)?.message;
      this.#error(new Error(`hub connection error: ${message || 'unknown'}`));
    });
    if (hasWsExtras(sock)) sock.on('ping', () => this.#touch(sock));
    sock.addEventListener('close', (ev: { code?: number; reason?: string }) => {
      if (this.#socket !== sock) return;
      this.#socket = null;
      this.#stopIdle();
      if (opened) this.emit('close', { code: ev.code ?? 1006, reason: ev.reason ?? '' });
      this.#scheduleRedial();
    });
  }

  /**
   * With several hubs, every lost socket or failed dial moves on to the next one (a hub of a
   * cluster that died leaves its clients to the others); the backoff grows until a socket opens.
   */
  #scheduleRedial(): void {
    if (this.#stopped) return;
    this.#index++;
    const delay = backoffDelay(this.#attempt++, this.#options.minDelayMs, this.#options.maxDelayMs);
    this.#redial = setTimeout(() => {
      this.#redial = null;
      void this.#dial();
    }, delay);
  }

  /** Rearms the silence timer (ws only: the browser API shows no pings). */
  #touch(sock: WebSocketLike): void {
    const ms = this.#options.idleTimeoutMs;
    if (ms <= 0 || !hasWsExtras(sock)) return;
    this.#stopIdle();
    this.#idle = setTimeout(() => {
      if (this.#socket === sock) sock.terminate();
    }, ms);
    (this.#idle as { unref?: () => void }).unref?.();
  }

  #stopIdle(): void {
    if (this.#idle) clearTimeout(this.#idle);
    this.#idle = null;
  }
}
