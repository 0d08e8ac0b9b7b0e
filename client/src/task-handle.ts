/**
 * One task as its submitter sees it: its state built from the hub's events (docs/protocol.md 5.2),
 * de-duplicated by `seq` so that events heard again after a reconnect count once, typed events,
 * and the promise of its end.
 */
import { HubError } from '@utils-hub/protocol/errors';
import { TypedEmitter } from './emitter.js';

/** Where a task stands: `submitting` until the hub accepts it, then as the hub says. */
export type TaskState = 'submitting' | 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';

/** A progress event of a task. */
export interface TaskProgress {
  /** From 0 to 1, when the worker says. */
  progress?: number;
  /** What the worker is doing, for a person. */
  message?: string;
  /** Whatever the worker attached (media come as `{mime, name?, data}`). */
  data?: unknown;
  /** The event's number in its task. */
  seq: number;
}

/** The answer to `subscribe` (after a reconnect): the task's state now. */
export interface TaskSnapshot {
  /** Waiting for a worker, or running on one. */
  status: 'queued' | 'running';
  /** The latest progress, from 0 to 1, or null when the worker gave none. */
  progress: number | null;
  /** The latest progress message, or null. */
  message: string | null;
  /** Tasks before it in its service's queue while queued, else null. */
  position: number | null;
  /** The `seq` of the task's latest event. */
  seq: number;
}

/** What the hub said when it accepted a task: `accepted()` resolves to it, the `accepted` event carries it. */
export interface TaskAccepted {
  /** The hub's id of the task. */
  taskId: string;
  /** Tasks before it in its service's queue then (0 for a task followed with `subscribe`). */
  position: number;
}

/** Events of a TaskHandle, with their listener signatures. */
export interface TaskHandleEvents<R = unknown> {
  /** The hub made the task; `position` tasks wait before it. */
  accepted: (info: TaskAccepted) => void;
  /** The task waits again (its worker was lost). */
  queued: (info: { position: number; seq: number; reason?: { code: string; message: string } }) => void;
  /** A worker took the task; `attempt` counts from 1. */
  started: (info: { attempt: number; seq: number }) => void;
  /** The worker reported progress. */
  progress: (progress: TaskProgress) => void;
  /** The task's state after a reconnect, when it moved on meanwhile. */
  snapshot: (snapshot: TaskSnapshot) => void;
  /** The task succeeded (its last event). */
  result: (result: R) => void;
  /**
   * The task failed (its last event), or was never made: the hub rejected it, the client could
   * not reach the hub in time, or it was closed. `error.code` is the contract's code.
   */
  failed: (error: HubError) => void;
  /** The task was canceled (its last event). */
  canceled: () => void;
}

type Obj = Record<string, unknown>;

const END = new Set(['succeeded', 'failed', 'canceled']);

/** Called by a handle whose `cancel()` was called, for the client to act on it. */
// biome-ignore lint/suspicious/noExplicitAny: called for handles of any result type (TaskHandle<R> is invariant in R)
export type CancelHook = (handle: TaskHandle<any>) => void;

/**
 * A submitted task. Listen to its events, await `result()`, or `cancel()` it. Obtained from
 * `HubClient.submit` (or `subscribe`); its state follows the hub across reconnects.
 */
export class TaskHandle<R = unknown> extends TypedEmitter<TaskHandleEvents<R>> {
  /** The service the task runs on. */
  readonly serviceId: number | undefined;
  #taskId: string | undefined;
  #state: TaskState = 'submitting';
  #progress: number | undefined;
  #message: string | undefined;
  #position: number | undefined;
  #seq = 0;
  #cancelRequested = false;
  readonly #onCancel: CancelHook;
  readonly #result: Promise<R>;
  readonly #accepted: Promise<TaskAccepted>;
  #resolve!: (r: R) => void;
  #reject!: (e: HubError) => void;
  #resolveAccepted!: (info: TaskAccepted) => void;
  #rejectAccepted!: (e: HubError) => void;

  /** @internal Made by HubClient. */
  constructor(serviceId: number | undefined, onCancel: CancelHook, onListenerError?: (err: unknown) => void) {
    super(onListenerError);
    this.serviceId = serviceId;
    this.#onCancel = onCancel;
    this.#result = new Promise<R>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#accepted = new Promise<TaskAccepted>((resolve, reject) => {
      this.#resolveAccepted = resolve;
      this.#rejectAccepted = reject;
    });
    // Nobody has to await these: a failure must not become an unhandled rejection.
    this.#result.catch(() => {});
    this.#accepted.catch(() => {});
  }

  /** The hub's id of the task, once accepted; undefined before. */
  get taskId(): string | undefined {
    return this.#taskId;
  }

  /** Where the task stands. */
  get state(): TaskState {
    return this.#state;
  }

  /** True once the task has ended (or was never made). */
  get done(): boolean {
    return END.has(this.#state);
  }

  /** The latest progress, from 0 to 1, when the worker gave one. */
  get progress(): number | undefined {
    return this.#progress;
  }

  /** The latest progress message. */
  get message(): string | undefined {
    return this.#message;
  }

  /** Tasks before this one in its queue, while it is queued. */
  get position(): number | undefined {
    return this.#position;
  }

  /** The `seq` of the latest event taken (0 before any). */
  get seq(): number {
    return this.#seq;
  }

  /** True once `cancel()` was called. */
  get cancelRequested(): boolean {
    return this.#cancelRequested;
  }

  /**
   * Resolves with `{taskId, position}` (what the `accepted` event carries) once the hub accepts the
   * task; rejects as `result()` does if it never does.
   */
  accepted(): Promise<TaskAccepted> {
    return this.#accepted;
  }

  /**
   * Resolves with the task's result (media as `{mime, name?, data}`); rejects with a HubError:
   * the rejection's code (such as `invalid_args`, `service_not_found`), the failure's code (such
   * as `task_failed` with `details.worker_error`, `timeout`, `no_worker`), or `canceled`.
   */
  result(): Promise<R> {
    return this.#result;
  }

  /**
   * Asks the hub to cancel the task (at once if it was not sent yet). Resolves once the task has
   * ended, whatever its end: a task that finished first keeps its result. Never rejects.
   */
  cancel(): Promise<void> {
    const ended = this.#result.then(
      () => undefined,
      () => undefined,
    );
    if (this.done || this.#cancelRequested) return ended;
    this.#cancelRequested = true;
    this.#onCancel(this);
    return ended;
  }

  /** @internal The hub accepted the task. */
  _accept(taskId: string, position: number): void {
    if (this.#state !== 'submitting') return;
    this.#taskId = taskId;
    this.#state = 'queued';
    this.#position = position;
    const info: TaskAccepted = { taskId, position };
    this.#resolveAccepted(info);
    this.emit('accepted', info);
  }

  /** @internal Ends a task that never reached the hub, or could not be followed. */
  _fail(error: HubError): void {
    if (this.done) return;
    const err =
      this.#taskId && error.details.task_id === undefined ? new HubError(error.code, error.message, { ...error.details, task_id: this.#taskId }) : error;
    this.#state = error.code === 'canceled' ? 'canceled' : 'failed';
    this.#rejectAccepted(err);
    this.#reject(err);
    if (this.#state === 'canceled') this.emit('canceled');
    else this.emit('failed', err);
  }

  /**
   * @internal Applies an event of the task from the hub (`queued`, `started`, `progress`,
   * `snapshot`, `result`, `failed`, `canceled`). Events at or below the latest `seq` seen were
   * taken already (heard again after a reconnect) and are dropped.
   */
  _apply(msg: Obj): void {
    const seq = msg.seq;
    if (this.done || typeof seq !== 'number' || seq <= this.#seq) return;
    this.#seq = seq;
    switch (msg.type) {
      case 'queued':
        this.#state = 'queued';
        this.#position = num(msg.position);
        this.emit(
          'queued',
          msg.reason && typeof msg.reason === 'object'
            ? { position: this.#position ?? 0, seq, reason: msg.reason as { code: string; message: string } }
            : { position: this.#position ?? 0, seq },
        );
        return;
      case 'started':
        this.#state = 'running';
        this.#position = undefined;
        this.emit('started', { attempt: num(msg.attempt) ?? 1, seq });
        return;
      case 'progress': {
        const p: TaskProgress = { seq };
        if (typeof msg.progress === 'number') this.#progress = p.progress = msg.progress;
        if (typeof msg.message === 'string') this.#message = p.message = msg.message;
        if (msg.data !== undefined) p.data = msg.data;
        this.#state = 'running';
        this.emit('progress', p);
        return;
      }
      case 'snapshot': {
        const status = msg.status === 'queued' || msg.status === 'running' ? msg.status : undefined;
        if (!status) return; // an ended task is answered with its end event, not a snapshot
        const snap: TaskSnapshot = {
          status,
          progress: num(msg.progress) ?? null,
          message: typeof msg.message === 'string' ? msg.message : null,
          position: num(msg.position) ?? null,
          seq,
        };
        this.#state = status;
        this.#position = snap.position ?? undefined;
        if (snap.progress !== null) this.#progress = snap.progress;
        if (snap.message !== null) this.#message = snap.message;
        this.emit('snapshot', snap);
        return;
      }
      case 'result':
        this.#state = 'succeeded';
        this.#resolve(msg.result as R);
        this.emit('result', msg.result as R);
        return;
      case 'failed':
        this._fail(HubError.from(msg.error));
        return;
      case 'canceled':
        this._fail(new HubError('canceled', 'the task was canceled'));
        return;
    }
  }
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
