/**
 * One WebSocket between the worker and a hub, whichever side dialed (docs/protocol.md 5.1): says
 * `hello`, waits for `welcome`, runs the tasks that come, answers cancels, watches the hub's pings,
 * and drains. The dialer and the listener only make sockets and hand them here.
 */
import { WebSocket } from 'ws';
import {
  encodeMessage,
  FrameDecoder,
  HubError,
  isErrorCode,
  parseMessage,
  PROTOCOL_VERSION,
  type Argument,
  type HubToWorkerMessage,
  type WorkerToHubMessage,
  type ServiceDescription,
  type TaskMsg,
} from '@utils-hub/protocol';
import { MAX_TIMER_MS, type ResolvedConnectionOptions } from './options.js';
import { RunningTask, type RawHandler, type TaskHost } from './task.js';
import type { AbortReason, ConnectedInfo } from './types.js';

/** The service as every connection serves it. */
export interface ServiceCore {
  readonly me: ServiceDescription;
  readonly input: readonly Argument[];
  readonly handler: RawHandler;
  readonly progressIntervalMs: number;
}

/** What a session tells its owner. */
export interface SessionHooks {
  welcome(info: ConnectedInfo): void;
  close(code: number, reason: string, welcomed: boolean): void;
  error(err: Error): void;
  task(taskId: string, attempt: number): void;
}

/** How many cancels of tasks not (or no longer) running a session remembers. */
const REMEMBERED_CANCELS = 1024;
/** How long `close()` waits for the hub's close frame before cutting the socket, in ms. */
const CLOSE_WAIT_MS = 2000;

/** One connection to a hub. */
export class Session {
  /** Tasks in flight on this connection, by id. */
  readonly tasks = new Map<string, RunningTask>();
  /** Resolves once the socket has closed. */
  readonly closed: Promise<void>;
  readonly #ws: WebSocket;
  readonly #core: ServiceCore;
  readonly #options: ResolvedConnectionOptions;
  readonly #hooks: SessionHooks;
  readonly #peer: string;
  readonly #dialed: boolean;
  readonly #host: TaskHost;
  /** Cancels that came for tasks not running here, so that a task arriving after its cancel is not run. */
  readonly #canceled = new Map<string, AbortReason>();
  #state: 'hello' | 'ready' | 'draining' | 'closed' = 'hello';
  #welcomed = false;
  #timer: NodeJS.Timeout | null = null;
  #heartbeatMs = 0;
  #lastSeen = 0;
  #idle: Array<() => void> = [];

  constructor(ws: WebSocket, core: ServiceCore, options: ResolvedConnectionOptions, peer: { name: string; dialed: boolean }, hooks: SessionHooks) {
    this.#ws = ws;
    this.#core = core;
    this.#options = options;
    this.#hooks = hooks;
    this.#peer = peer.name;
    this.#dialed = peer.dialed;
    this.#host = {
      send: (m) => this.#send(m),
      error: (e) => hooks.error(e),
      instance: options.instance,
      progressIntervalMs: core.progressIntervalMs,
    };
    const decoder = new FrameDecoder({
      maxAttachmentBytes: options.maxMessageBytes,
      onMessage: (m) => this.#onMessage(m),
      // The worker-to-hub schema has no `error` message, so a broken frame is reported here only.
      onError: (e) => hooks.error(e),
    });
    ws.on('message', (data, isBinary) => {
      this.#lastSeen = performance.now();
      if (this.#state !== 'closed') decoder.push(data as Buffer, isBinary);
    });
    ws.on('ping', () => {
      this.#lastSeen = performance.now();
    });
    ws.on('error', (err) => hooks.error(err));
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.#onClose(code, reason.toString());
        resolve();
      });
    });
  }

  /** True once the hub welcomed this connection. */
  get welcomed(): boolean {
    return this.#welcomed;
  }

  /** Says hello (the socket must be open) and waits for welcome up to the handshake timeout. */
  start(): void {
    this.#send({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      me: this.#core.me,
      concurrency: this.#options.concurrency,
      instance: this.#options.instance,
      // The ws maxPayload and the attachment bound: the hub sends no task over it.
      max_message_bytes: this.#options.maxMessageBytes,
    });
    this.#arm(this.#options.handshakeTimeoutMs, () => {
      this.#hooks.error(new Error(`no welcome from ${this.#peer} within ${this.#options.handshakeTimeoutMs} ms`));
      this.#ws.terminate();
    });
  }

  /**
   * Sends `drain` (once welcomed) so that the hub sends no more tasks, and resolves when no task is
   * in flight any more, or the socket closed.
   */
  drain(): Promise<void> {
    if (this.#state === 'ready') {
      this.#state = 'draining';
      this.#trySend({ type: 'drain' });
    }
    if (this.tasks.size === 0 || this.#state === 'closed') return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Fires the signal of every task in flight with `reason` and drops their answers. */
  dropAll(reason: AbortReason): void {
    for (const task of this.tasks.values()) task.drop(reason);
  }

  /** Closes the socket (cutting it if the hub does not answer in 2 s); resolves once closed. */
  close(code = 1000, reason = ''): Promise<void> {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(code, reason);
    else if (this.#ws.readyState === WebSocket.CONNECTING) this.#ws.terminate();
    const cut = setTimeout(() => this.#ws.terminate(), CLOSE_WAIT_MS);
    return this.closed.finally(() => clearTimeout(cut));
  }

  #send(message: WorkerToHubMessage): void {
    const { text, binaries } = encodeMessage(message);
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.send(text);
    for (const b of binaries) this.#ws.send(b, { binary: true });
  }

  #trySend(message: WorkerToHubMessage): void {
    try {
      this.#send(message);
    } catch (err) {
      this.#hooks.error(err as Error);
    }
  }

  #arm(ms: number, fire: () => void): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(fire, Math.min(ms, MAX_TIMER_MS));
  }

  /** Cuts a hub that sent neither a ping nor a message for two heartbeat intervals. */
  #watch(): void {
    const limit = 2 * this.#heartbeatMs;
    const silent = performance.now() - this.#lastSeen;
    if (silent < limit) {
      this.#arm(limit - silent, () => this.#watch());
      return;
    }
    this.#hooks.error(new Error(`the hub at ${this.#peer} sent no ping for ${Math.round(silent)} ms; reconnecting`));
    this.#ws.terminate();
  }

  #onMessage(raw: Record<string, unknown>): void {
    let msg: HubToWorkerMessage;
    try {
      msg = parseMessage('hubToWorker', raw);
    } catch (err) {
      this.#hooks.error(err as HubError);
      return;
    }
    switch (msg.type) {
      case 'welcome':
        if (this.#state !== 'hello') return this.#hooks.error(new HubError('bad_message', 'a second "welcome" on one connection'));
        this.#state = 'ready';
        this.#welcomed = true;
        this.#heartbeatMs = msg.heartbeat_ms;
        this.#lastSeen = performance.now();
        this.#watch();
        this.#hooks.welcome({
          serviceId: msg.service_id,
          connectionId: msg.connection_id,
          heartbeatMs: msg.heartbeat_ms,
          peer: this.#peer,
          dialed: this.#dialed,
        });
        return;
      case 'error': {
        const { type: _type, code, message, ...details } = msg;
        const err = isErrorCode(code) ? new HubError(code, message, details) : new HubError('internal', `${code}: ${message}`, details);
        return this.#hooks.error(err);
      }
      case 'task':
        return this.#onTask(msg);
      case 'cancel': {
        const task = this.tasks.get(msg.task_id);
        if (task) return task.abort(msg.reason);
        this.#canceled.delete(msg.task_id);
        this.#canceled.set(msg.task_id, msg.reason);
        if (this.#canceled.size > REMEMBERED_CANCELS) this.#canceled.delete(this.#canceled.keys().next().value!);
        return;
      }
    }
  }

  #onTask(msg: TaskMsg): void {
    const id = msg.task_id;
    if (this.#state === 'hello') return this.#hooks.error(new HubError('bad_message', `task ${id} came before "welcome"`, { task_id: id }));
    if (this.tasks.has(id)) return this.#hooks.error(new HubError('bad_message', `task ${id} is already running on this connection`, { task_id: id }));
    const canceled = this.#canceled.get(id);
    if (canceled !== undefined) {
      // Answering frees the hub's slot at once rather than after its cancel grace.
      this.#canceled.delete(id);
      const code = canceled === 'timeout' ? 'timeout' : 'canceled';
      this.#trySend({ type: 'failed', task_id: id, error: { code, message: `the task was canceled (${canceled}) before it started` } });
      return;
    }
    const task = new RunningTask(msg, this.#core.input, this.#core.handler, this.#host);
    this.tasks.set(id, task);
    this.#hooks.task(id, msg.attempt);
    void task.done.then(() => {
      if (this.tasks.get(id) === task) this.tasks.delete(id);
      if (this.tasks.size === 0) this.#wakeIdle();
    });
  }

  #wakeIdle(): void {
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }

  #onClose(code: number, reason: string): void {
    this.#state = 'closed';
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.dropAll('connection_lost');
    this.#wakeIdle();
    this.#hooks.close(code, reason, this.#welcomed);
  }
}
