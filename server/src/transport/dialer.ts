/**
 * The dialer (docs/protocol.md 5.1): follows the enabled rows of the `workers` table, reads each
 * worker's `GET {url}/me`, opens `{url}/ws` presenting `HUB_DIAL_SECRET`, and redials a lost or
 * unreachable worker with jittered exponential backoff. Each failure is logged once per change
 * of state, not once per try.
 */
import { WebSocket } from 'ws';
import { backoffDelay, checkServiceDescription } from '@utils-hub/protocol';
import type { FastifyBaseLogger } from 'fastify';
import type { HubConfig } from '../config.js';

/** `http://h:p/base` → `ws://h:p/base/ws`. */
export function wsUrlOf(base: string): string {
  const u = new URL(base);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  u.pathname = `${u.pathname.replace(/\/+$/, '')}/ws`;
  return u.toString();
}

export interface DialerDeps {
  config: Readonly<HubConfig>;
  log: FastifyBaseLogger;
  /** The enabled worker URLs. */
  listUrls: () => Promise<string[]>;
  /** Called on each failed try (metrics). */
  onFailure?: () => void;
  /** Hands an open socket to the worker protocol; `onWelcome` resets the backoff. */
  serve: (ws: WebSocket, url: string, onWelcome: () => void) => void;
}

class Target {
  private ws: WebSocket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private lastProblem: string | null = null;
  private stopped = false;

  constructor(
    readonly url: string,
    private readonly deps: DialerDeps,
  ) {}

  start(): void {
    void this.dial();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.ws?.close(1001, 'worker removed from the hub');
    this.ws = null;
  }

  /** Logs a failure only when it differs from the previous one. */
  private problem(text: string): void {
    this.deps.onFailure?.();
    if (text !== this.lastProblem) {
      this.deps.log.warn({ worker_url: this.url }, `dial failed: ${text} (retrying with backoff)`);
      this.lastProblem = text;
    }
    this.retry();
  }

  private retry(): void {
    if (this.stopped || this.timer) return;
    const delay = backoffDelay(this.failures++, this.deps.config.dialMinDelayMs, this.deps.config.dialMaxDelayMs);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.dial();
    }, delay);
    this.timer.unref();
  }

  private async dial(): Promise<void> {
    if (this.stopped) return;
    const { config } = this.deps;
    const headers: Record<string, string> = {};
    if (config.dialSecret) headers.authorization = `Bearer ${config.dialSecret}`;
    try {
      const res = await fetch(`${this.url.replace(/\/+$/, '')}/me`, { headers, signal: AbortSignal.timeout(5000) });
      if (!res.ok) return this.problem(`GET /me answered ${res.status}`);
      const max = config.maxServiceBytes;
      if (Number(res.headers.get('content-length') ?? 0) > max) {
        await res.body?.cancel();
        return this.problem(`GET /me: the description is over ${max} bytes (HUB_MAX_SERVICE_BYTES)`);
      }
      const text = await res.text();
      if (Buffer.byteLength(text) > max) return this.problem(`GET /me: the description is over ${max} bytes (HUB_MAX_SERVICE_BYTES)`);
      checkServiceDescription(JSON.parse(text));
    } catch (err) {
      return this.problem(`GET /me: ${(err as Error).message}`);
    }
    if (this.stopped) return;
    const ws = new WebSocket(wsUrlOf(this.url), { headers, maxPayload: config.maxMessageBytes, perMessageDeflate: false, handshakeTimeout: 10_000 });
    this.ws = ws;
    let opened = false;
    ws.on('error', (err) => {
      if (!opened) this.problem(`WebSocket: ${err.message}`);
    });
    ws.on('unexpected-response', (_req, res) => {
      ws.terminate();
      this.problem(`WebSocket upgrade answered ${res.statusCode}`);
    });
    ws.on('open', () => {
      opened = true;
      this.deps.serve(ws, this.url, () => {
        if (this.lastProblem !== null || this.failures > 0) this.deps.log.info({ worker_url: this.url }, 'dialed worker is back');
        this.failures = 0;
        this.lastProblem = null;
      });
    });
    ws.on('close', () => {
      if (this.ws === ws) this.ws = null;
      if (opened) this.problem('connection lost');
    });
  }
}

export class Dialer {
  private readonly targets = new Map<string, Target>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private syncing: Promise<void> | null = null;

  constructor(private readonly deps: DialerDeps) {}

  /** Starts following the table: now, then every `dialerPollMs`. */
  start(): void {
    void this.sync();
    this.timer = setInterval(() => void this.sync(), this.deps.config.dialerPollMs);
    this.timer.unref();
  }

  /** Reads the table once and starts or stops targets to match it. */
  sync(): Promise<void> {
    this.syncing ??= this.syncNow().finally(() => {
      this.syncing = null;
    });
    return this.syncing;
  }

  private async syncNow(): Promise<void> {
    let urls: string[];
    try {
      urls = await this.deps.listUrls();
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'could not read the workers table');
      return;
    }
    if (this.closed) return;
    const want = new Set(urls);
    for (const [url, t] of this.targets) {
      if (!want.has(url)) {
        t.stop();
        this.targets.delete(url);
        this.deps.log.info({ worker_url: url }, 'stopped dialing worker');
      }
    }
    for (const url of want) {
      if (this.targets.has(url)) continue;
      const t = new Target(url, this.deps);
      this.targets.set(url, t);
      this.deps.log.info({ worker_url: url }, 'dialing worker');
      t.start();
    }
  }

  /** URLs currently followed. */
  urls(): string[] {
    return [...this.targets.keys()];
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const t of this.targets.values()) t.stop();
    this.targets.clear();
  }
}
