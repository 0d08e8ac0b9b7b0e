/**
 * The dispatcher: the pure, synchronous core of the hub (docs/protocol.md section 7).
 *
 * No I/O and no timers inside: time comes from `options.now()`, the hub calls `tick()` when
 * `nextDeadline()` is due, and every effect (a task to send, a cancel to send, an event for the
 * task's subscribers and the store) goes out through the `DispatcherSink` given at construction.
 */
import type { CancelReason, ErrorInfo } from '@utils-hub/protocol';
import { HubError } from '@utils-hub/protocol';
import { DeadlineHeap, type DeadlineEntry } from './deadline-heap.js';
import { TaskQueue, type Queueable } from './task-queue.js';

/** Options of the dispatcher; every duration in milliseconds. */
export interface DispatcherOptions {
  /** Most tasks waiting in one service's queue (`queue_full` past it). Requeued tasks do not count against it. */
  queueLimit: number;
  /** Most attempts of one task (a lost connection re-queues a task while attempts remain). */
  maxAttempts: number;
  /** How long a worker keeps a slot for a task that timed out or was canceled, unless it answers first. Default 10000. */
  cancelGraceMs?: number;
  /** Most bytes (as `TaskSpec.bytes` declares them) waiting in all queues together (`queue_full` past it). Requeued tasks do not count against it but are counted. Default: no bound. */
  queueMaxBytes?: number;
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
  /** Attempts a task coming from another hub already had (cluster mode). Default 0. */
  attempts?: number;
  /** Seq of the latest event such a task already had. Default 0. */
  seq?: number;
  /** When such a task was created, ms since the epoch. Default now. */
  createdAt?: number;
  /** Bytes the task holds while it waits (its args and attachments), for `queueMaxBytes`. Default 0. */
  bytes?: number;
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

/**
 * A worker connection as the dispatcher sees it. `C` is the hub's opaque data about the
 * connection (its socket, its origin): the dispatcher keeps it in its own record of the
 * connection, so that a live connection has one record, whose life the dispatcher decides.
 */
export interface ConnectionInfo<C = undefined> {
  id: string;
  serviceId: number;
  /** Tasks this connection takes at once (1 to 1024). */
  concurrency: number;
  /** The hub's data about the connection, handed back by `connections()` and `connectionPayload()`. */
  payload?: C;
}

/** The view of a connection (for /service_info, metrics, the dashboard). */
export interface ConnectionState<C = undefined> extends ConnectionInfo<C> {
  /** Tasks occupying a slot: in flight plus those timed out or canceled whose answer is still awaited. */
  inFlight: number;
  draining: boolean;
}

/** One event of a task, in the order subscribers must see them; `seq` counts from 1 per task. */
export type TaskEvent<R = unknown> =
  | { type: 'queued'; seq: number; position: number; reason?: { code: 'worker_lost'; message: string } }
  | { type: 'started'; seq: number; attempt: number }
  | { type: 'progress'; seq: number; update: R }
  | { type: 'result'; seq: number; result: R }
  | { type: 'failed'; seq: number; error: HubError }
  | { type: 'canceled'; seq: number };

/** Where the dispatcher's effects go. Called synchronously, from inside the dispatcher's methods. */
export interface DispatcherSink<P> {
  /** Send the task to the connection (the `task` message). Called right after its `started` event. */
  assign(connectionId: string, task: TaskRecord<P>): void;
  /**
   * Optional: why the task cannot go to the connection picked for it (its frames exceed what the
   * connection announced it takes), or null when it can. A refused task ends `failed` with that
   * error at once, without an attempt, and is not re-queued (docs/protocol.md, "Frame limits").
   */
  refuse?(connectionId: string, task: TaskRecord<P>): HubError | null;
  /** Send `cancel` for the task to the connection. */
  cancel(connectionId: string, taskId: string, reason: CancelReason): void;
  /** A task's event; the last one of a task is `result`, `failed` or `canceled`, after which the dispatcher forgets it. */
  event(task: TaskRecord<P>, event: TaskEvent): void;
}

/** What a worker's answer about a task led to. `dropped`: the task was not in flight on that connection. */
export type AnswerOutcome = 'accepted' | 'dropped';

/** The task as the dispatcher keeps it: the hub's read-only record plus the dispatcher's bookkeeping. */
class Task<P> implements Queueable {
  inQueue = false;
  queueSlot?: number = undefined;
  /** Connection it is in flight on, while running. */
  conn: Conn<P> | null = null;
  /** Its one pending deadline: the queue timeout while queued, the run deadline while running. */
  deadline: DeadlineEntry<Due<P>> | null = null;
  /** `assign` went out for the current attempt (so a cancel must go out too, and the slot waits for an answer). */
  sent = false;
  /** Why its latest attempt ended without an answer (its connection was lost), for `queued` and `no_worker`. */
  lost: string | null = null;

  constructor(
    readonly record: TaskRecord<P>,
    readonly bytes: number,
  ) {}

  get fresh(): boolean {
    return this.record.attempt === 0;
  }
}

interface Conn<P> {
  readonly info: ConnectionInfo;
  /** The hub's data about the connection: a `C` of the dispatcher that holds it. */
  readonly payload: unknown;
  draining: boolean;
  /** Tasks in flight, in the order they were assigned. */
  readonly running: Map<string, Task<P>>;
  /** Slots kept by tasks that ended (timeout, cancel) while the worker has not answered: their grace deadlines. */
  readonly held: Map<string, DeadlineEntry<Due<P>>>;
  /** Value of the dispatcher's assignment counter at its latest assignment (0: never). */
  lastAssigned: number;
}

interface Service<P> {
  readonly queue: TaskQueue<Task<P>>;
  readonly conns: Map<string, Conn<P>>;
}

type Due<P> = { kind: 'queue'; task: Task<P> } | { kind: 'run'; task: Task<P> } | { kind: 'grace'; conn: Conn<P>; taskId: string };

/** An end decided while the state was updated, to announce once the state is consistent. */
interface Ending<P> {
  task: Task<P>;
  event: EventBody;
}

const DEFAULT_CANCEL_GRACE_MS = 10_000;
/**
 * Routes tasks to worker connections (docs/protocol.md section 7).
 *
 * Reentrancy: the sink may call back into the dispatcher from inside any callback. Every method
 * brings its state to a consistent point before it calls the sink, and when one step ends or
 * requeues several tasks it decides all of them first and announces them afterwards, so a
 * callback never sees a task half moved. A task's end event is always its last one: after it
 * the dispatcher no longer knows the task.
 */
export class Dispatcher<P, C = undefined> {
  private readonly now: () => number;
  private readonly queueLimit: number;
  private readonly maxAttempts: number;
  private readonly cancelGraceMs: number;
  private readonly sink: DispatcherSink<P>;
  private readonly queueMaxBytes: number;
  /** Bytes waiting in all queues together. */
  private readonly queued = { bytes: 0 };

  /** Every task queued or running, by id. */
  private readonly tasks = new Map<string, Task<P>>();
  private readonly services = new Map<number, Service<P>>();
  private readonly conns = new Map<string, Conn<P>>();
  private readonly deadlines = new DeadlineHeap<Due<P>>();
  /** Counts assignments, so that "assigned least recently" needs no clock. */
  private assignments = 0;
  private running = 0;
  private stopping = false;
  /** Services whose queue may have work for a free slot. */
  private readonly toDispatch = new Set<number>();
  /** While above 0, dispatching waits (a batch is being announced, or dispatching is under way). */
  private hold = 0;

  constructor(options: DispatcherOptions, sink: DispatcherSink<P>) {
    const { queueLimit, maxAttempts, cancelGraceMs = DEFAULT_CANCEL_GRACE_MS, now, queueMaxBytes = Infinity } = options;
    if (!(queueMaxBytes >= 0)) throw new RangeError(`DispatcherOptions.queueMaxBytes must be a number >= 0, got ${queueMaxBytes}`);
    this.queueMaxBytes = queueMaxBytes;
    if (!Number.isInteger(queueLimit) || queueLimit < 0) throw new RangeError(`DispatcherOptions.queueLimit must be an integer >= 0, got ${queueLimit}`);
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new RangeError(`DispatcherOptions.maxAttempts must be an integer >= 1, got ${maxAttempts}`);
    if (!Number.isFinite(cancelGraceMs) || cancelGraceMs < 0)
      throw new RangeError(`DispatcherOptions.cancelGraceMs must be a number of ms >= 0, got ${cancelGraceMs}`);
    if (typeof now !== 'function') throw new TypeError('DispatcherOptions.now must be a function');
    this.queueLimit = queueLimit;
    this.maxAttempts = maxAttempts;
    this.cancelGraceMs = cancelGraceMs;
    this.now = now;
    this.sink = sink;
  }

  /** A connection finished its handshake: tasks waiting in its service's queue may go to it at once. */
  addConnection(info: ConnectionInfo<C>): void {
    if (this.conns.has(info.id)) throw new HubError('internal', `connection ${info.id} is already known`);
    if (!Number.isInteger(info.concurrency) || info.concurrency < 1) throw new RangeError(`concurrency must be an integer >= 1, got ${info.concurrency}`);
    const conn: Conn<P> = {
      info: { id: info.id, serviceId: info.serviceId, concurrency: info.concurrency },
      payload: info.payload,
      draining: false,
      running: new Map(),
      held: new Map(),
      lastAssigned: 0,
    };
    this.conns.set(info.id, conn);
    this.service(info.serviceId).conns.set(info.id, conn);
    this.dispatch(info.serviceId);
  }

  /**
   * A connection is gone (closed, errored, silent). Each task in flight on it goes back to the
   * front of its queue (keeping their order) with a `queued` event when it has attempts left,
   * else ends `failed` `worker_lost`, whose message ends with `why` when given (how the connection
   * closed, e.g. `close 1009 "message too big"`). Unknown ids are ignored.
   */
  removeConnection(connectionId: string, why?: string): void {
    const conn = this.conns.get(connectionId);
    if (!conn) return;
    const serviceId = conn.info.serviceId;
    this.conns.delete(connectionId);
    this.service(serviceId).conns.delete(connectionId);
    for (const entry of conn.held.values()) this.deadlines.invalidate(entry);
    conn.held.clear();

    const lost = [...conn.running.values()];
    const requeued: Task<P>[] = [];
    const steps: Array<Task<P> | Ending<P>> = [];
    for (const task of lost) {
      this.release(task, false);
      if (!this.stopping && task.record.attempt < this.maxAttempts) {
        task.lost = `the connection running attempt ${task.record.attempt} was lost${why ? ` (${why})` : ''}`;
        requeued.push(task);
        steps.push(task);
      } else if (this.stopping) {
        steps.push(this.finish(task, 'failed', { type: 'failed', error: shuttingDown() }));
      } else {
        const how = why ? ` (${why})` : '';
        const error = new HubError('worker_lost', `the connection running the task was lost${how} and no attempt is left`);
        steps.push(this.finish(task, 'failed', { type: 'failed', error }));
      }
    }
    // Front of the queue, in their original order: the last one goes in first.
    for (let i = requeued.length - 1; i >= 0; i--) {
      const task = requeued[i];
      task.record.progress = null;
      task.record.message = null;
      this.enqueue(task, true);
    }

    this.hold++;
    try {
      for (const step of steps) {
        if (step instanceof Task) {
          // A callback before this one may have canceled it (or its queue timeout passed).
          const position = this.queuePosition(step);
          if (position !== null)
            this.emit(step, { type: 'queued', position, reason: { code: 'worker_lost', message: step.lost ?? 'the connection running the task was lost' } });
        } else {
          this.emit(step.task, step.event);
        }
      }
    } finally {
      this.hold--;
    }
    this.dispatch(serviceId);
  }

  /** The worker sent `drain`: no more tasks go to that connection. */
  drainConnection(connectionId: string): void {
    const conn = this.conns.get(connectionId);
    if (conn) conn.draining = true;
  }

  /**
   * Takes a new task: dispatches it to the best connection (position 0) or queues it.
   * Returns its position in the queue (how many wait before it; 0 if it started at once).
   * Throws HubError `queue_full` when the queue is at its limit, `shutting_down` after `shutdown()`.
   *
   * A task that starts at once has its `started` event (and `assign`) before this returns.
   * The queue limit counts tasks never started; requeued ones may take the queue past it.
   */
  submit(spec: TaskSpec<P>): number {
    if (this.stopping) throw shuttingDown();
    if (this.tasks.has(spec.id)) throw new HubError('internal', `task ${spec.id} is already known`);
    const service = this.service(spec.serviceId);
    const task = new Task<P>(
      {
        id: spec.id,
        serviceId: spec.serviceId,
        payload: spec.payload,
        timeoutMs: spec.timeoutMs,
        queueTimeoutMs: spec.queueTimeoutMs,
        status: 'queued',
        attempt: spec.attempts ?? 0,
        seq: spec.seq ?? 0,
        progress: null,
        message: null,
        connectionId: null,
        createdAt: spec.createdAt ?? this.now(),
        startedAt: null,
        finishedAt: null,
      },
      spec.bytes ?? 0,
    );
    if (service.queue.length === 0) {
      const conn = this.pick(service);
      if (conn) {
        this.tasks.set(spec.id, task);
        this.start(task, conn);
        return 0;
      }
    }
    if (service.queue.freshLength >= this.queueLimit) {
      throw new HubError('queue_full', `the queue of this service is full (${this.queueLimit} tasks)`);
    }
    if (this.queued.bytes + task.bytes > this.queueMaxBytes) {
      throw new HubError('queue_full', `the queues are full (${this.queueMaxBytes} bytes of args waiting at most)`);
    }
    const position = service.queue.length;
    this.tasks.set(spec.id, task);
    this.enqueue(task, false);
    // Only does something when a slot is free while tasks wait, which lasts no longer than a sink callback.
    this.dispatch(spec.serviceId);
    return position;
  }

  /**
   * Cancels a queued or running task: it ends `canceled` at once; a running one gets `cancel`
   * (reason `client`) sent to its worker and keeps its slot until the worker answers or the
   * cancel grace passes. Returns false when the dispatcher does not know the task (ended or unknown).
   */
  cancel(taskId: string): boolean {
    const task = this.tasks.get(taskId);
    if (!task) return false;
    if (task.record.status === 'queued') {
      this.service(task.record.serviceId).queue.remove(task);
      const ending = this.finish(task, 'canceled', { type: 'canceled' });
      this.emit(ending.task, ending.event);
      return true;
    }
    this.stopRunning(task, 'client', 'canceled', { type: 'canceled' });
    return true;
  }

  /**
   * A progress message from a worker; emits `progress` when the task is in flight there.
   * Any answer about a task that ended while the worker still held its slot (timeout, cancel)
   * frees that slot and is `dropped`.
   */
  progress(connectionId: string, taskId: string, fraction: number | undefined, message: string | undefined, update: unknown): AnswerOutcome {
    const conn = this.conns.get(connectionId);
    const task = conn?.running.get(taskId);
    if (!conn || !task) return this.lateAnswer(conn, taskId);
    if (fraction !== undefined) task.record.progress = fraction;
    if (message !== undefined) task.record.message = message;
    this.emit(task, { type: 'progress', update });
    return 'accepted';
  }

  /** A result from a worker: ends the task `result` when in flight there; frees the slot either way. */
  result(connectionId: string, taskId: string, result: unknown): AnswerOutcome {
    return this.answer(connectionId, taskId, 'succeeded', { type: 'result', result });
  }

  /** A failure from a worker: ends the task `failed` with `task_failed` and `worker_error`. */
  failed(connectionId: string, taskId: string, error: ErrorInfo): AnswerOutcome {
    const hubError = new HubError('task_failed', `the service failed: ${error.message}`, {
      worker_error: { code: error.code, message: error.message },
    });
    return this.answer(connectionId, taskId, 'failed', { type: 'failed', error: hubError });
  }

  /** Applies every deadline due by `now()`: run timeouts, queue timeouts, cancel graces. */
  tick(): void {
    const now = this.now();
    for (;;) {
      const next = this.deadlines.peek();
      if (!next || next.at > now) return;
      this.deadlines.pop();
      this.fire(next.value);
    }
  }

  /** When `tick()` should next run (ms since epoch, per `now()`), or null when nothing is pending. */
  nextDeadline(): number | null {
    return this.deadlines.peek()?.at ?? null;
  }

  /** Stops taking tasks (`shutting_down`) and ends every queued task `failed` `shutting_down`. */
  shutdown(): void {
    this.stopping = true;
    const endings: Ending<P>[] = [];
    for (const service of this.services.values()) {
      for (const task of service.queue.drain()) {
        endings.push(this.finish(task, 'failed', { type: 'failed', error: shuttingDown() }));
      }
    }
    this.announce(endings);
  }

  /** Ends every running task `failed` with `code`, sending `cancel` (reason `shutdown`) to their workers. */
  failRunning(code: 'shutting_down'): void {
    const stops: Array<{ ending: Ending<P>; conn: Conn<P>; sent: boolean }> = [];
    for (const conn of this.conns.values()) {
      for (const task of [...conn.running.values()]) {
        const sent = task.sent;
        this.release(task, true);
        const error = new HubError(code, 'the hub is stopping');
        stops.push({ ending: this.finish(task, 'failed', { type: 'failed', error }), conn, sent });
      }
    }
    this.hold++;
    try {
      for (const { ending, conn, sent } of stops) {
        if (sent) this.sink.cancel(conn.info.id, ending.task.record.id, 'shutdown');
        this.emit(ending.task, ending.event);
      }
    } finally {
      this.hold--;
    }
    this.dispatch();
  }

  /** The task, while queued or running. */
  task(taskId: string): TaskRecord<P> | undefined {
    return this.tasks.get(taskId)?.record;
  }

  /** Every task queued or running, in submission order (for the operator views). */
  *liveTasks(): IterableIterator<TaskRecord<P>> {
    for (const task of this.tasks.values()) yield task.record;
  }

  /** Position of a queued task in its queue, or null. O(log n). */
  position(taskId: string): number | null {
    const task = this.tasks.get(taskId);
    return task ? this.queuePosition(task) : null;
  }

  /** Length of a service's queue. */
  queueLength(serviceId: number): number {
    return this.services.get(serviceId)?.queue.length ?? 0;
  }

  /** The hub's data about a live connection (see `ConnectionInfo.payload`); undefined when not live. */
  connectionPayload(connectionId: string): C | undefined {
    return this.conns.get(connectionId)?.payload as C | undefined;
  }

  /** The live connections of a service (or of all services). */
  connections(serviceId?: number): ConnectionState<C>[] {
    const conns = serviceId === undefined ? this.conns.values() : (this.services.get(serviceId)?.conns.values() ?? []);
    return [...conns].map((c) => {
      const state: ConnectionState<C> = { ...c.info, inFlight: slotsTaken(c), draining: c.draining };
      if (c.payload !== undefined) state.payload = c.payload as C;
      return state;
    });
  }

  /** Tasks running (in flight, not counting slots held after a timeout or cancel). */
  get runningCount(): number {
    return this.running;
  }

  /** Bytes of args waiting in all queues together (as submitted in `TaskSpec.bytes`). */
  get queuedBytes(): number {
    return this.queued.bytes;
  }

  /** Tasks queued across all services. */
  get queuedCount(): number {
    let n = 0;
    for (const service of this.services.values()) n += service.queue.length;
    return n;
  }

  // ---- internals ----

  private service(serviceId: number): Service<P> {
    let service = this.services.get(serviceId);
    if (!service) {
      service = { queue: new TaskQueue(this.queued), conns: new Map() };
      this.services.set(serviceId, service);
    }
    return service;
  }

  /** The connection that takes the next task: fewest slots taken, then least recently assigned. */
  private pick(service: Service<P>): Conn<P> | null {
    let best: Conn<P> | null = null;
    let bestSlots = 0;
    for (const conn of service.conns.values()) {
      const slots = slotsTaken(conn);
      if (conn.draining || slots >= conn.info.concurrency) continue;
      if (!best || slots < bestSlots || (slots === bestSlots && conn.lastAssigned < best.lastAssigned)) {
        best = conn;
        bestSlots = slots;
      }
    }
    return best;
  }

  /** Starts tasks from the queues of the services marked, while they have room. Waits while `hold` is up. */
  private dispatch(serviceId?: number): void {
    if (serviceId !== undefined) this.toDispatch.add(serviceId);
    else for (const id of this.services.keys()) this.toDispatch.add(id);
    if (this.hold > 0) return;
    this.hold++;
    try {
      for (const id of this.toDispatch) {
        this.toDispatch.delete(id);
        const service = this.service(id);
        for (;;) {
          if (service.queue.length === 0) break;
          const conn = this.pick(service);
          if (!conn) break;
          this.start(service.queue.popFront() as Task<P>, conn);
        }
      }
    } finally {
      this.hold--;
    }
  }

  private enqueue(task: Task<P>, front: boolean): void {
    const queue = this.service(task.record.serviceId).queue;
    task.record.status = 'queued';
    if (front) queue.pushFront(task);
    else queue.pushBack(task);
    task.deadline = this.deadlines.push(this.now() + task.record.queueTimeoutMs, { kind: 'queue', task });
  }

  /** Puts a task (already out of its queue) in flight on `conn`: `started`, then `assign`. */
  private start(task: Task<P>, conn: Conn<P>): void {
    const r = task.record;
    const refused = this.sink.refuse?.(conn.info.id, r);
    if (refused) {
      const ending = this.finish(task, 'failed', { type: 'failed', error: refused });
      this.emit(ending.task, ending.event);
      return;
    }
    const now = this.now();
    this.deadlines.invalidate(task.deadline);
    r.status = 'running';
    r.attempt++;
    r.connectionId = conn.info.id;
    r.startedAt = now;
    task.conn = conn;
    task.sent = false;
    conn.running.set(r.id, task);
    conn.lastAssigned = ++this.assignments;
    this.running++;
    task.deadline = this.deadlines.push(now + r.timeoutMs, { kind: 'run', task });
    const attempt = r.attempt;
    this.emit(task, { type: 'started', attempt });
    // The `started` callback may have canceled the task or lost the connection: then nothing goes out.
    if (task.conn !== conn || r.attempt !== attempt || r.status !== 'running') return;
    task.sent = true;
    this.sink.assign(conn.info.id, r);
  }

  /**
   * Takes a running task off its connection. With `hold`, a task whose `assign` went out keeps
   * its slot until the worker answers or the cancel grace passes. Returns true when the slot is free.
   */
  private release(task: Task<P>, hold: boolean): boolean {
    const conn = task.conn as Conn<P>;
    const id = task.record.id;
    conn.running.delete(id);
    this.running--;
    this.deadlines.invalidate(task.deadline);
    task.deadline = null;
    task.conn = null;
    task.record.connectionId = null;
    if (!hold || !task.sent) return true;
    conn.held.set(id, this.deadlines.push(this.now() + this.cancelGraceMs, { kind: 'grace', conn, taskId: id }));
    return false;
  }

  /** Ends a running task on the hub's side (client cancel, run timeout): `cancel` to the worker, then the end event. */
  private stopRunning(task: Task<P>, reason: CancelReason, status: TaskState, event: EventBody): void {
    const conn = task.conn as Conn<P>;
    const sent = task.sent;
    const freed = this.release(task, true);
    const ending = this.finish(task, status, event);
    if (sent) this.sink.cancel(conn.info.id, task.record.id, reason);
    this.emit(ending.task, ending.event);
    if (freed) this.dispatch(conn.info.serviceId);
  }

  /** A result or failure from a worker. */
  private answer(connectionId: string, taskId: string, status: TaskState, event: EventBody): AnswerOutcome {
    const conn = this.conns.get(connectionId);
    const task = conn?.running.get(taskId);
    if (!conn || !task) return this.lateAnswer(conn, taskId);
    this.release(task, false);
    const ending = this.finish(task, status, event);
    this.emit(ending.task, ending.event);
    this.dispatch(conn.info.serviceId);
    return 'accepted';
  }

  /** An answer about a task not in flight there: dropped, but it frees a slot held for that task. */
  private lateAnswer(conn: Conn<P> | undefined, taskId: string): AnswerOutcome {
    const entry = conn?.held.get(taskId);
    if (conn && entry) {
      conn.held.delete(taskId);
      this.deadlines.invalidate(entry);
      this.dispatch(conn.info.serviceId);
    }
    return 'dropped';
  }

  /** Marks a task ended and forgets it; its end event is to be emitted by the caller. */
  private finish(task: Task<P>, status: TaskState, event: EventBody): Ending<P> {
    const r = task.record;
    this.tasks.delete(r.id);
    this.deadlines.invalidate(task.deadline);
    task.deadline = null;
    r.status = status;
    r.connectionId = null;
    r.finishedAt = this.now();
    return { task, event };
  }

  private fire(due: Due<P>): void {
    switch (due.kind) {
      case 'queue': {
        const task = due.task;
        this.service(task.record.serviceId).queue.remove(task);
        const lost = task.lost ? `; before that, ${task.lost}` : '';
        const error = new HubError('no_worker', `no worker took the task within its queue timeout of ${task.record.queueTimeoutMs} ms${lost}`);
        const ending = this.finish(task, 'failed', { type: 'failed', error });
        this.emit(ending.task, ending.event);
        return;
      }
      case 'run': {
        const error = new HubError('timeout', `the task ran past its deadline of ${due.task.record.timeoutMs} ms`);
        this.stopRunning(due.task, 'timeout', 'failed', { type: 'failed', error });
        return;
      }
      case 'grace': {
        due.conn.held.delete(due.taskId);
        if (this.conns.get(due.conn.info.id) === due.conn) this.dispatch(due.conn.info.serviceId);
        return;
      }
    }
  }

  private queuePosition(task: Task<P>): number | null {
    if (!task.inQueue) return null;
    return this.service(task.record.serviceId).queue.positionOf(task);
  }

  private announce(endings: Ending<P>[]): void {
    this.hold++;
    try {
      for (const { task, event } of endings) this.emit(task, event);
    } finally {
      this.hold--;
    }
    this.dispatch();
  }

  private emit(task: Task<P>, body: EventBody): void {
    // Every body is a fresh literal made for this call: it becomes the event, without a copy.
    (body as { seq?: number }).seq = ++task.record.seq;
    this.sink.event(task.record, body as TaskEvent);
  }
}

function slotsTaken<P>(conn: Conn<P>): number {
  return conn.running.size + conn.held.size;
}

function shuttingDown(): HubError {
  return new HubError('shutting_down', 'the hub is stopping');
}

/** A task event before its `seq` is given. */
type EventBody = TaskEvent extends infer E ? (E extends { seq: number } ? Omit<E, 'seq'> : never) : never;

export { HubError };
