/**
 * The hub's state and rules, apart from any transport: the registry, the dispatcher, the ended
 * tasks and the task store, tied together behind a few verbs. Routes and connections call into
 * it (they never reach its parts); it calls back into connections only through the small
 * `Subscriber`, `WorkerLink` and `ClientLink` interfaces.
 */
import type { FastifyBaseLogger } from 'fastify';
import {
  checkArgs,
  HubError,
  inlineMedia,
  MAX_TIMER_MS,
  type ErrorInfo,
  type ServiceDescription,
  type ServiceInfo,
  type ServiceListEntry,
  type TaskView,
} from '@utils-hub/protocol';
import type { HubConfig } from '../config.js';
import { Dispatcher, type ConnectionState, type TaskEvent, type TaskRecord, type TaskState } from './dispatcher.js';
import { EndedTasks, resultOf, type EndedTask } from './ended-tasks.js';
import { heldBytes } from './bounds.js';
import { newTaskId } from './task-id.js';
import { nanoid } from 'nanoid';
import { nodeBase64 } from './node-base64.js';
import type { Registry } from './registry.js';
import { clientFrame, encodeWorkerMessage, startedFrame, withSeq, workerFrame } from './frames.js';
import type { TaskPersistence } from './task-persistence.js';
import type { DeliveryRow } from '../store/tasks.js';
import { deliveryRow } from './webhook-rows.js';

/** Receives a task's events as wire frames. */
export interface Subscriber {
  /** `end` is true for the task's last event; `progress` for a progress event (one that a later one makes stale). */
  deliver(taskId: string, text: string, binaries: readonly Uint8Array[] | null, end: boolean, progress?: boolean, seq?: number): void;
}

/** A live worker connection as the hub's core sees it. */
export interface WorkerLink {
  readonly id: string;
  /** The largest message the worker said it takes (`hello` `max_message_bytes`), in bytes; undefined: no bound said. */
  readonly maxMessageBytes?: number;
  /** Sends one message (text frame, then its binary frames). */
  send(text: string, binaries?: readonly Uint8Array[] | null): void;
  /** Stops reading from the connection (its messages wait in the socket), until `resume()`. */
  pause(): void;
  resume(): void;
}

/** A client WebSocket as the hub sees it: it hears of the live services. */
export interface ClientLink {
  sendText(text: string): void;
}

/**
 * Who asks about a task, when client keys are in use (docs/protocol.md, "Whose task it is"):
 * the owner name of the key, and whether it is an admin key (sees every task).
 */
export interface Requester {
  owner: string;
  admin: boolean;
}

/** An ended task as `GET /tasks/{id}` shows it, media inline as base64 (the body of its `completed` webhook too). */
export function endedTaskView(t: EndedTask): TaskView {
  const view: TaskView = {
    task_id: t.id,
    service_id: t.serviceId,
    status: t.status,
    progress: t.progress,
    message: t.message,
    attempts: t.attempts,
    created_at: iso(t.createdAt)!,
    started_at: iso(t.startedAt),
    finished_at: iso(t.finishedAt),
  };
  if (t.status === 'succeeded') view.result = inlineMedia(resultOf(t), nodeBase64);
  else view.error = t.error;
  return view;
}

/**
 * Whether `who` may see a task owned by `owner`: always while no key is required (`who` null or
 * undefined), always for an admin key, else only its owner. A task submitted while no key was
 * required (owner null) is then an admin's only.
 */
export function maySee(owner: string | null | undefined, who: Requester | null | undefined): boolean {
  if (!who || who.admin) return true;
  return owner === who.owner;
}

/** The hub's data about a task, carried through the dispatcher. */
export interface TaskPayload {
  args: Record<string, unknown>;
  /** The client key it belongs to; null while no key is required. */
  owner: string | null;
  subscribers: Set<Subscriber>;
  /** The connection of its latest attempt, kept past its end for the task's end log line. */
  connectionId?: string;
  /**
   * The URL of the task's `completed` webhook: the delivery is made at the task's end, from the
   * view `GET /tasks/{id}` then shows, and committed with its end row (an end is never stored
   * without its delivery). Also on the task's rows, for a start after a crash (markInterrupted).
   */
  webhook?: string | null;
  /** Cluster mode: the highest `seq` reserved for it in its row (docs/cluster.md, "Seq across attempts"). */
  seqReserved?: number;
}

/** How `Hub.enqueue` takes a checked task. */
export interface EnqueueOptions {
  /** The id to queue it under (claimed beforehand, for an idempotency key). */
  taskId?: string;
  subscriber?: Subscriber;
  /** The client key it belongs to. */
  owner?: string | null;
  /** Its queued row is committed already (with its key's claim). */
  stored?: boolean;
  /** The URL of its `completed` webhook, if it asked for one. */
  webhook?: string | null;
}

/** What a worker's progress or result carries, to forward without re-serialising. */
export interface WorkerFrames {
  /** The worker's text frame, as received. */
  raw: string;
  binaries: readonly Uint8Array[] | null;
  /** The parsed value (result, or progress data) with media as `{mime, name?, data: Buffer}`. */
  value?: unknown;
}

/** A request to run a task, from REST or a client WebSocket. */
export interface SubmitRequest {
  service_id: number;
  args: unknown;
  timeout_ms?: number;
  queue_timeout_ms?: number;
}

/** Counters for the operator views (metrics); only ever incremented, through `Hub.record*`. */
export interface HubStats {
  /** `bad_message` answers, by side. */
  readonly badMessages: { readonly worker: number; readonly client: number };
  /** Worker handshakes refused, by code. */
  readonly rejectedHandshakes: Readonly<Record<string, number>>;
  /** Failed dials of listed workers (each try). */
  readonly dialFailures: number;
  /** Webhook tries, by outcome (`delivered`, `retried`, `failed`, `gone`, `refused`). */
  readonly webhookDeliveries: Readonly<Record<string, number>>;
}

/** Where a worker connection comes from, as it says in its hello and as the hub saw it. */
export interface WorkerOriginInfo {
  /** The `instance` of its hello, or null. */
  instance: string | null;
  /** True when the hub dialed the worker. */
  dialed: boolean;
  /** The peer's address, or the dialed URL. */
  remote: string;
  /** Tasks it takes at once. */
  concurrency: number;
}

/**
 * A worker connection's hold on its service, from the registry's yes (a hello it accepted) to
 * the connection's end: the service stays live while one is held. `release()` counts once.
 */
export interface ServiceClaim {
  readonly serviceId: number;
  release(): void;
}

/**
 * The hub's record of a live worker connection, kept as the dispatcher's connection payload: the
 * dispatcher decides when a connection stops taking tasks, so its record is the one that cannot
 * disagree with the slots and tasks in flight; the hub adds its socket and origin to it rather
 * than keeping maps of its own by connection id.
 */
interface LiveWorker extends WorkerOriginInfo {
  readonly link: WorkerLink;
  readonly claim: ServiceClaim;
  /** ms since the epoch. */
  readonly connectedAt: number;
}

/** A live worker connection with its load (operator views; a cluster's placement). */
export interface WorkerConnectionView extends WorkerOriginInfo {
  id: string;
  serviceId: number;
  /** ms since the epoch. */
  connectedAt: number;
  /** Slots taken: tasks in flight, plus those timed out or canceled whose answer is awaited. */
  inFlight: number;
  draining: boolean;
}

/**
 * What one hub of a cluster carries, for the operator page of any hub (`GET /api/overview`'s
 * `hubs`): plain data, sent as JSON between hubs.
 */
export interface HubState {
  /** The hub's id (`HUB_ID`, else made at its start). */
  id: string;
  /** Its own URL when it knows it (`HUB_PUBLIC_URL`), else null. */
  url: string | null;
  /** ms since the epoch. */
  startedAt: number;
  /** Open client WebSockets. */
  clients: number;
  running: number;
  queued: number;
  /** Its live worker connections, each with its service's name. */
  connections: Array<WorkerConnectionView & { serviceName: string }>;
  /** False for a hub alive in the cluster (its liveness key) that did not answer in time. */
  answered: boolean;
}

/** A known service (live or not) with its queue, for the operator views. */
export interface ServiceView {
  id: number;
  name: string;
  me: ServiceDescription;
  /** Whether a worker connection serves it. */
  live: boolean;
  /** Tasks waiting in its queue. */
  queued: number;
}

/** A task that passed the checks of `Hub.prepare`: its args keyed by name, defaults filled in. */
export interface PreparedTask {
  serviceId: number;
  args: Record<string, unknown>;
  /** Run deadline of each attempt, in ms. */
  timeoutMs: number;
  /** Longest wait in the queue, in ms. */
  queueTimeoutMs: number;
}

/** A live task as a subscriber's `snapshot` shows it. */
export interface LiveTaskSnapshot {
  seq: number;
  status: TaskState;
  progress: number | null;
  message: string | null;
  /** Place in its queue, or null when running. */
  position: number | null;
}

/** A queued or running task, read-only (operator views). */
export type LiveTask = Readonly<Omit<TaskRecord<TaskPayload>, 'payload'>>;

/**
 * What an acknowledgement waits for (docs/protocol.md, "What an acknowledgement means"):
 * `stored`, the task's row committed before `accepted` (and a 202), its end committed before the
 * end event (and the waiting REST answer); `async`, neither (rows are written behind).
 */
export type CommitMode = HubConfig['commit'];

/** Levels at which the `info` line of a task end is written. */
const INFO_LEVELS = new Set(['info', 'debug', 'trace']);

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * The hub. Its verbs: tasks (`submit`, `cancel`, `view`, `endedTask`, `subscribe`,
 * `unsubscribe`), worker connections (`claimService`, `attachWorker`, `detachWorker`,
 * `drainWorker`, `workerProgress`, `workerResult`, `workerFailed`), client connections
 * (`attachClient`, `detachClient`), counters (`recordBadMessage`, `recordRejectedHandshake`,
 * `recordDialFailure`) and read-only views (`stats`, `services`, `workerConnections`, `liveTasks`,
 * `serviceInfo`, ...).
 *
 * Seams for running several hubs as a cluster: every event of a task passes through `onEvent`
 * (where a hook would tell the others), `workerConnections()` lists the live connections with
 * their load, and a task reaches a connection only through the dispatcher's `assign` sink.
 */
export class Hub {
  // Protected, not private: cluster mode's ClusterHub (server/src/cluster/) extends the hub.
  protected readonly dispatcher: Dispatcher<TaskPayload, LiveWorker>;
  protected readonly ended: EndedTasks;
  private readonly counters = {
    badMessages: { worker: 0, client: 0 },
    rejectedHandshakes: {} as Record<string, number>,
    dialFailures: 0,
    webhookDeliveries: {} as Record<string, number>,
  };
  /** Open client WebSockets, told of the live services. */
  private readonly clients = new Set<ClientLink>();
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private stopping = false;
  /** Whether reading from workers is paused while the task store catches up. */
  private storeBehind = false;
  /** Times the store fell behind since the hub started. */
  private storeBehindCount = 0;
  /** Calls of `onEnd` listeners (metrics, logs). */
  private readonly endListeners: Array<(task: EndedTask) => void> = [];
  /** Whether acknowledgements wait for the task store's commit (`HUB_COMMIT`). */
  readonly commit: CommitMode;
  /**
   * Tasks whose end waits for its commit (stored mode): the task's record (its view as before it
   * ended is made from it when asked) and who waits for the commit. Nobody learns of an end a
   * crash could still undo: `GET /tasks/{id}` shows the task as before, `subscribe` and a cancel
   * wait for the commit. Per task on the hot path: one small entry, no promise and no view made
   * unless a reader asks (see `committed`).
   */
  private readonly committing = new Map<string, { task: TaskRecord<TaskPayload>; waiters: Array<() => void> | null }>();
  /** This hub's name in logs, metrics, `/healthz` and the operator page: `HUB_ID`, else made now. */
  readonly hubId: string;
  /** When this hub was built, ms since the epoch. */
  readonly startedAt: number;

  constructor(
    readonly config: Readonly<HubConfig>,
    protected readonly registry: Registry,
    readonly store: TaskPersistence,
    readonly log: FastifyBaseLogger,
    readonly now: () => number = Date.now,
  ) {
    this.commit = config.commit;
    this.hubId = config.hubId ?? `hub-${nanoid(8)}`;
    this.startedAt = now();
    this.ended = new EndedTasks(config.endedCacheSize, config.endedCacheBytes, config.resultTtlMs, now);
    this.dispatcher = new Dispatcher<TaskPayload, LiveWorker>(
      { queueLimit: config.queueLimit, maxAttempts: config.maxAttempts, cancelGraceMs: config.cancelGraceMs, queueMaxBytes: config.queueMaxBytes, now },
      {
        assign: (connectionId, task) => this.assign(connectionId, task),
        refuse: (connectionId, task) => this.tooLarge(connectionId, task),
        cancel: (connectionId, taskId, reason) =>
          this.dispatcher.connectionPayload(connectionId)?.link.send(workerFrame({ type: 'cancel', task_id: taskId, reason })),
        event: (task, event) => this.onEvent(task, event),
      },
    );
    store.watchBacklog((behind) => this.onStoreBacklog(behind));
    registry.on('change', () => this.pushServices(this.servicesList()));
  }

  /**
   * The task store fell behind (tasks end with more bytes than the database takes) or caught up:
   * reading from workers stops meanwhile, so that their results wait in their sockets (and their
   * TCP windows slow them down) rather than pile up in the hub's memory.
   */
  private onStoreBacklog(behind: boolean): void {
    this.storeBehind = behind;
    for (const c of this.dispatcher.connections()) {
      if (behind) c.payload?.link.pause();
      else c.payload?.link.resume();
    }
    if (!behind) return;
    // Once, then every 100th time: under a steady overload this happens every few seconds.
    if (this.storeBehindCount++ % 100 === 0) {
      this.log.warn(
        { limit_bytes: this.config.storeBacklogBytes, times: this.storeBehindCount },
        'the task store is behind: reading from workers paused until it catches up',
      );
    }
  }

  /** True once shutdown began: new tasks are refused with `shutting_down`. */
  get shuttingDown(): boolean {
    return this.stopping;
  }

  /** Registers a listener called once per ended task. */
  onEnd(listener: (task: EndedTask) => void): void {
    this.endListeners.push(listener);
  }

  /** Ends expired tasks kept in memory for `HUB_RESULT_TTL_MS` (the store purges its own). */
  purgeEnded(): void {
    this.ended.purge();
  }

  // ---- workers ----

  /**
   * A worker's hello passed the checks: claims the service `me` describes for its connection
   * (the service becomes live). Throws `service_conflict` when live connections
   * describe it otherwise. Release the claim if the connection ends before `attachWorker`.
   */
  async claimService(me: ServiceDescription): Promise<ServiceClaim> {
    const entry = await this.registry.attach(me);
    let held = true;
    return {
      serviceId: entry.id,
      release: () => {
        if (!held) return;
        held = false;
        this.registry.detach(entry.id);
      },
    };
  }

  /** A worker connection was welcomed for the service of `claim`: it takes tasks from now on. */
  attachWorker(link: WorkerLink, claim: ServiceClaim, origin: WorkerOriginInfo): void {
    const record: LiveWorker = { ...origin, link, claim, connectedAt: Date.now() };
    if (this.storeBehind) link.pause();
    this.dispatcher.addConnection({ id: link.id, serviceId: claim.serviceId, concurrency: origin.concurrency, payload: record });
    this.schedule();
  }

  /**
   * A worker connection is gone: its tasks are re-dispatched or end `worker_lost` (whose message
   * ends with `why`, how it closed, when given), and its claim on its service is released.
   * Unknown ids are ignored.
   */
  detachWorker(connectionId: string, why?: string): void {
    const record = this.dispatcher.connectionPayload(connectionId);
    if (!record) return;
    this.dispatcher.removeConnection(connectionId, why);
    record.claim.release();
    this.schedule();
  }

  /** The worker said `drain`: it gets no new task. */
  drainWorker(connectionId: string): void {
    this.dispatcher.drainConnection(connectionId);
  }

  /** A worker's `progress`, relayed to the task's subscribers. */
  workerProgress(connectionId: string, taskId: string, fraction: number | undefined, message: string | undefined, frames: WorkerFrames): void {
    this.dispatcher.progress(connectionId, taskId, fraction, message, frames);
    this.schedule();
  }

  /** A worker's `result`: the task succeeds. */
  workerResult(connectionId: string, taskId: string, frames: WorkerFrames): void {
    this.dispatcher.result(connectionId, taskId, frames);
    this.schedule();
  }

  /** A worker's `failed`: the task fails (or is retried, by the error's code). */
  workerFailed(connectionId: string, taskId: string, error: ErrorInfo): void {
    this.dispatcher.failed(connectionId, taskId, error);
    this.schedule();
  }

  /**
   * `payload_too_large` when the task's largest message part (its text frame, or its binary frames
   * together) exceeds what the connection said it takes; null otherwise. Encodes the task only for
   * a connection whose bound is below what a task can reach, so workers that take the hub's own
   * limit cost nothing here.
   */
  private tooLarge(connectionId: string, task: TaskRecord<TaskPayload>): HubError | null {
    const limit = this.dispatcher.connectionPayload(connectionId)?.link.maxMessageBytes;
    if (limit === undefined || limit >= 2 * this.config.maxMessageBytes) return null;
    const { text, binaries } = encodeWorkerMessage({
      type: 'task',
      task_id: task.id,
      args: task.payload.args,
      timeout_ms: task.timeoutMs,
      attempt: task.attempt + 1,
    });
    const bytes = Math.max(
      Buffer.byteLength(text),
      binaries.reduce((n, b) => n + b.byteLength, 0),
    );
    if (bytes <= limit) return null;
    return new HubError('payload_too_large', `the task needs messages of ${bytes} bytes and the worker takes at most ${limit} (its hello's max_message_bytes)`);
  }

  private assign(connectionId: string, task: TaskRecord<TaskPayload>): void {
    const link = this.dispatcher.connectionPayload(connectionId)?.link;
    if (!link) return;
    const { text, binaries } = encodeWorkerMessage({
      type: 'task',
      task_id: task.id,
      args: task.payload.args,
      timeout_ms: task.timeoutMs,
      attempt: task.attempt,
    });
    link.send(text, binaries.length ? binaries : null);
  }

  // ---- tasks ----

  /**
   * Checks and submits a task. `options.subscriber` (the submitter) gets every event of the
   * task, including those that happen inside this call (a `started` when a connection has
   * room): a client connection holds those until it has sent `accepted`. `stored` resolves once
   * the task's row is committed (stored mode: only then may it be acknowledged); null in async
   * mode. While the database fails it stays pending: it never rejects.
   * Throws `shutting_down`, `service_not_found`, `bad_request`, `invalid_args`, `queue_full`.
   */
  submit(
    req: SubmitRequest,
    options: { maxTotalBytes?: number; subscriber?: Subscriber; owner?: string | null; webhook?: string | null } = {},
  ): { taskId: string; position: number; stored: Promise<void> | null } {
    return this.enqueue(this.prepare(req, options.maxTotalBytes), { subscriber: options.subscriber, owner: options.owner, webhook: options.webhook });
  }

  /**
   * The checks of `submit` without submitting: the task as it would be queued. Throws
   * `shutting_down`, `service_not_found`, `bad_request`, `invalid_args`.
   */
  prepare(req: SubmitRequest, maxTotalBytes?: number): PreparedTask {
    if (this.stopping) throw new HubError('shutting_down', 'the hub is stopping and takes no new task');
    const service = this.registry.byServiceId(req.service_id);
    if (!service) throw new HubError('service_not_found', `no service has id ${req.service_id}`);
    const timeoutMs = req.timeout_ms ?? this.config.taskTimeoutMs;
    if (timeoutMs > this.config.maxTaskTimeoutMs) {
      throw new HubError('bad_request', `timeout_ms may be at most ${this.config.maxTaskTimeoutMs}`);
    }
    const queueTimeoutMs = req.queue_timeout_ms ?? this.config.queueTimeoutMs;
    if (queueTimeoutMs > this.config.maxQueueTimeoutMs) {
      throw new HubError('bad_request', `queue_timeout_ms may be at most ${this.config.maxQueueTimeoutMs}`);
    }
    const checked = checkArgs(service.me.input, req.args, { maxTotalBytes: maxTotalBytes ?? this.config.maxMessageBytes, base64: nodeBase64 });
    if (!checked.ok) {
      const first = checked.problems[0];
      throw new HubError('invalid_args', `${first.argument_name}: ${first.problem}`, { details: checked.problems });
    }
    return { serviceId: service.id, args: checked.args, timeoutMs, queueTimeoutMs };
  }

  /**
   * Submits a task checked by `prepare`, under `options.taskId` when given (an id claimed
   * beforehand, for an idempotency key), owned by `options.owner`. `options.stored`: the task's
   * queued row is committed already (with its key's claim), so nothing waits for a commit here.
   * Throws `shutting_down`, `queue_full`.
   */
  enqueue(prepared: PreparedTask, options: EnqueueOptions = {}): { taskId: string; position: number; stored: Promise<void> | null } {
    if (this.stopping) throw new HubError('shutting_down', 'the hub is stopping and takes no new task');
    const subscribers = new Set<Subscriber>();
    if (options.subscriber) subscribers.add(options.subscriber);
    const payload: TaskPayload = { args: prepared.args, owner: options.owner ?? null, subscribers };
    if (options.webhook) payload.webhook = options.webhook;
    const taskId = options.taskId ?? newTaskId();
    const position = this.dispatcher.submit({
      id: taskId,
      serviceId: prepared.serviceId,
      payload,
      timeoutMs: prepared.timeoutMs,
      queueTimeoutMs: prepared.queueTimeoutMs,
      bytes: heldBytes(prepared.args),
    });
    const task = this.dispatcher.task(taskId);
    let stored: Promise<void> | null = null;
    if (this.commit === 'stored' && !options.stored) {
      let done!: () => void;
      stored = new Promise<void>((resolve) => (done = resolve));
      if (task) this.persist(task, done);
      // Ended inside this call (no task does, today): its end row is on its way.
      else void (this.committed(taskId) ?? Promise.resolve()).then(done);
    } else if (task) this.persist(task);
    this.schedule();
    return { taskId, position, stored };
  }

  /**
   * A keyed submit named a task that exists already (a repeat of its key), with the task as the
   * repeat prepared it. Cluster mode runs the task if the hub that made it died before handing it
   * on (docs/cluster.md, "A hub may die"); nothing for a hub alone.
   */
  repeated(_taskId: string, _prepared: PreparedTask, _owner: string | null): void {}

  /**
   * Makes `subscriber` follow a live task that another hub holds (cluster mode) and resolves with
   * its state for the `snapshot` message; events after it are delivered once this resolves.
   * Null when no other hub holds the task (always, for one hub alone).
   */
  async followElsewhere(_taskId: string, _subscriber: Subscriber, _who?: Requester | null): Promise<LiveTaskSnapshot | null> {
    return null;
  }

  /** Why the hub is not ready beyond its database and store (cluster mode: the broker), or null. */
  notReadyReason(): string | null {
    return null;
  }

  /**
   * The task as `GET /tasks/{id}` shows it, from memory only (a live task, or an ended one still
   * in the cache); null otherwise. For webhooks, which read a task at each of its events.
   */
  viewNow(taskId: string): TaskView | null {
    const live = this.dispatcher.task(taskId);
    if (live) return this.liveView(live);
    const ended = this.ended.get(taskId);
    return ended ? this.endedView(ended) : null;
  }

  /**
   * Adds `subscriber` to a live task's events; adding it twice is once. Returns the task's state
   * now (for a `snapshot`), or null when the task is not live (ended or unknown: see `endedTask`)
   * or not `who`'s to see.
   */
  subscribe(taskId: string, subscriber: Subscriber, who?: Requester | null): LiveTaskSnapshot | null {
    const t = this.dispatcher.task(taskId);
    if (!t || !maySee(t.payload.owner, who)) return null;
    t.payload.subscribers.add(subscriber);
    return { seq: t.seq, status: t.status, progress: t.progress, message: t.message, position: this.dispatcher.position(taskId) };
  }

  /** Whether the task is queued or running (and `who`'s to see). */
  isLive(taskId: string, who?: Requester | null): boolean {
    const t = this.dispatcher.task(taskId);
    return t !== undefined && maySee(t.payload.owner, who);
  }

  /** Stops telling `subscriber` of the task's events; the task goes on. */
  unsubscribe(taskId: string, subscriber: Subscriber): void {
    this.dispatcher.task(taskId)?.payload.subscribers.delete(subscriber);
  }

  /**
   * Cancels a task; resolves once its end is committed (stored mode). Throws `task_not_found` or
   * `already_finished`; another key's task (`who`) is `task_not_found`.
   */
  async cancel(taskId: string, who?: Requester | null): Promise<void> {
    const live = this.dispatcher.task(taskId);
    if (live && maySee(live.payload.owner, who) && this.dispatcher.cancel(taskId)) {
      this.schedule();
      await this.committed(taskId); // stored mode: answered once `canceled` is committed
      return;
    }
    if (!live && (await this.endedTask(taskId, who))) {
      throw new HubError('already_finished', 'the task has already ended', { task_id: taskId });
    }
    throw new HubError('task_not_found', 'no task has this id', { task_id: taskId });
  }

  /** The task as `GET /tasks/{id}` shows it, with media inline as base64; null when unknown or not `who`'s to see. */
  async view(taskId: string, who?: Requester | null): Promise<TaskView | null> {
    const live = this.dispatcher.task(taskId);
    if (live) return maySee(live.payload.owner, who) ? this.liveView(live) : null;
    const committing = this.committing.get(taskId);
    // The dispatcher already marked it ended: as it was, it had started or it was queued.
    if (committing) {
      if (!maySee(committing.task.payload.owner, who)) return null;
      return { ...this.liveView(committing.task), status: committing.task.startedAt !== null ? 'running' : 'queued', finished_at: null };
    }
    const ended = await this.endedTask(taskId, who);
    return ended ? this.endedView(ended) : null;
  }

  /** An ended task from memory or the store, or null (also when it is not `who`'s to see). */
  async endedTask(taskId: string, who?: Requester | null): Promise<EndedTask | null> {
    await this.committed(taskId);
    const ended = this.ended.get(taskId) ?? (await this.store.get(taskId));
    return ended && maySee(ended.owner, who) ? ended : null;
  }

  private liveView(t: TaskRecord<TaskPayload>): TaskView {
    return {
      task_id: t.id,
      service_id: t.serviceId,
      status: t.status,
      progress: t.progress,
      message: t.message,
      attempts: t.attempt,
      created_at: iso(t.createdAt)!,
      started_at: iso(t.startedAt),
      finished_at: null,
    };
  }

  private endedView(t: EndedTask): TaskView {
    return endedTaskView(t);
  }

  /** The body of `/service_info/{id}`. Throws `service_not_found`. */
  serviceInfo(id: number): ServiceInfo {
    const s = this.registry.byServiceId(id);
    if (!s) throw new HubError('service_not_found', `no service has id ${id}`);
    const conns = this.dispatcher.connections(s.id);
    const info: ServiceInfo = {
      service_id: s.id,
      service_name: s.name,
      service_description: s.me.description,
      arguments: s.me.input,
      connections: conns.length,
      in_flight: conns.reduce((n, c) => n + c.inFlight, 0),
      queued: this.dispatcher.queueLength(s.id),
    };
    if (s.me.output) info.output = s.me.output;
    return info;
  }

  // ---- clients ----

  /** A client WebSocket opened: it is sent `services` whenever the live services change. */
  attachClient(link: ClientLink): void {
    this.clients.add(link);
  }

  /** A client WebSocket closed. */
  detachClient(link: ClientLink): void {
    this.clients.delete(link);
  }

  // ---- counters ----

  /** A `bad_message` answer went to a worker or a client. */
  recordBadMessage(side: 'worker' | 'client'): void {
    this.counters.badMessages[side]++;
  }

  /** A worker handshake was refused with `code`. */
  recordRejectedHandshake(code: string): void {
    this.counters.rejectedHandshakes[code] = (this.counters.rejectedHandshakes[code] ?? 0) + 1;
  }

  /** A dial of a listed worker failed. */
  recordDialFailure(): void {
    this.counters.dialFailures++;
  }

  /** Counts one webhook try by its outcome (docs/protocol.md section 12). */
  recordWebhookDelivery(outcome: string): void {
    this.counters.webhookDeliveries[outcome] = (this.counters.webhookDeliveries[outcome] ?? 0) + 1;
  }

  // ---- read-only views (metrics, overview, service info) ----

  /** The counters, live (read them when needed; they only grow). */
  get stats(): HubStats {
    return this.counters;
  }

  /** Open client WebSockets. */
  get clientCount(): number {
    return this.clients.size;
  }

  /** Tasks running (in flight). */
  get runningCount(): number {
    return this.dispatcher.runningCount;
  }

  /** Tasks queued across all services. */
  get queuedCount(): number {
    return this.dispatcher.queuedCount;
  }

  /** The live services, ordered by id (the body of `/services_list` and of `services`). */
  servicesList(): ServiceListEntry[] {
    return this.registry.list();
  }

  /** Tells every client WebSocket the live services. */
  protected pushServices(list: ServiceListEntry[]): void {
    const text = clientFrame({ type: 'services', services: list });
    for (const c of this.clients) c.sendText(text);
  }

  /** A known service's name, or undefined. */
  serviceName(serviceId: number): string | undefined {
    return this.registry.byServiceId(serviceId)?.name;
  }

  /** Every known service, live or not, ordered by id, with its queue length. */
  services(): ServiceView[] {
    return this.registry.all().map((s) => ({ id: s.id, name: s.name, me: s.me, live: s.live > 0, queued: this.dispatcher.queueLength(s.id) }));
  }

  /** The live worker connections (of one service, or all) with their load. */
  workerConnections(serviceId?: number): WorkerConnectionView[] {
    return this.dispatcher.connections(serviceId).map((c) => connectionView(c));
  }

  /** Every task queued or running, in submission order. */
  liveTasks(): IterableIterator<LiveTask> {
    return this.dispatcher.liveTasks();
  }

  /** What this hub carries now (the operator page; in a cluster, another hub's page asks). */
  hubState(): HubState {
    return {
      id: this.hubId,
      url: this.config.publicUrl,
      startedAt: this.startedAt,
      clients: this.clientCount,
      running: this.runningCount,
      queued: this.queuedCount,
      connections: this.workerConnections().map((c) => ({ ...c, serviceName: this.serviceName(c.serviceId) ?? `#${c.serviceId}` })),
      answered: true,
    };
  }

  /** The other hubs of the cluster as they answer now, by id; none for a hub alone. */
  async peerStates(): Promise<HubState[]> {
    return [];
  }

  // ---- events ----

  private onEvent(task: TaskRecord<TaskPayload>, ev: TaskEvent): void {
    let text: string;
    let binaries: readonly Uint8Array[] | null = null;
    let end: Pick<EndedTask, 'status' | 'seq' | 'text' | 'binaries' | 'result' | 'error'> | null = null;
    switch (ev.type) {
      case 'queued':
        text = clientFrame(
          ev.reason
            ? { type: 'queued', task_id: task.id, seq: ev.seq, position: ev.position, reason: ev.reason }
            : { type: 'queued', task_id: task.id, seq: ev.seq, position: ev.position },
        );
        this.persist(task);
        break;
      case 'started':
        text = startedFrame(task.id, ev.seq, ev.attempt);
        task.payload.connectionId = task.connectionId ?? undefined;
        this.persist(task);
        break;
      case 'progress': {
        const f = ev.update as WorkerFrames;
        text = withSeq(f.raw, ev.seq);
        binaries = f.binaries;
        break;
      }
      case 'result': {
        const f = ev.result as WorkerFrames;
        text = withSeq(f.raw, ev.seq);
        binaries = f.binaries;
        end = { status: 'succeeded', seq: ev.seq, text, binaries, result: f.value };
        break;
      }
      case 'failed':
        text = clientFrame({ type: 'failed', task_id: task.id, seq: ev.seq, error: ev.error.toJSON() });
        end = { status: 'failed', seq: ev.seq, text, binaries: null, error: ev.error.toJSON() };
        break;
      case 'canceled':
        text = clientFrame({ type: 'canceled', task_id: task.id, seq: ev.seq });
        end = { status: 'canceled', seq: ev.seq, text, binaries: null, error: { code: 'canceled', message: 'the task was canceled' } };
        break;
    }
    if (end === null) {
      this.deliver(task, text, binaries, false, ev.type === 'progress', ev.seq);
      return;
    }
    const deliver = () => {
      this.deliver(task, text, binaries, true, false, ev.seq);
      task.payload.subscribers.clear();
    };
    // Stored mode: the end goes out once it is committed (the end is the task's last event, so
    // holding it back keeps each subscriber's events in seq order).
    this.finish(task, end, this.commit === 'stored' ? deliver : null);
    if (this.commit !== 'stored') deliver();
  }

  /** Hands an event of a live task to its subscribers (cluster mode holds some back: see ClusterHub). */
  protected deliver(task: TaskRecord<TaskPayload>, text: string, binaries: readonly Uint8Array[] | null, end: boolean, progress: boolean, seq: number): void {
    for (const s of task.payload.subscribers) {
      try {
        s.deliver(task.id, text, binaries, end, progress, seq);
      } catch (err) {
        this.log.error({ err, task_id: task.id }, 'a subscriber failed');
      }
    }
  }

  /** Records a task's end; with `onStored`, calls it once the end is committed (or refused). */
  private finish(
    task: TaskRecord<TaskPayload>,
    end: Pick<EndedTask, 'status' | 'seq' | 'text' | 'binaries' | 'result' | 'error'>,
    onStored: (() => void) | null,
  ): void {
    const ended: EndedTask = {
      id: task.id,
      serviceId: task.serviceId,
      progress: task.progress,
      message: task.message,
      attempts: task.attempt,
      createdAt: task.createdAt,
      startedAt: task.startedAt,
      finishedAt: task.finishedAt ?? this.now(),
      owner: task.payload.owner,
      ...end,
    };
    // An end with media is not cached: its bytes stay only until the store has written them to
    // their file (a late reader gets them from the store's buffer, then from the file). Cached,
    // up to endedCacheBytes of MiB buffers lived long enough to reach V8's old generation, and
    // each full collection they caused marked the whole heap (docs/performance.md, media).
    let cache = ended.binaries === null;
    let stored: (() => void) | undefined;
    if (onStored) {
      const entry = { task, waiters: null as Array<() => void> | null };
      stored = () => {
        if (this.committing.get(task.id) === entry) this.committing.delete(task.id);
        if (entry.waiters) for (const w of entry.waiters) w();
        onStored();
      };
      this.committing.set(task.id, entry);
    }
    let outbox: DeliveryRow[] | undefined;
    if (task.payload.webhook) {
      try {
        outbox = [deliveryRow(task.id, task.payload.webhook, 'completed', this.endedView(ended), this.now())];
      } catch (err) {
        this.log.error({ err, task_id: task.id }, 'the webhook delivery of a task end could not be made');
      }
    }
    try {
      this.store.saveEnded(ended, stored && ((dropped) => this.stored(task.id, dropped, stored!)), outbox);
    } catch (err) {
      // A row the store refuses must not keep the end from the task's subscribers.
      this.log.error({ err, task_id: task.id }, 'the task store refused an ended task');
      cache = true;
      stored?.();
      if (outbox?.length) {
        try {
          this.store.saveDeliveries(outbox);
        } catch {
          // The store is closed: logged above.
        }
      }
    }
    if (cache) this.ended.add(ended);
    // Built only when it is written: a quiet hub does no work for it per task.
    if (INFO_LEVELS.has(this.log.level)) {
      const service = this.registry.byServiceId(task.serviceId)?.name;
      this.log.info(
        {
          task_id: task.id,
          service,
          connection_id: task.payload.connectionId,
          status: ended.status,
          code: ended.error?.code,
          attempts: ended.attempts,
          ms: ended.finishedAt - ended.createdAt,
        },
        'task ended',
      );
    }
    for (const l of this.endListeners) l(ended);
  }

  /** Resolves once the task's end is committed (stored mode); undefined when no end waits for it. */
  private committed(taskId: string): Promise<void> | undefined {
    const entry = this.committing.get(taskId);
    if (!entry) return undefined;
    return new Promise<void>((resolve) => (entry.waiters ??= []).push(resolve));
  }

  /** Saves a live task's row; with `onStored`, calls it once the row is committed (or refused). */
  private persist(task: TaskRecord<TaskPayload>, onStored?: () => void): void {
    try {
      this.store.saveLive(
        task,
        onStored && ((dropped) => this.stored(task.id, dropped, onStored)),
        task.payload.owner,
        task.payload.webhook ?? null,
        task.payload.seqReserved,
      );
    } catch (err) {
      this.log.error({ err, task_id: task.id }, 'the task store refused a task');
      onStored?.();
    }
  }

  /**
   * A row waited for is committed, or was dropped: the database refused it on its own (see
   * `TaskStoreOptions.onError`). A dropped row can never be committed, so waiting would hold the
   * task's acknowledgement forever: it goes out anyway, and the log says so.
   */
  private stored(taskId: string, dropped: boolean, then: () => void): void {
    if (dropped) this.log.error({ task_id: taskId }, 'the task store dropped a row that an acknowledgement waited for: acknowledged without it');
    then();
  }

  // ---- time ----

  /** Arms one timer for the dispatcher's earliest deadline: no timer per task. */
  protected schedule(): void {
    const at = this.dispatcher.nextDeadline();
    if (at === null) return;
    if (this.timer && at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    // Node fires a longer delay after 1 ms, and a `queue_timeout_ms` may be days: wake up early instead.
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.timerAt = Infinity;
        this.dispatcher.tick();
        this.schedule();
      },
      Math.min(MAX_TIMER_MS, Math.max(0, at - this.now())),
    );
    this.timer.unref?.();
  }

  // ---- stopping ----

  /**
   * Graceful stop (section 9): no new task, queued tasks fail `shutting_down` at once, running
   * tasks get up to `HUB_SHUTDOWN_GRACE_MS` to end, then fail `shutting_down` with a cancel.
   */
  async shutdown(graceMs = this.config.shutdownGraceMs): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.dispatcher.shutdown();
    }
    const until = this.now() + graceMs;
    while (this.dispatcher.runningCount > 0 && this.now() < until) {
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, until - this.now()))));
    }
    this.dispatcher.failRunning('shutting_down');
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // Stored mode: the ends just made go out once committed, before the sockets close.
    if (this.committing.size > 0) await this.store.flush().catch(() => {});
  }
}

function connectionView(c: ConnectionState<LiveWorker>): WorkerConnectionView {
  const r = c.payload;
  return {
    id: c.id,
    serviceId: c.serviceId,
    instance: r?.instance ?? null,
    dialed: r?.dialed ?? false,
    remote: r?.remote ?? '',
    concurrency: c.concurrency,
    connectedAt: r?.connectedAt ?? 0,
    inFlight: c.inFlight,
    draining: c.draining,
  };
}
