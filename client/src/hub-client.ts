/**
 * The client of the hub for bot authors (docs/protocol.md 5.2): submits tasks over the `/client`
 * WebSocket, follows them across reconnects, and reads the service list and descriptions.
 */
import type { ClientAddTaskMsg, ClientToHubMessage, ServiceInfo, ServiceListEntry } from '@utils-hub/protocol';
import { HubError } from '@utils-hub/protocol/errors';
import { Connection, closedError } from './connection.js';
import { TypedEmitter } from './emitter.js';
import { encodeFrames, type EncodedFrames } from './frames.js';
import { InfoRequests } from './info-requests.js';
import { resolveOptions, type HubClientOptions, type ResolvedOptions } from './options.js';
import { restGet } from './rest.js';
import { isServiceId, newIdempotencyKey, submitProblem, type RunOptions, type SubmitOptions, type TaskArgs } from './submit-options.js';
import { TaskHandle, type TaskProgress } from './task-handle.js';

/** Longest task id the hub makes or takes (the protocol's `TaskId`). */
const MAX_TASK_ID_LENGTH = 64;

export type { RunOptions, SubmitOptions, TaskArgs } from './submit-options.js';

/** Events of a HubClient, with their listener signatures. */
export interface HubClientEvents {
  /** The hub's list of services with a live worker: on connecting, and whenever it changes. */
  services: (services: ServiceListEntry[]) => void;
  /** A connection to the hub opened (the first, or one after a drop). */
  connected: () => void;
  /** The connection dropped; the client redials with backoff. */
  disconnected: (info: { code: number; reason: string }) => void;
  /**
   * Something went wrong that no call is waiting for: a failed dial, a refused upgrade (HubError
   * `unauthorized`), a malformed message, a listener that threw. The client carries on.
   */
  error: (error: Error) => void;
}

/** A submission not yet accepted by the hub. */
interface Submission {
  // biome-ignore lint/suspicious/noExplicitAny: handles of every result type share this map (TaskHandle<R> is invariant in R)
  handle: TaskHandle<any>;
  message: ClientAddTaskMsg;
  frames?: EncodedFrames;
  /** Written to a socket that may have died before `accepted` came: sent again on reconnect. */
  sent: boolean;
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
const asHubError = (err: unknown): HubError => (err instanceof HubError ? err : new HubError('internal', (err as Error)?.message ?? String(err)));

/**
 * A connection to a utils-hub for a bot: `run()` a service and await its result, or `submit()`
 * it and follow its events. The socket opens on the first task (or `connect()`), redials with
 * jittered exponential backoff when it drops, and follows every unfinished task again after a
 * reconnect, so no end and no result is lost. Call `close()` when done.
 *
 * Delivery: a task is made once. Every submission carries an idempotency key (the caller's
 * `idempotencyKey`, else a random one); a submission whose `accepted` was lost with the socket
 * is sent again after the reconnect with the same key, and the hub answers it with the task it
 * made the first time (`accepted` with `duplicate: true`), never a second run.
 */
export class HubClient extends TypedEmitter<HubClientEvents> {
  /** The options as merged over the defaults and checked. */
  readonly options: ResolvedOptions;
  readonly #conn: Connection;
  /** Submissions by ref, until accepted or rejected. */
  readonly #pending = new Map<string, Submission>();
  /** Accepted, unfinished tasks by task_id. */
  // biome-ignore lint/suspicious/noExplicitAny: handles of every result type share this map (TaskHandle<R> is invariant in R)
  readonly #tasks = new Map<string, TaskHandle<any>>();
  readonly #info: InfoRequests;
  #refs = 0;
  #services: ServiceListEntry[] | undefined;
  #closing: Promise<void> | null = null;

  /**
   * @param url the hub's base URL, such as `https://hub.example` (`wss://…` works too); the
   *   socket goes to `/client` under it, REST calls to its routes. Or the base URLs of several
   *   hubs of a cluster: the socket goes to one at a time, and a lost socket or a failed dial
   *   moves on to the next; unfinished tasks are followed again there (`subscribe`) and
   *   submissions not yet accepted are sent again with their idempotency key.
   * @param options see HubClientOptions; throws TypeError naming a bad option.
   */
  constructor(url: string | readonly string[], options: HubClientOptions = {}) {
    super((err) => this.emit('error', asError(err)));
    this.options = resolveOptions(url, options);
    this.#conn = new Connection(this.options);
    this.#info = new InfoRequests((m) => this.#sendJson(m), this.options.requestTimeoutMs);
    this.#conn.on('open', () => this.#onOpen());
    this.#conn.on('close', (info) => this.emit('disconnected', info));
    this.#conn.on('error', (err) => this.emit('error', err));
    this.#conn.on('message', (m) => this.#onMessage(m));
  }

  /** True while the socket to the hub is open. */
  get connected(): boolean {
    return this.#conn.isOpen;
  }

  /** The latest service list the hub pushed, or undefined before the first. */
  get lastServices(): ServiceListEntry[] | undefined {
    return this.#services;
  }

  /** Opens the socket if needed; resolves once it is open (rejects as a submission would). */
  connect(): Promise<void> {
    return this.#conn.whenOpen(this.options.connectTimeoutMs);
  }

  /** The services with a live worker (REST `GET /services_list`), ordered by service_id. */
  async services(): Promise<ServiceListEntry[]> {
    return (await restGet(this.options, '/services_list', this.#conn.hub.httpBase)) as ServiceListEntry[];
  }

  /**
   * The description of service `serviceId`, with its arguments and their extras: over the
   * socket when it is open, else by REST (`GET /service_info/{id}`). Rejects with HubError
   * `service_not_found` for an id never seen.
   */
  serviceInfo(serviceId: number): Promise<ServiceInfo> {
    if (!isServiceId(serviceId)) return Promise.reject(new HubError('bad_request', `service id must be a whole number of 0 or more, got ${String(serviceId)}`));
    if (this.#closing) return Promise.reject(closedError());
    if (!this.#conn.isOpen) return restGet(this.options, `/service_info/${serviceId}`, this.#conn.hub.httpBase) as Promise<ServiceInfo>;
    return this.#info.ask(`i-${++this.#refs}`, serviceId);
  }

  /**
   * Submits a task to service `serviceId` and returns its handle at once. The task waits for
   * the connection (up to `connectTimeoutMs`) when there is none.
   */
  submit<R = unknown>(serviceId: number, args: TaskArgs, options: SubmitOptions = {}): TaskHandle<R> {
    const handle = this.#newHandle<R>(isServiceId(serviceId) ? serviceId : undefined);
    const ref = `t-${++this.#refs}`;
    const problem = submitProblem(serviceId, args, options);
    if (problem) {
      queueMicrotask(() => handle._fail(new HubError('bad_request', problem)));
      return handle;
    }
    if (this.#closing) {
      queueMicrotask(() => handle._fail(closedError()));
      return handle;
    }
    const message: ClientAddTaskMsg = { type: 'add_task', ref, service_id: serviceId, args };
    if (options.timeoutMs !== undefined) message.timeout_ms = options.timeoutMs;
    if (options.queueTimeoutMs !== undefined) message.queue_timeout_ms = options.queueTimeoutMs;
    message.idempotency_key = options.idempotencyKey ?? newIdempotencyKey();
    const sub: Submission = { handle, message, sent: false };
    this.#pending.set(ref, sub);
    const signal = options.signal;
    if (signal) {
      const abort = () => void handle.cancel();
      if (signal.aborted) abort();
      else {
        signal.addEventListener('abort', abort, { once: true });
        void handle
          .result()
          .catch(() => {})
          .finally(() => signal.removeEventListener('abort', abort));
      }
    }
    void this.#deliver(ref, sub);
    return handle;
  }

  /**
   * Runs a task and resolves with its result (media as `{mime, name?, data}`, data a Buffer in
   * Node). Rejects with a HubError carrying the contract's code: the rejection's (such as
   * `invalid_args`, with `details.details` listing each problem), the failure's (`task_failed`
   * with `details.worker_error`, `timeout`, `no_worker`, ...), or `canceled`.
   */
  run<R = unknown>(serviceId: number, args: TaskArgs, options: RunOptions = {}): Promise<R> {
    const handle = this.submit<R>(serviceId, args, options);
    const onProgress = options.onProgress;
    if (onProgress) {
      handle.on('progress', onProgress);
      handle.on('snapshot', (s) => {
        if (s.progress !== null || s.message !== null) {
          const p: TaskProgress = { seq: s.seq };
          if (s.progress !== null) p.progress = s.progress;
          if (s.message !== null) p.message = s.message;
          onProgress(p);
        }
      });
    }
    return handle.result();
  }

  /**
   * Follows a task submitted earlier (by this bot before a restart, say): its state now, then its
   * events to its end. The handle fails with `task_not_found` when the hub no longer knows it.
   */
  subscribe<R = unknown>(taskId: string): TaskHandle<R> {
    const known = typeof taskId === 'string' ? this.#tasks.get(taskId) : undefined;
    if (known) return known as TaskHandle<R>;
    const handle = this.#newHandle<R>(undefined);
    // The hub would answer a bad id with an error about no task, which no handle could take.
    if (typeof taskId !== 'string' || taskId.length === 0 || taskId.length > MAX_TASK_ID_LENGTH) {
      queueMicrotask(() =>
        handle._fail(
          new HubError(
            'bad_request',
            `subscribe needs a task id of 1 to ${MAX_TASK_ID_LENGTH} characters, got ${typeof taskId === 'string' ? `${taskId.length} characters` : String(taskId)}`,
          ),
        ),
      );
      return handle;
    }
    if (this.#closing) {
      queueMicrotask(() => handle._fail(closedError()));
      return handle;
    }
    handle._accept(taskId, 0);
    this.#tasks.set(taskId, handle);
    if (this.#conn.isOpen) this.#sendJson({ type: 'subscribe', task_id: taskId });
    else
      this.#conn.whenOpen(this.options.connectTimeoutMs).catch((err: unknown) => {
        this.#tasks.delete(taskId);
        handle._fail(asHubError(err));
      });
    return handle;
  }

  /**
   * Closes the socket and stops redialing. Unfinished tasks fail here with `interrupted` (they
   * go on at the hub; `subscribe` finds them again). Safe to call twice: returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const steps: Array<() => unknown> = [
      () => this.#conn.close(),
      () => {
        for (const sub of this.#pending.values()) sub.handle._fail(closedError());
        this.#pending.clear();
      },
      () => {
        for (const h of this.#tasks.values()) h._fail(closedError());
        this.#tasks.clear();
      },
      () => this.#info.failAll(closedError()),
    ];
    // Every step runs, even when one before it failed.
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        this.emit('error', asHubError(err));
      }
    }
  }

  #newHandle<R>(serviceId: number | undefined): TaskHandle<R> {
    return new TaskHandle<R>(
      serviceId,
      (h) => this.#cancel(h),
      (err) => this.emit('error', asError(err)),
    );
  }

  /** Encodes a submission, waits for the connection, and sends it. */
  async #deliver(ref: string, sub: Submission): Promise<void> {
    try {
      sub.frames = await encodeFrames(sub.message);
      while (!sub.handle.done && this.#pending.get(ref) === sub) {
        await this.#conn.whenOpen(this.options.connectTimeoutMs);
        if (sub.handle.done || this.#pending.get(ref) !== sub) return;
        // An open socket may have closed between the wake-up and here: then wait again.
        if (this.#conn.send(sub.frames)) {
          sub.sent = true;
          return;
        }
      }
    } catch (err) {
      if (this.#pending.get(ref) === sub) this.#pending.delete(ref);
      sub.handle._fail(asHubError(err));
    }
  }

  // biome-ignore lint/suspicious/noExplicitAny: handles of every result type come here (TaskHandle<R> is invariant in R)
  #cancel(handle: TaskHandle<any>): void {
    const taskId = handle.taskId;
    if (taskId === undefined) {
      // Not accepted yet. Unsent: end it here. Sent: cancel once `accepted` names it.
      for (const [ref, sub] of this.#pending) {
        if (sub.handle === handle && !sub.sent) {
          this.#pending.delete(ref);
          handle._fail(new HubError('canceled', 'the task was canceled before it reached the hub'));
        }
      }
      return;
    }
    // Disconnected: the cancel goes out with the resubscription.
    if (this.#conn.isOpen) this.#sendJson({ type: 'cancel', task_id: taskId });
  }

  #sendJson(message: ClientToHubMessage): boolean {
    return this.#conn.send({ text: JSON.stringify(message), binaries: [] });
  }

  /** A socket opened: follow every unfinished task again, resend what may have been lost. */
  #onOpen(): void {
    for (const [taskId, h] of this.#tasks) {
      this.#sendJson({ type: 'subscribe', task_id: taskId });
      if (h.cancelRequested) this.#sendJson({ type: 'cancel', task_id: taskId });
    }
    for (const sub of this.#pending.values()) {
      if (sub.sent && sub.frames) this.#conn.send(sub.frames);
    }
    this.#info.resend();
    this.emit('connected');
  }

  #onMessage(m: Record<string, unknown>): void {
    switch (m.type) {
      case 'services':
        if (Array.isArray(m.services)) {
          this.#services = m.services as ServiceListEntry[];
          this.emit('services', this.#services);
        }
        return;
      case 'accepted': {
        const sub = typeof m.ref === 'string' ? this.#pending.get(m.ref) : undefined;
        if (!sub || typeof m.task_id !== 'string') return;
        this.#pending.delete(m.ref as string);
        sub.frames = undefined; // the bytes are no longer needed
        this.#tasks.set(m.task_id, sub.handle);
        sub.handle._accept(m.task_id, typeof m.position === 'number' ? m.position : 0);
        if (sub.handle.cancelRequested) this.#sendJson({ type: 'cancel', task_id: m.task_id });
        return;
      }
      case 'rejected':
      case 'service_info':
        return this.#answer(m);
      case 'error':
        return this.#hubError(m);
      case 'queued':
      case 'started':
      case 'progress':
      case 'result':
      case 'failed':
      case 'canceled':
      case 'snapshot': {
        const h = typeof m.task_id === 'string' ? this.#tasks.get(m.task_id) : undefined;
        if (!h) return;
        h._apply(m);
        if (h.done) this.#tasks.delete(m.task_id as string);
        return;
      }
    }
  }

  /** `rejected` or `service_info`: the answer to a request named by its ref. */
  #answer(m: Record<string, unknown>): void {
    const ref = typeof m.ref === 'string' ? m.ref : undefined;
    if (ref === undefined) return;
    const sub = this.#pending.get(ref);
    if (sub && m.type === 'rejected') {
      this.#pending.delete(ref);
      sub.handle._fail(HubError.from(m.error));
      return;
    }
    this.#info.answer(m);
  }

  /** An `error` from the hub: about a task, a request, or nothing in particular. */
  #hubError(m: Record<string, unknown>): void {
    const { type: _type, ...error } = m;
    const err = HubError.from(error);
    const taskId = typeof m.task_id === 'string' ? m.task_id : undefined;
    // A task the hub no longer knows (its end expired) fails; the client's own follow-up stops.
    // `already_finished` answers a cancel that lost the race: the end event comes (or came) anyway.
    if (err.code === 'already_finished') return;
    const h = taskId !== undefined ? this.#tasks.get(taskId) : undefined;
    if (h && err.code === 'task_not_found') {
      this.#tasks.delete(taskId!);
      h._fail(err);
      return;
    }
    if (typeof m.ref === 'string' && (this.#pending.has(m.ref) || this.#info.has(m.ref))) {
      this.#answer({ type: 'rejected', ref: m.ref, error: { code: m.code, message: m.message } });
      return;
    }
    this.emit('error', err);
  }
}
