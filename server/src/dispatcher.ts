/**
 * The dispatcher: the pure, synchronous core of the hub (PROTOCOL.md section 7).
 * STUB: the types and the class's public surface are fixed; the bodies are to be written.
 *
 * No I/O and no timers inside: time comes from `options.now()`, the hub calls `tick()` when
 * `nextDeadline()` is due, and every effect (a task to send, a cancel to send, an event for the
 * task's subscribers and the store) goes out through the `DispatcherSink` given at construction.
 */
import type { CancelReason, ErrorInfo } from '@utils-hub/protocol';
import { HubError } from '@utils-hub/protocol';

/** Options of the dispatcher; every duration in milliseconds. */
export interface DispatcherOptions {
  /** Most tasks waiting in one service's queue (`queue_full` past it). Requeued tasks do not count against it. */
  queueLimit: number;
  /** Most attempts of one task (a lost connection re-queues a task while attempts remain). */
  maxAttempts: number;
  /** How long a worker keeps a slot for a task that timed out or was canceled, unless it answers first. Default 10000. */
  cancelGraceMs?: number;
  /** The clock. */
  now: () => number;
}

/** What the hub gives to submit a task. `P` is the hub's opaque payload (args, attachments). */
export interface TaskSpec<P> {
  id: string;
  serviceId: number;
  payload: P;
  /** Run deadline of each attempt, from its start. */
  timeoutMs: number;
  /** Bound of each wait in the queue, from submission or requeue. */
  queueTimeoutMs: number;
}

export type TaskState = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';

/** A task the dispatcher knows (queued or running). Read-only for the hub. */
export interface TaskRecord<P> {
  readonly id: string;
  readonly serviceId: number;
  readonly payload: P;
  readonly timeoutMs: number;
  readonly queueTimeoutMs: number;
  status: TaskState;
  /** Attempts started so far (0 while never started). */
  attempt: number;
  /** Seq of the latest event emitted for the task (0 before any). */
  seq: number;
  progress: number | null;
  message: string | null;
  /** Connection the task is in flight on, while running. */
  connectionId: string | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

/** A worker connection as the dispatcher sees it. */
export interface ConnectionInfo {
  id: string;
  serviceId: number;
  /** Tasks this connection takes at once (1 to 1024). */
  concurrency: number;
}

/** The view of a connection (for /service_info, metrics, the dashboard). */
export interface ConnectionState extends ConnectionInfo {
  /** Tasks occupying a slot: in flight plus those timed out or canceled whose answer is still awaited. */
  inFlight: number;
  draining: boolean;
}

/** One event of a task, in the order subscribers must see them; `seq` counts from 1 per task. */
export type TaskEvent<R = unknown> =
  | { type: 'queued'; seq: number; position: number }
  | { type: 'started'; seq: number; attempt: number }
  | { type: 'progress'; seq: number; update: R }
  | { type: 'result'; seq: number; result: R }
  | { type: 'failed'; seq: number; error: HubError }
  | { type: 'canceled'; seq: number };

/** Where the dispatcher's effects go. Called synchronously, from inside the dispatcher's methods. */
export interface DispatcherSink<P> {
  /** Send the task to the connection (the `task` message). Called right after its `started` event. */
  assign(connectionId: string, task: TaskRecord<P>): void;
  /** Send `cancel` for the task to the connection. */
  cancel(connectionId: string, taskId: string, reason: CancelReason): void;
  /** A task's event; the last one of a task is `result`, `failed` or `canceled`, after which the dispatcher forgets it. */
  event(task: TaskRecord<P>, event: TaskEvent): void;
}

/** What a worker's answer about a task led to. `dropped`: the task was not in flight on that connection. */
export type AnswerOutcome = 'accepted' | 'dropped';

export declare class Dispatcher<P> {
  constructor(options: DispatcherOptions, sink: DispatcherSink<P>);

  /** A connection finished its handshake: tasks waiting in its service's queue may go to it at once. */
  addConnection(info: ConnectionInfo): void;
  /**
   * A connection is gone (closed, errored, silent). Each task in flight on it goes back to the
   * front of its queue (keeping their order) with a `queued` event when it has attempts left,
   * else ends `failed` `worker_lost`. Unknown ids are ignored.
   */
  removeConnection(connectionId: string): void;
  /** The worker sent `drain`: no more tasks go to that connection. */
  drainConnection(connectionId: string): void;

  /**
   * Takes a new task: dispatches it to the best connection (position 0) or queues it.
   * Returns its position in the queue (how many wait before it; 0 if it started at once).
   * Throws HubError `queue_full` when the queue is at its limit, `shutting_down` after `shutdown()`.
   */
  submit(spec: TaskSpec<P>): number;
  /**
   * Cancels a queued or running task: it ends `canceled` at once; a running one gets `cancel`
   * (reason `client`) sent to its worker and keeps its slot until the worker answers or the
   * cancel grace passes. Returns false when the dispatcher does not know the task (ended or unknown).
   */
  cancel(taskId: string): boolean;

  /** A progress message from a worker; emits `progress` when the task is in flight there. */
  progress(connectionId: string, taskId: string, fraction: number | undefined, message: string | undefined, update: unknown): AnswerOutcome;
  /** A result from a worker: ends the task `result` when in flight there; frees the slot either way. */
  result(connectionId: string, taskId: string, result: unknown): AnswerOutcome;
  /** A failure from a worker: ends the task `failed` with `task_failed` and `worker_error`. */
  failed(connectionId: string, taskId: string, error: ErrorInfo): AnswerOutcome;

  /** Applies every deadline due by `now()`: run timeouts, queue timeouts, cancel graces. */
  tick(): void;
  /** When `tick()` should next run (ms since epoch, per `now()`), or null when nothing is pending. */
  nextDeadline(): number | null;

  /** Stops taking tasks (`shutting_down`) and ends every queued task `failed` `shutting_down`. */
  shutdown(): void;
  /** Ends every running task `failed` with `code`, sending `cancel` (reason `shutdown`) to their workers. */
  failRunning(code: 'shutting_down'): void;

  /** The task, while queued or running. */
  task(taskId: string): TaskRecord<P> | undefined;
  /** Position of a queued task in its queue, or null. */
  position(taskId: string): number | null;
  /** Length of a service's queue. */
  queueLength(serviceId: number): number;
  /** The live connections of a service (or of all services). */
  connections(serviceId?: number): ConnectionState[];
  /** Tasks running (in flight, not counting slots held after a timeout or cancel). */
  readonly runningCount: number;
  /** Tasks queued across all services. */
  readonly queuedCount: number;
}

export { HubError };
