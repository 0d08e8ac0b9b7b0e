/**
 * The hub of a cluster member (docs/cluster.md). A `Hub` whose few verbs that can involve
 * another hub (submit, cancel, view, the service list and info, readiness) consult the cluster;
 * everything else (worker and client sockets, the dispatcher, the store) is the single hub's,
 * unchanged. `app.ts` builds it only when `HUB_BROKER` is set, so one hub alone never runs this.
 */
import type { Knex } from 'knex';
import { HubError, resolveRefs, type ServiceInfo, type ServiceListEntry, type TaskView } from '@utils-hub/protocol';
import type { TaskRecord } from '../core/dispatcher.js';
import {
  Hub,
  maySee,
  type EnqueueOptions,
  type HubState,
  type PreparedTask,
  type Requester,
  type Subscriber,
  type TaskPayload,
  type LiveTaskSnapshot,
} from '../core/hub.js';
import type { EndedTask } from '../core/ended-tasks.js';
import { clientFrame } from '../core/frames.js';
import { newTaskId } from '../core/task-id.js';
import { endedTaskView } from '../core/hub.js';
import { deliveryRow } from '../core/webhook-rows.js';
import { Broker } from './broker.js';
import { clusterNames, type ClusterNames } from './names.js';
import { Membership } from './membership.js';
import { LoadReports, type ServiceLoad } from './load-reports.js';
import { EventRelay, type Following, type RelayedEvent, type SeenState } from './event-relay.js';
import { TaskStream, type HeldTask, type ServicePuller, type StreamTask } from './task-stream.js';
import { DialLeases } from './dial-leases.js';
import { HeldTasks } from './held-tasks.js';
import { leaseBucket } from './kv-bucket.js';
import type { KV } from '@nats-io/kv';

/** The cluster's parts, once joined. */
interface Node {
  names: ClusterNames;
  broker: Broker;
  membership: Membership;
  load: LoadReports;
  relay: EventRelay;
  stream: TaskStream;
  leases: DialLeases;
  held: HeldTasks;
  /** Takeovers of dead hubs: `create(dead id)` wins one for this hub. */
  takeovers: KV;
  scanTimer: NodeJS.Timeout;
  db: Knex;
}

/** How long the takeover of a dead hub stays won (its key's TTL), in ms. */
const TAKEOVER_TTL_MS = 10 * 60_000;

/** A task submitted here that runs (or waits) elsewhere. */
interface RemoteTask {
  serviceId: number;
  payload: TaskPayload;
  following: Following | null;
  createdAt: number;
  status: 'queued' | 'running';
  attempts: number;
  startedAt: number | null;
  queueTimer: NodeJS.Timeout | null;
}

/**
 * Seq numbers a hub reserves in a task's row ahead of the events it sends (docs/cluster.md, "Seq
 * across attempts"): a block at a time, the next asked for when half of the last is used.
 */
const SEQ_BLOCK = 100;

/** An event held back until its seq is reserved in the task's row. */
interface HeldEvent {
  text: string;
  binaries: readonly Uint8Array[] | null;
  progress: boolean;
  seq: number;
}

/** The seq bound of a task running here. */
interface SeqBound {
  /** Highest seq whose reservation is committed: events up to it may go out. */
  committed: number;
  /** Highest seq asked for. */
  asked: number;
  /** Seq of the last event that went out. */
  sent: number;
  /** Events above `committed`, in seq order. */
  held: HeldEvent[];
  /** The task's record (its end may wait for its commit after the dispatcher forgot it). */
  task: TaskRecord<TaskPayload>;
}

/** How long a cancel waits for the hub holding the task to answer, in ms. */
const CANCEL_ANSWER_MS = 500;

const TASK_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * A task redelivered while its row says another live hub runs it waits a heartbeat per delivery
 * (that hub is only slow, or dies and its liveness key expires), up to this many deliveries.
 */
const SLOW_HOLDER_DELIVERIES = 10;

/** The statuses of an ended task's row. */
const ENDED = new Set(['succeeded', 'failed', 'canceled']);

/**
 * Whether args carry media (`{mime, data: Buffer}`): the work queue's messages are JSON, so such
 * a task stays on its hub (docs/cluster.md, "What is built").
 */
function hasMedia(args: unknown): boolean {
  if (!args || typeof args !== 'object') return false;
  for (const v of Object.values(args as Record<string, unknown>)) {
    if (v && typeof v === 'object' && (Buffer.isBuffer(v) || Buffer.isBuffer((v as { data?: unknown }).data))) return true;
  }
  return false;
}

export class ClusterHub extends Hub {
  private node: Node | null = null;
  private readonly remote = new Map<string, RemoteTask>();
  private readonly pullers = new Map<number, Promise<ServicePuller | null>>();
  /** Slots promised to pulled tasks not yet in the dispatcher, by service. */
  private readonly promised = new Map<number, number>();
  /** Stream messages of the tasks running here, by task id: acknowledged at the task's end. */
  private readonly held = new Map<string, HeldTask>();
  /** Records of the tasks run here without the work queue (sequence in the held stream), by task id. */
  private readonly localHeld = new Map<string, Promise<number | null>>();
  /** Seq bounds of the tasks running here, by task id (docs/cluster.md, "Seq across attempts"). */
  private readonly bounds = new Map<string, SeqBound>();
  /**
   * Tasks followed here through the relay (submitted here and run elsewhere, or a subscriber's),
   * with how to end them from their row: read once a hub dies (`watchFollowedRows`).
   */
  private readonly followedRows = new Map<
    string,
    { who: Requester | null | undefined; isDone: () => boolean; done: (end: EndedTask | null) => void; watched: boolean }
  >();
  /** Tasks of repeated keys being checked for a dead hub that made them (`repeated`). */
  private readonly adopting = new Set<string>();
  private scanning = false;
  private roomDirty = false;
  private refreshing: Promise<void> | null = null;
  private lastServices = '';

  /** Publishes the events of every task held here, for followers on other hubs. */
  private readonly relaySubscriber: Subscriber = {
    deliver: (taskId, text, binaries, end, _progress, seq) => {
      const node = this.node;
      node?.relay.publish(taskId, { seq: seq ?? 0, text, binaries, end });
      if (!end) return;
      // The end row first, then the record goes and the message is acked: a death between them
      // finds the row ended (or redelivers the task) rather than lose its end. With
      // HUB_COMMIT=stored (the default) the end reaches subscribers only once its row is
      // committed, so there is nothing to wait for; a flush per end would undo the store's batches.
      const rowWritten = () => (this.commit === 'stored' ? Promise.resolve() : this.store.flush().catch(() => undefined));
      const record = this.localHeld.get(taskId);
      if (record) {
        this.localHeld.delete(taskId);
        void rowWritten()
          .then(() => record)
          .then((seq) => {
            if (seq !== null) node?.held.forget(seq);
          });
      }
      const held = this.held.get(taskId);
      if (!held) return;
      this.held.delete(taskId);
      void rowWritten().then(() => held.ack());
    },
  };

  /** Connects to the broker and joins the cluster. Throws when NATS does not answer. */
  async join(db: Knex): Promise<void> {
    const config = this.config;
    const names = clusterNames(config.cluster);
    const broker = await Broker.connect({ url: config.broker as string, name: this.hubId });
    const self = { id: this.hubId, url: config.publicUrl, startedAt: Date.now() };
    const membership = await Membership.join(broker, names.hubsBucket, self, config.heartbeatMs);
    const load = new LoadReports(broker, names.load, this.hubId, () => this.collectLoad(), { onChange: () => this.onPeersChange() });
    const relay = new EventRelay(broker, names.events);
    const stream = await TaskStream.open(broker, names, { ackWaitMs: 3 * config.heartbeatMs });
    const leases = await DialLeases.open(broker, names.dialsBucket, this.hubId, config.heartbeatMs, (url) =>
      this.log.warn({ worker_url: url }, 'lost the lease of a dialed worker: another hub dials it now'),
    );
    const held = await HeldTasks.open(broker, names);
    const takeovers = await leaseBucket(broker, names.takeoverBucket, TAKEOVER_TTL_MS);
    const scanTimer = setInterval(() => void this.scanDead(), 3 * config.heartbeatMs);
    scanTimer.unref();
    broker.nc.subscribe(names.cancel, {
      callback: (err, msg) => {
        if (err) return;
        let req: { task_id?: unknown; who?: Requester | null };
        try {
          req = msg.json();
        } catch {
          return;
        }
        const taskId = String(req.task_id);
        const t = this.dispatcher.task(taskId);
        // Not the requester's task: as if unknown here (the asking hub answers task_not_found).
        if (!t || !maySee(t.payload.owner, req.who)) return;
        this.dispatcher.cancel(taskId);
        this.schedule();
        msg.respond('ok');
      },
    });
    // The live state of a task held here, for a hub whose client subscribes to it.
    broker.nc.subscribe(names.snapshot, {
      callback: (err, msg) => {
        if (err) return;
        const taskId = msg.string();
        const snap = this.snapshotHere(taskId);
        if (snap)
          msg.respond(
            JSON.stringify({
              ...snap,
              owner:
                this.dispatcher.task(taskId)?.payload.owner ?? this.bounds.get(taskId)?.task.payload.owner ?? this.remote.get(taskId)?.payload.owner ?? null,
            }),
          );
      },
    });
    // What this hub carries, for the operator page of any hub.
    broker.nc.subscribe(names.hubState, {
      callback: (err, msg) => {
        if (!err) msg.respond(JSON.stringify(this.hubState()));
      },
    });
    membership.on('dead', (id) => {
      load.forget(id);
      this.log.warn({ dead_hub: id }, 'a hub of the cluster stopped answering');
      void this.scanDead();
      this.watchFollowedRows();
    });
    broker.on('change', (up) => {
      this.log[up ? 'info' : 'warn']({}, up ? 'the broker is back' : 'the broker is unreachable');
      if (up) this.markRoom();
    });
    this.node = { names, broker, membership, load, relay, stream, leases, held, takeovers, scanTimer, db };
    this.log.info({ cluster: config.cluster }, 'joined the cluster');
    this.markRoom();
  }

  /** Leaves the cluster: stops pulling, gives up leases and liveness, closes the connection. */
  async leave(): Promise<void> {
    const node = this.node;
    if (!node) return;
    this.node = null;
    for (const p of this.pullers.values()) void p.then((x) => x?.close());
    for (const rt of this.remote.values()) {
      rt.following?.stop();
      if (rt.queueTimer) clearTimeout(rt.queueTimer);
    }
    clearInterval(node.scanTimer);
    node.load.close();
    node.stream.close();
    await Promise.all([node.membership.leave(), node.leases.close()]);
    await node.broker.nc.flush().catch(() => undefined);
    await node.broker.close();
  }

  // ---- seq across attempts ----

  /**
   * Every event of a task run here goes out (to local subscribers and the relay) only once its
   * `seq` is reserved in the task's row (`seq_reserved`, committed): a hub that runs the task
   * after this one died starts above that bound, so no client anywhere sees a `seq` twice. The
   * reservations ride with the store's batches, a block of `SEQ_BLOCK` at a time, the next asked
   * for when half of the last is used: the first event of an attempt waits for one group commit
   * (the `running` row's, written anyway), the others only if they outrun the store.
   */
  protected override deliver(
    task: TaskRecord<TaskPayload>,
    text: string,
    binaries: readonly Uint8Array[] | null,
    end: boolean,
    progress: boolean,
    seq: number,
  ): void {
    let b = this.bounds.get(task.id);
    if (end) {
      // Stored mode: its end row (seq and all) is committed. Async mode commits nothing first.
      if (b) {
        this.bounds.delete(task.id);
        this.release(task, b, Number.POSITIVE_INFINITY);
      }
      super.deliver(task, text, binaries, end, progress, seq);
      return;
    }
    if (!b) {
      b = { committed: seq - 1, asked: seq - 1, sent: seq - 1, held: [], task };
      this.bounds.set(task.id, b);
    }
    if (seq + SEQ_BLOCK / 2 > b.asked) this.reserve(task, b, seq + SEQ_BLOCK);
    if (seq <= b.committed && b.held.length === 0) {
      b.sent = seq;
      super.deliver(task, text, binaries, end, progress, seq);
    } else b.held.push({ text, binaries, progress, seq });
  }

  /** Reserves seq numbers up to `upTo` in the task's row, with the store's next write. */
  private reserve(task: TaskRecord<TaskPayload>, b: SeqBound, upTo: number): void {
    b.asked = upTo;
    task.payload.seqReserved = upTo;
    const stored = (dropped: boolean) => {
      if (dropped) this.log.error({ task_id: task.id }, 'the task store dropped the seq reservation of a task: its events go out without it');
      if (upTo <= b.committed) return;
      b.committed = upTo;
      this.release(task, b, upTo);
    };
    try {
      this.store.saveLive(task, stored, task.payload.owner, task.payload.webhook ?? null, upTo);
    } catch (err) {
      this.log.error({ err, task_id: task.id }, 'the task store refused a seq reservation');
      stored(true);
    }
  }

  /** Delivers the held events of a task up to `upTo`, in order. */
  private release(task: TaskRecord<TaskPayload>, b: SeqBound, upTo: number): void {
    let i = 0;
    for (; i < b.held.length && b.held[i].seq <= upTo; i++) {
      const e = b.held[i];
      b.sent = e.seq;
      super.deliver(task, e.text, e.binaries, false, e.progress, e.seq);
    }
    if (i > 0) b.held.splice(0, i);
  }

  /** The seq of the last event of a task run here that went out (not of one held, nor of an end waiting for its commit). */
  private sentSeq(taskId: string, seq: number): number {
    return this.bounds.get(taskId)?.sent ?? seq;
  }

  override subscribe(taskId: string, subscriber: Subscriber, who?: Requester | null): LiveTaskSnapshot | null {
    const snap = super.subscribe(taskId, subscriber, who);
    if (snap) snap.seq = this.sentSeq(taskId, snap.seq);
    return snap;
  }

  // ---- what other hubs see of this one ----

  private collectLoad(): Record<string, ServiceLoad> {
    const out: Record<string, ServiceLoad> = {};
    for (const c of this.dispatcher.connections()) {
      const s = (out[c.serviceId] ??= {
        connections: 0,
        inFlight: 0,
        capacity: 0,
        bestLoad: null,
        queued: this.dispatcher.queueLength(c.serviceId),
        name: this.registry.byServiceId(c.serviceId)?.name ?? '',
      });
      s.inFlight += c.inFlight;
      if (c.draining) continue;
      s.connections++;
      s.capacity += c.concurrency;
      const load = c.inFlight / c.concurrency;
      if (c.inFlight < c.concurrency && (s.bestLoad === null || load < s.bestLoad)) s.bestLoad = load;
    }
    return out;
  }

  /** Free slots of the local connections of a service, less those promised to pulled tasks. */
  private freeSlots(serviceId: number): number {
    let free = 0;
    for (const c of this.dispatcher.connections(serviceId)) if (!c.draining) free += Math.max(0, c.concurrency - c.inFlight);
    return free - (this.promised.get(serviceId) ?? 0);
  }

  /** Lowest load among local connections with room, or null. */
  private bestLocalLoad(serviceId: number): number | null {
    let best: number | null = null;
    for (const c of this.dispatcher.connections(serviceId)) {
      if (c.draining || c.inFlight >= c.concurrency) continue;
      const load = c.inFlight / c.concurrency;
      if (best === null || load < best) best = load;
    }
    return best;
  }

  override schedule(): void {
    super.schedule();
    this.markRoom();
  }

  /** After a change of connections or tasks: the pull requests and the load report follow, once per turn. */
  private markRoom(): void {
    if (this.roomDirty || !this.node) return;
    this.roomDirty = true;
    setImmediate(() => {
      this.roomDirty = false;
      this.updateRooms();
    });
  }

  private updateRooms(): void {
    const node = this.node;
    if (!node) return;
    node.load.publishSoon();
    const services = new Set<number>(this.dispatcher.connections().map((c) => c.serviceId));
    for (const id of this.pullers.keys()) services.add(id);
    for (const id of services) {
      let p = this.pullers.get(id);
      if (!p) {
        p = node.stream
          .puller(id, (held) => this.take(held))
          .catch((err: unknown) => {
            this.log.warn({ err: (err as Error).message, service_id: id }, 'could not pull the tasks of a service');
            this.pullers.delete(id);
            return null;
          });
        this.pullers.set(id, p);
      }
      void p.then((puller) => puller?.setRoom(this.isStopping() ? 0 : this.freeSlots(id)));
    }
  }

  private isStopping(): boolean {
    return this.shuttingDown;
  }

  // ---- tasks from the stream ----

  /** A task pulled from the stream: runs it here if a slot is still free, else hands it on. */
  private take(held: HeldTask): boolean {
    const t = held.task;
    if (this.isStopping() || !this.node || this.freeSlots(t.serviceId) <= 0 || this.dispatcher.task(t.id) || this.held.has(t.id)) return false;
    if (!this.registry.byServiceId(t.serviceId)) {
      void this.refreshRegistry();
      return false;
    }
    // JetStream delivers at least once: a message may come again after its task ended (its ack
    // lost with the broker, or the broker's own state lost in a crash: a restarted server may
    // count it as never delivered). The row decides: an ended task's message is only acked, never
    // run again; one that another live hub runs waits (that hub is only slow); else this hub
    // claims the row (`running`, its `hub_id`) unless another hub ended it meanwhile (a cancel or
    // queue timeout that deleted the message while it was on its way here): one of the two wins,
    // never both. A redelivered one (its holder died) numbers the new attempt's events above the
    // row's reserved seq and what followers saw.
    this.promised.set(t.serviceId, (this.promised.get(t.serviceId) ?? 0) + 1);
    const node = this.node;
    const fresh = held.deliveries === 1 && !t.takeover;
    // Its slot stays promised until it runs here or is handed on, so that no other pull takes it
    // while the row is read and claimed.
    let promised = true;
    const unpromise = () => {
      if (!promised) return;
      promised = false;
      this.promised.set(t.serviceId, Math.max(0, (this.promised.get(t.serviceId) ?? 1) - 1));
    };
    const noRoom = () => this.isStopping() || this.freeSlots(t.serviceId) < 0;
    // A first delivery: nobody ran it, so the claim alone decides (one statement, as the read was).
    const first = fresh ? this.claimRow(node, t.id) : Promise.resolve(false);
    void Promise.all([fresh ? { seq: 0, attempt: 0 } : node.relay.lastSeen(t.id), first.then((won) => (won ? null : this.rowState(node, t.id))), first])
      .then(async ([seen, row, claimed]) => {
        if (row?.ended) return void held.ack();
        if (row?.runningOn && row.runningOn !== this.hubId && node.membership.live.has(row.runningOn) && held.deliveries < SLOW_HOLDER_DELIVERIES) {
          this.log.warn({ task_id: t.id, holder: row.runningOn, deliveries: held.deliveries }, 'a task redelivered while a live hub runs it waits a heartbeat');
          return held.release(this.config.heartbeatMs);
        }
        if (!claimed && noRoom()) return held.release();
        // A row not yet there (its submitting hub writes it beside the publish) counts as claimed.
        if (!claimed && row?.exists && !(await this.claimRow(node, t.id))) {
          this.log.warn({ task_id: t.id }, 'a task pulled from the cluster had been ended by another hub: not run');
          return void held.ack();
        }
        if (noRoom()) {
          await this.unclaimRow(node, t.id);
          return held.release();
        }
        unpromise();
        this.run(held, { seq: Math.max(seen.seq, row?.seqFloor ?? 0), attempt: seen.attempt });
      })
      .catch((err: unknown) => {
        this.log.warn({ err: (err as Error).message, task_id: t.id }, 'could not take a task from the cluster');
        held.release();
      })
      .finally(() => {
        unpromise();
        this.markRoom();
      });
    return true;
  }

  /**
   * What the task's row says: whether it exists and ended, the hub running it (`running` rows),
   * and the highest `seq` any hub may have sent for it (its `seq` and `seq_reserved`). A read
   * that fails counts as a row not ended (it runs) and gives no floor.
   */
  private async rowState(
    node: Node,
    taskId: string,
  ): Promise<{ exists: boolean; status: string; hubId: string | null; ended: boolean; runningOn: string | null; seqFloor: number }> {
    const row = (await node
      .db('tasks')
      .where({ id: taskId })
      .first('status', 'seq', 'seq_reserved', 'hub_id')
      .catch(() => undefined)) as { status: string; seq: number | string | null; seq_reserved: number | string | null; hub_id: string | null } | undefined;
    if (!row) return { exists: false, status: '', hubId: null, ended: false, runningOn: null, seqFloor: 0 };
    return {
      exists: true,
      status: row.status,
      hubId: row.hub_id,
      ended: ENDED.has(row.status),
      runningOn: row.status === 'running' ? row.hub_id : null,
      seqFloor: Math.max(Number(row.seq ?? 0), Number(row.seq_reserved ?? 0)),
    };
  }

  /**
   * Claims a pulled task's row for this hub (`running`, its `hub_id`) unless it ended: false when
   * another hub ended it first. A claim that cannot be written counts as won (the task runs).
   */
  private async claimRow(node: Node, taskId: string): Promise<boolean> {
    try {
      const n = await node.db('tasks').where({ id: taskId }).whereIn('status', ['queued', 'running']).update({ status: 'running', hub_id: this.hubId });
      return n > 0;
    } catch (err) {
      this.log.warn({ err: (err as Error).message, task_id: taskId }, 'could not claim the row of a task taken from the cluster');
      return true;
    }
  }

  /** Gives a claimed row back to the queue (the task is handed on without running here). */
  private async unclaimRow(node: Node, taskId: string): Promise<void> {
    await node
      .db('tasks')
      .where({ id: taskId, status: 'running', hub_id: this.hubId })
      .update({ status: 'queued' })
      .catch(() => undefined);
  }

  /**
   * Ends a task waiting in the cluster's queue whose message this hub deleted (cancel, queue
   * timeout), unless a hub took it meanwhile: the row goes from `queued` to the end in one
   * conditional write. Null when a hub had claimed the row (it runs the task and ends it) or it ended. A row
   * that is missing (its write failed) is ended as before, unconditionally.
   */
  private async endIfQueued(
    node: Node,
    t: StreamTask,
    afterSeq: number,
    status: 'failed' | 'canceled',
    error: { code: string; message: string },
  ): Promise<EndedTask | null> {
    const row = await this.rowState(node, t.id);
    if (!row.exists) return this.endHere(t, afterSeq, 0, status, error);
    // Ended, or running on a live hub (it pulled the message before the delete): not ours to end.
    if (row.ended || (row.runningOn !== null && node.membership.live.has(row.runningOn))) return null;
    const seq = Math.max(afterSeq, row.seqFloor) + 1;
    const finishedAt = Date.now();
    // Still as read (`queued`, or `running` on a dead hub whose redelivery the delete prevented):
    // a hub that claims it meanwhile changes its status or `hub_id`, and this write then loses.
    const n = await node
      .db('tasks')
      .where({ id: t.id, status: row.status })
      .andWhere((q) => (row.hubId === null ? q.whereNull('hub_id') : q.where('hub_id', row.hubId)))
      .update({ status, error: JSON.stringify(error), seq, finished_at: finishedAt, hub_id: this.hubId })
      .catch(() => 0);
    if (n === 0) return null;
    const text = status === 'canceled' ? clientFrame({ type: 'canceled', task_id: t.id, seq }) : clientFrame({ type: 'failed', task_id: t.id, seq, error });
    const ended: EndedTask = {
      id: t.id,
      serviceId: t.serviceId,
      status,
      seq,
      text,
      binaries: null,
      error,
      progress: null,
      message: null,
      attempts: 0,
      createdAt: t.createdAt,
      startedAt: null,
      finishedAt,
      owner: t.owner ?? null,
    };
    this.ended.add(ended);
    node.relay.publish(t.id, { seq, text, binaries: null, end: true });
    return ended;
  }

  private run(held: HeldTask, seen: SeenState): void {
    const t = held.task;
    const attempts = Math.max(t.attempts, seen.attempt);
    const seq = Math.max(t.seq, seen.seq);
    const now = Date.now();
    if (attempts >= this.config.maxAttempts) {
      this.endHere(t, seq, attempts, 'failed', { code: 'worker_lost', message: 'the hub running the task was lost and no attempt is left' });
      void held.ack();
      return;
    }
    if (attempts === 0 && now > t.queueDeadline) {
      this.endHere(t, seq, attempts, 'failed', { code: 'no_worker', message: 'no worker took the task within its queue timeout' });
      void held.ack();
      return;
    }
    this.held.set(t.id, held);
    try {
      this.dispatcher.submit({
        id: t.id,
        serviceId: t.serviceId,
        payload: { args: t.args, owner: t.owner ?? null, subscribers: new Set([this.relaySubscriber]), webhook: t.webhook ?? null },
        timeoutMs: t.timeoutMs,
        queueTimeoutMs: Math.max(1, t.queueDeadline - now),
        attempts,
        seq,
        createdAt: t.createdAt,
      });
    } catch (err) {
      this.held.delete(t.id);
      if (this.node) void this.unclaimRow(this.node, t.id);
      held.release();
      this.log.warn({ err: (err as Error).message, task_id: t.id }, 'could not run a task from the cluster');
    }
    this.schedule();
  }

  /** Ends a task this hub decided about without running it: row, cache, followers. */
  private endHere(t: StreamTask, seq: number, attempts: number, status: 'failed' | 'canceled', error: { code: string; message: string }): EndedTask {
    const endSeq = seq + 1;
    const text =
      status === 'canceled'
        ? clientFrame({ type: 'canceled', task_id: t.id, seq: endSeq })
        : clientFrame({ type: 'failed', task_id: t.id, seq: endSeq, error });
    const ended: EndedTask = {
      id: t.id,
      serviceId: t.serviceId,
      status,
      seq: endSeq,
      text,
      binaries: null,
      error,
      progress: null,
      message: null,
      attempts,
      createdAt: t.createdAt,
      startedAt: null,
      finishedAt: Date.now(),
    };
    this.ended.add(ended);
    try {
      // Its `completed` webhook with its end row, as for a task that ran (`Hub`'s end).
      const outbox = t.webhook ? [deliveryRow(t.id, t.webhook, 'completed', endedTaskView(ended), ended.finishedAt)] : undefined;
      this.store.saveEnded(ended, undefined, outbox);
    } catch (err) {
      this.log.error({ err, task_id: t.id }, 'the task store refused an ended task');
    }
    this.node?.relay.publish(t.id, { seq: endSeq, text, binaries: null, end: true });
    return ended;
  }

  // ---- dead hubs ----

  /**
   * Takes over the tasks that dead hubs ran on their own: any hub with records in the held
   * stream and no liveness key. One survivor wins each dead hub (KV `create`); it hands each
   * unfinished task to the work queue as a new attempt (its row's attempts), then purges them.
   */
  private async scanDead(): Promise<void> {
    const node = this.node;
    if (!node?.broker.up || this.scanning) return;
    this.scanning = true;
    try {
      for (const h of await node.held.hubs()) {
        if (h === this.hubId || node.membership.live.has(h) || (await node.membership.record(h))) continue;
        try {
          await node.takeovers.create(h, this.hubId);
        } catch {
          continue; // Another hub took it over.
        }
        const n = await node.held.drain(h, (t) => this.takeOver(node, t));
        this.log.warn({ dead_hub: h, tasks: n }, 'took over the tasks of a dead hub');
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not look for the tasks of dead hubs');
    } finally {
      this.scanning = false;
    }
  }

  private async takeOver(node: Node, t: StreamTask): Promise<void> {
    const row = (await node.db('tasks').where({ id: t.id }).first()) as
      | { status: string; attempts: number; seq: number | null; seq_reserved: number | string | null }
      | undefined;
    if (row && ENDED.has(row.status)) return;
    // The new attempt numbers its events above every seq the dead hub may have sent.
    const seq = Math.max(Number(row?.seq ?? 0), Number(row?.seq_reserved ?? 0));
    await node.stream.publish({ ...t, attempts: Number(row?.attempts ?? 0), seq, takeover: true, from: this.hubId });
  }

  /**
   * A repeat of an idempotency key whose task's row is `queued` by a hub that died before handing
   * the task on (its key and row committed, then nothing: no message in the work queue nor in its
   * held stream): the repeat brings the args, so this hub runs the task under its id. Checked
   * every heartbeat for up to 6 (a dead hub's liveness key outlives it by up to 3); the row is
   * taken with a conditional write (`hub_id` from the dead hub's to this one's while `queued`), so
   * one hub adopts it, and never one that a hub pulled or a takeover handed on (their message is
   * in the work queue or the held stream until the row is no longer `queued`).
   */
  override repeated(taskId: string, prepared: PreparedTask, owner: string | null): void {
    const node = this.node;
    if (!node || !TASK_ID_RE.test(taskId) || this.adopting.has(taskId) || this.dispatcher.task(taskId) || this.remote.has(taskId)) return;
    this.adopting.add(taskId);
    void this.adopt(node, taskId, prepared, owner)
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message, task_id: taskId }, 'could not check the task of a repeated key'))
      .finally(() => this.adopting.delete(taskId));
  }

  private async adopt(node: Node, taskId: string, prepared: PreparedTask, owner: string | null): Promise<void> {
    for (let i = 0; i < 6; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, this.config.heartbeatMs).unref());
      if (this.node !== node || this.shuttingDown) return;
      const row = (await node.db('tasks').where({ id: taskId }).first('status', 'hub_id', 'attempts', 'seq', 'seq_reserved', 'created_at', 'webhook')) as
        | {
            status: string;
            webhook: string | null;
            hub_id: string | null;
            attempts: number;
            seq: number | string | null;
            seq_reserved: number | string | null;
            created_at: number | string;
          }
        | undefined;
      if ((row?.status !== 'queued' && row?.status !== 'running') || !row.hub_id || row.hub_id === this.hubId) return;
      if (!node.broker.up || node.membership.live.has(row.hub_id)) continue;
      // The held stream first: a takeover moves a task from there to the work queue, never back.
      if (await node.held.has(row.hub_id, taskId)) return;
      if (await node.stream.has(prepared.serviceId, taskId)) return;
      const n = await node.db('tasks').where({ id: taskId, status: row.status, hub_id: row.hub_id }).update({ hub_id: this.hubId, status: 'queued' });
      if (n === 0) return;
      this.log.warn({ task_id: taskId, dead_hub: row.hub_id }, 'runs a task whose hub died before handing it on (a repeat of its key brought its args)');
      // Through the work queue, as a takeover: its next attempt numbers its events above the row's.
      const now = Date.now();
      await node.stream.publish({
        id: taskId,
        serviceId: prepared.serviceId,
        args: prepared.args,
        timeoutMs: prepared.timeoutMs,
        queueDeadline: now + prepared.queueTimeoutMs,
        createdAt: Number(row.created_at),
        attempts: Number(row.attempts),
        seq: Math.max(Number(row.seq ?? 0), Number(row.seq_reserved ?? 0)),
        from: this.hubId,
        owner,
        takeover: row.status === 'running',
        // Its `completed` webhook is on its row (the first row a task gets).
        webhook: row.webhook ?? null,
      });
      return;
    }
  }

  // ---- submit ----

  /**
   * Every submit comes here (`submit` checks, then enqueues; a keyed submit enqueues under the id
   * its key claimed): local first, else through the cluster's work queue (docs/cluster.md).
   */
  override enqueue(prepared: PreparedTask, options: EnqueueOptions = {}): { taskId: string; position: number; stored: Promise<void> | null } {
    // Tests only: a hub that dies between its key's claim (committed) and handing the task on.
    if (options.stored && this.config.testExitAfterClaim) process.kill(process.pid, 'SIGKILL');
    const node = this.node;
    if (node && !node.broker.up && this.dispatcher.connections(prepared.serviceId).length === 0) {
      throw new HubError('unavailable', 'no worker of this service is connected to this hub and the broker (NATS) is unreachable');
    }
    if (!node?.broker.up || hasMedia(prepared.args) || !this.shouldRoute(prepared.serviceId)) {
      const r = super.enqueue(prepared, options);
      const task = node ? this.dispatcher.task(r.taskId) : undefined;
      if (node && task) {
        // Followers on other hubs (subscribe, GET) hear of the task through the relay.
        task.payload.subscribers.add(this.relaySubscriber);
        if (node.broker.up && !hasMedia(task.payload.args)) {
          const record: StreamTask = {
            id: task.id,
            serviceId: task.serviceId,
            args: task.payload.args,
            timeoutMs: task.timeoutMs,
            queueDeadline: task.createdAt + task.queueTimeoutMs,
            createdAt: task.createdAt,
            attempts: 0,
            seq: 0,
            from: this.hubId,
            owner: task.payload.owner,
            webhook: task.payload.webhook ?? null,
          };
          const recorded = node.held.record(this.hubId, record).catch(() => null);
          this.localHeld.set(task.id, recorded);
          // HUB_COMMIT=stored: `accepted` once the record is there too, so that a task whose hub
          // dies after `accepted` is taken over from it (before it, the client repeats its key).
          if (this.commit === 'stored') {
            const row = r.stored;
            return { ...r, stored: recorded.then(() => row ?? undefined) };
          }
        }
      }
      return r;
    }
    if (this.shuttingDown) throw new HubError('shutting_down', 'the hub is stopping and takes no new task');
    const { serviceId, timeoutMs, args } = prepared;
    const taskId = options.taskId ?? newTaskId();
    const now = Date.now();
    // Its `completed` webhook goes with the task: the hub that ends it commits the delivery with its end row.
    const payload: TaskPayload = {
      args,
      owner: options.owner ?? null,
      subscribers: new Set(options.subscriber ? [options.subscriber] : []),
      webhook: options.webhook ?? null,
    };
    const task: StreamTask = {
      id: taskId,
      serviceId,
      args,
      timeoutMs,
      queueDeadline: now + prepared.queueTimeoutMs,
      createdAt: now,
      attempts: 0,
      seq: 0,
      from: this.hubId,
      owner: payload.owner,
      webhook: payload.webhook,
    };
    const rt: RemoteTask = {
      serviceId,
      payload,
      following: null,
      createdAt: now,
      status: 'queued',
      attempts: 0,
      startedAt: null,
      queueTimer: null,
    };
    this.remote.set(taskId, rt);
    // Stored mode: acknowledged once the work queue holds it (JetStream's ack), or once it failed.
    const sent = this.sendRemote(node, task, rt);
    return { taskId, position: 0, stored: this.commit === 'stored' ? sent : null };
  }

  /**
   * Whether a new task of the service goes through the cluster's queue: when no local
   * connection has a free slot, or another hub reported a less loaded one (docs/cluster.md).
   */
  private shouldRoute(serviceId: number): boolean {
    const local = this.bestLocalLoad(serviceId);
    if (local === null) return true;
    const remote = this.node?.load.bestRemoteLoad(serviceId) ?? null;
    return remote !== null && remote < local;
  }

  private async sendRemote(node: Node, task: StreamTask, rt: RemoteTask): Promise<void> {
    // Its `queued` row, beside the publish: any hub reads the task while it waits (GET, subscribe,
    // a keyed repeat), also once this hub is gone. Written only if absent (a keyed task's was
    // committed with its key's claim; the hub that pulled it may have claimed it already).
    const row = this.store
      .insertQueued({ id: task.id, serviceId: task.serviceId, createdAt: task.createdAt, owner: task.owner ?? null, webhook: task.webhook ?? null })
      .catch((err: Error) => {
        this.log.warn({ err: err.message, task_id: task.id }, 'could not write the queued row of a task handed to the cluster');
      });
    try {
      rt.following = await node.relay.follow(task.id, 0, {
        event: (ev) => this.onRemoteEvent(task.id, rt, ev),
        gap: (expected, got) => this.log.warn({ task_id: task.id, expected, got }, 'events of a task were lost between hubs'),
      });
      this.followedRows.set(task.id, {
        who: null,
        isDone: () => !this.remote.has(task.id),
        done: (end) => {
          if (!end) return;
          rt.following?.stop();
          this.finishRemote(task.id, rt, end);
        },
        watched: false,
      });
      await node.stream.publish(task);
      await row; // HUB_COMMIT=stored: `accepted` once the row is there too
      rt.queueTimer = setTimeout(() => void this.queueTimeout(task, rt), Math.max(0, task.queueDeadline - Date.now()));
      rt.queueTimer.unref();
    } catch (err) {
      this.log.warn({ err: (err as Error).message, task_id: task.id }, 'could not hand a task to the cluster');
      rt.following?.stop();
      this.finishRemote(
        task.id,
        rt,
        this.endHere(task, 0, 0, 'failed', { code: 'unavailable', message: 'the broker is unreachable and no local worker of this service has room' }),
      );
    }
  }

  /** Its queue timeout passed: if it still waits in the stream, it ends `no_worker` here. */
  private async queueTimeout(task: StreamTask, rt: RemoteTask): Promise<void> {
    rt.queueTimer = null;
    if (rt.status !== 'queued' || !this.node || !this.remote.has(task.id)) return;
    const node = this.node;
    if (!(await node.stream.remove(task.serviceId, task.id))) return;
    // A hub that pulled it just before the delete runs it: then its end comes from there.
    const ended = await this.endIfQueued(node, task, rt.following?.lastSeq ?? 0, 'failed', {
      code: 'no_worker',
      message: 'no worker took the task within its queue timeout',
    });
    if (!ended) return;
    rt.following?.stop();
    this.finishRemote(task.id, rt, ended);
  }

  private onRemoteEvent(taskId: string, rt: RemoteTask, ev: RelayedEvent): void {
    if (ev.text.startsWith('{"type":"started"')) {
      rt.status = 'running';
      rt.attempts++;
      rt.startedAt ??= Date.now();
    } else if (ev.text.startsWith('{"type":"queued"')) rt.status = 'queued';
    if (!ev.end) {
      for (const s of rt.payload.subscribers) s.deliver(taskId, ev.text, ev.binaries, false, ev.text.startsWith('{"type":"progress"'), ev.seq);
      return;
    }
    let parsed: { type?: string; result?: unknown; error?: EndedTask['error'] } = {};
    try {
      parsed = JSON.parse(ev.text) as typeof parsed;
    } catch {
      // Delivered as it is; the cache keeps what could be read.
    }
    const status = parsed.type === 'result' ? 'succeeded' : parsed.type === 'canceled' ? 'canceled' : 'failed';
    const ended: EndedTask = {
      id: taskId,
      serviceId: rt.serviceId,
      status,
      seq: ev.seq,
      text: ev.text,
      binaries: ev.binaries,
      progress: null,
      message: null,
      attempts: rt.attempts,
      createdAt: rt.createdAt,
      startedAt: rt.startedAt,
      finishedAt: Date.now(),
    };
    if (status === 'succeeded') {
      const message = { result: parsed.result };
      resolveRefs(message, ev.binaries ?? [], 1);
      ended.result = message.result;
    } else ended.error = parsed.error ?? { code: 'canceled', message: 'the task was canceled' };
    this.finishRemote(taskId, rt, ended);
  }

  private finishRemote(taskId: string, rt: RemoteTask, ended: EndedTask): void {
    if (!this.remote.delete(taskId)) return;
    this.followedRows.delete(taskId);
    if (rt.queueTimer) clearTimeout(rt.queueTimer);
    this.ended.add(ended);
    for (const s of rt.payload.subscribers) {
      try {
        s.deliver(taskId, ended.text, ended.binaries, true, false, ended.seq);
      } catch (err) {
        this.log.error({ err, task_id: taskId }, 'a subscriber failed');
      }
    }
    rt.payload.subscribers.clear();
  }

  // ---- cancel, view ----

  override async cancel(taskId: string, who?: Requester | null): Promise<void> {
    const node = this.node;
    if (!node || this.dispatcher.task(taskId) || !TASK_ID_RE.test(taskId)) return super.cancel(taskId, who);
    const rt = this.remote.get(taskId);
    if (!node.broker.up && (rt || (await this.liveRow(taskId, who)))) {
      throw new HubError('unavailable', 'the task is held by another hub and the broker is unreachable', { task_id: taskId });
    }
    try {
      const answer = await node.broker.nc.request(node.names.cancel, JSON.stringify({ task_id: taskId, who: who ?? null }), { timeout: CANCEL_ANSWER_MS });
      if (answer.string() === 'ok') return;
    } catch {
      // No hub holds it (no responders, or none answered in time).
    }
    if (rt && maySee(rt.payload.owner, who) && (await node.stream.remove(rt.serviceId, taskId))) {
      const t: StreamTask = {
        id: taskId,
        serviceId: rt.serviceId,
        args: {},
        timeoutMs: 0,
        queueDeadline: 0,
        createdAt: rt.createdAt,
        attempts: 0,
        seq: 0,
        from: this.hubId,
        webhook: rt.payload.webhook ?? null,
      };
      t.owner = rt.payload.owner;
      const ended = await this.endIfQueued(node, t, rt.following?.lastSeq ?? 0, 'canceled', { code: 'canceled', message: 'the task was canceled' });
      if (ended) {
        rt.following?.stop();
        this.finishRemote(taskId, rt, ended);
        return;
      }
      // A hub pulled it just before the delete and runs it now: the cancel goes there.
      for (let i = 0; i < 4; i++) {
        try {
          const answer = await node.broker.nc.request(node.names.cancel, JSON.stringify({ task_id: taskId, who: who ?? null }), { timeout: CANCEL_ANSWER_MS });
          if (answer.string() === 'ok') return;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      if (!this.remote.has(taskId)) throw new HubError('already_finished', 'the task has already ended', { task_id: taskId });
      throw new HubError('unavailable', 'the hub running the task did not answer the cancel', { task_id: taskId });
    }
    return super.cancel(taskId, who);
  }

  override async view(taskId: string, who?: Requester | null): Promise<TaskView | null> {
    const v = await super.view(taskId, who);
    if (v || !this.node || !TASK_ID_RE.test(taskId)) return v;
    const rt = this.remote.get(taskId);
    if (rt) {
      if (!maySee(rt.payload.owner, who)) return null;
      return {
        task_id: taskId,
        service_id: rt.serviceId,
        status: rt.status,
        progress: null,
        message: null,
        attempts: rt.attempts,
        created_at: new Date(rt.createdAt).toISOString(),
        started_at: rt.startedAt === null ? null : new Date(rt.startedAt).toISOString(),
        finished_at: null,
      };
    }
    return this.liveRow(taskId, who);
  }

  /** A queued or running task as another hub wrote its row, or null. */
  private async liveRow(taskId: string, who?: Requester | null): Promise<TaskView | null> {
    const row = await this.liveRowOf(taskId, who);
    if (!row) return null;
    return {
      task_id: taskId,
      service_id: Number(row.service_id),
      status: row.status,
      progress: row.progress,
      message: row.message,
      attempts: Number(row.attempts),
      created_at: new Date(Number(row.created_at)).toISOString(),
      started_at: row.started_at === null ? null : new Date(Number(row.started_at)).toISOString(),
      finished_at: null,
    };
  }

  /** The row of a queued or running task (`who`'s to see), or null. */
  private async liveRowOf(taskId: string, who?: Requester | null) {
    if (!this.node) return null;
    const row = (await this.node
      .db('tasks')
      .where({ id: taskId })
      .first()
      .catch(() => undefined)) as
      | {
          service_id: number;
          status: 'queued' | 'running';
          seq: number | null;
          seq_reserved?: number | string | null;
          progress: number | null;
          message: string | null;
          attempts: number;
          created_at: number;
          started_at: number | null;
          owner?: string | null;
        }
      | undefined;
    if (!row || (row.status !== 'queued' && row.status !== 'running') || !maySee(row.owner, who)) return null;
    return row;
  }

  /** The state of a task this hub holds (running here, or submitted here and waiting in the cluster). */
  private snapshotHere(taskId: string): LiveTaskSnapshot | null {
    const t = this.dispatcher.task(taskId);
    if (t) return { seq: this.sentSeq(taskId, t.seq), status: t.status, progress: t.progress, message: t.message, position: this.dispatcher.position(taskId) };
    // Ended here, its end waiting for its commit: as it was, until the end goes out.
    const b = this.bounds.get(taskId);
    if (b)
      return {
        seq: b.sent,
        status: b.task.startedAt !== null ? 'running' : 'queued',
        progress: b.task.progress,
        message: b.task.message,
        position: null,
      };
    const rt = this.remote.get(taskId);
    if (rt && rt.status === 'queued') return { seq: rt.following?.lastSeq ?? 0, status: 'queued', progress: null, message: null, position: null };
    return null;
  }

  /**
   * A hub died: the rows of the tasks followed here are read until each has ended (its end may
   * have died with that hub, after its row was committed and before it was published).
   */
  private watchFollowedRows(): void {
    for (const [taskId, f] of this.followedRows) {
      if (f.isDone()) {
        this.followedRows.delete(taskId);
        continue;
      }
      if (f.watched) continue;
      f.watched = true;
      this.watchRow(taskId, f.who, f.isDone, (end) => {
        if (this.followedRows.get(taskId) === f) this.followedRows.delete(taskId);
        f.done(end);
      });
    }
  }

  /**
   * Reads the row of a task followed through the relay every heartbeat (1 s at most) until it
   * has ended (`done(end)`, the end read from the row), the relay delivered its end (`isDone`),
   * or it is gone (`done(null)`): what no hub holds live may end without an event reaching here
   * (a lost core message, a hub that died between its row and its publish).
   */
  private watchRow(taskId: string, who: Requester | null | undefined, isDone: () => boolean, done: (end: EndedTask | null) => void): void {
    const timer = setInterval(
      () =>
        void (async () => {
          if (isDone() || this.isStopping()) return clearInterval(timer);
          const end = await this.endedTask(taskId, who).catch(() => null);
          if (end || !(await this.liveRowOf(taskId, who))) {
            clearInterval(timer);
            if (!isDone()) done(end ?? (await this.endedTask(taskId, who).catch(() => null)));
          }
        })(),
      Math.min(1000, this.config.heartbeatMs),
    );
    timer.unref();
  }

  override async followElsewhere(taskId: string, subscriber: Subscriber, who?: Requester | null): Promise<LiveTaskSnapshot | null> {
    const node = this.node;
    if (!node || !TASK_ID_RE.test(taskId)) return null;
    if (!node.broker.up) {
      if (await this.liveRow(taskId, who))
        throw new HubError('unavailable', 'the task is held by another hub and the broker is unreachable', { task_id: taskId });
      return null;
    }
    // Follow first, then ask the holder: no event falls between its state and what follows it.
    let state: LiveTaskSnapshot | null = null;
    const early: RelayedEvent[] = [];
    let ended = false;
    const isDone = () => ended;
    const pass = (ev: RelayedEvent) => {
      if (ended) return;
      ended = ev.end;
      if (ended && this.followedRows.get(taskId)?.isDone === isDone) this.followedRows.delete(taskId);
      subscriber.deliver(taskId, ev.text, ev.binaries, ev.end, ev.text.startsWith('{"type":"progress"'), ev.seq);
    };
    const following = await node.relay.follow(taskId, 0, {
      event: (ev) => {
        if (!state) early.push(ev);
        else if (ev.seq > state.seq || ev.end) pass(ev);
      },
    });
    const ask = async (timeout: number): Promise<LiveTaskSnapshot | null> => {
      try {
        const answer = await node.broker.nc.request(node.names.snapshot, taskId, { timeout });
        const { owner, ...state } = answer.json<LiveTaskSnapshot & { owner?: string | null }>();
        return maySee(owner, who) && Number.isInteger(state.seq) ? state : null;
      } catch {
        return null; // No hub holds it live (ended meanwhile, or unknown), or none answered in time.
      }
    };
    let snap = await ask(CANCEL_ANSWER_MS);
    // A live hub that wrote the task's unfinished row last (it runs the task, holds it in its
    // queue, or handed it to the cluster's) is only slow to answer (say, just started): it is
    // asked again, since the row's reserved seq (below) is above the events it still sends.
    for (let i = 0; !snap && i < 3; i++) {
      const row = await this.rowState(node, taskId);
      const holder = row.ended ? null : row.hubId;
      if (!holder || holder === this.hubId || !(node.membership.live.has(holder) || (await node.membership.record(holder).catch(() => null)))) break;
      snap = await ask(2 * CANCEL_ANSWER_MS);
    }
    if (!snap) {
      // No hub holds it live: it may wait in the work queue, its submitting hub gone, with only
      // its `queued` row. Its events come through the relay once a hub starts it; its row is
      // read meanwhile, so that the end reaches the subscriber even if no event does.
      const row = await this.liveRowOf(taskId, who);
      if (!row) {
        following.stop();
        return null;
      }
      // Its seq is the row's reserved bound: a hub that died running it may have sent up to it,
      // and the next attempt numbers its events above it (docs/cluster.md, "Seq across attempts").
      snap = {
        seq: Math.max(Number(row.seq ?? 0), Number(row.seq_reserved ?? 0)),
        status: row.status,
        progress: row.progress,
        message: row.message,
        position: null,
      };
      this.watchRow(
        taskId,
        who,
        () => ended,
        (end) => {
          following.stop();
          if (end) pass({ seq: end.seq, text: end.text, binaries: end.binaries, end: true });
        },
      );
    } else if (!this.followedRows.has(taskId)) {
      // Held live elsewhere: its row is read once a hub dies (the holder may die between its
      // end's commit and its publish).
      this.followedRows.set(taskId, {
        who,
        isDone,
        done: (end) => {
          following.stop();
          if (end) pass({ seq: end.seq, text: end.text, binaries: end.binaries, end: true });
        },
        watched: false,
      });
    }
    const known = snap;
    // After the caller has sent the snapshot: what came meanwhile, then the rest as it comes.
    setImmediate(() => {
      for (const ev of early) if (ev.seq > known.seq || ev.end) pass(ev);
      state = known;
    });
    return known;
  }

  // ---- one view ----

  override servicesList(): ServiceListEntry[] {
    const local = super.servicesList();
    if (!this.node) return local;
    const byId = new Map(local.map((s) => [s.service_id, s]));
    for (const r of this.node.load.reports()) {
      for (const [id, s] of Object.entries(r.services)) {
        const sid = Number(id);
        if (!byId.has(sid) && s.connections > 0) byId.set(sid, { service_id: sid, service_name: this.registry.byServiceId(sid)?.name ?? s.name });
      }
    }
    return [...byId.values()].sort((a, b) => a.service_id - b.service_id);
  }

  override serviceInfo(id: number): ServiceInfo {
    const info = super.serviceInfo(id);
    for (const r of this.node?.load.reports() ?? []) {
      const s = r.services[id];
      if (!s) continue;
      info.connections = (info.connections ?? 0) + s.connections;
      info.in_flight = (info.in_flight ?? 0) + s.inFlight;
      info.queued = (info.queued ?? 0) + s.queued;
    }
    return info;
  }

  /**
   * Every other live hub's state: one request on `<cluster>.hub-state` that each hub answers,
   * gathered until every hub alive at the latest beat answered or 500 ms passed. A live hub that
   * did not answer is listed with `answered: false`. Costs nothing until the page asks.
   */
  override async peerStates(): Promise<HubState[]> {
    const node = this.node;
    if (!node?.broker.up) return [];
    const expected = new Set([...node.membership.live].filter((id) => id !== this.hubId));
    const out = new Map<string, HubState>();
    try {
      const replies = await node.broker.nc.requestMany(node.names.hubState, '', {
        strategy: 'count',
        // This hub answers too (it is subscribed like the others).
        maxMessages: expected.size + 1,
        maxWait: CANCEL_ANSWER_MS,
      });
      for await (const m of replies) {
        try {
          const st = m.json<HubState>();
          if (st.id !== this.hubId && typeof st.id === 'string') out.set(st.id, st);
        } catch {
          // Not a state (another version): left out.
        }
      }
    } catch {
      // No hub answered (alone in the cluster, or the broker went away): the live ones are listed.
    }
    for (const id of expected) {
      if (!out.has(id)) out.set(id, { id, url: null, startedAt: 0, clients: 0, running: 0, queued: 0, connections: [], answered: false });
    }
    return [...out.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  override notReadyReason(): string | null {
    if (!this.node) return 'not a member of the cluster yet';
    return this.node.broker.up ? null : 'the broker (NATS) is unreachable';
  }

  /** A report came or a hub was forgotten: new services are read, clients hear of list changes. */
  private onPeersChange(): void {
    const node = this.node;
    if (!node) return;
    for (const r of node.load.reports()) {
      for (const id of Object.keys(r.services)) {
        if (!this.registry.byServiceId(Number(id))) {
          void this.refreshRegistry();
          break;
        }
      }
    }
    const list = this.servicesList();
    const key = JSON.stringify(list);
    if (key === this.lastServices) return;
    this.lastServices = key;
    this.pushServices(list);
  }

  private refreshRegistry(): Promise<void> {
    this.refreshing ??= this.registry
      .refresh()
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not read the services table'))
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  // ---- dialed workers ----

  /** The listed worker URLs this hub may dial: those whose lease it holds or wins now. */
  async dialable(urls: string[]): Promise<string[]> {
    const node = this.node;
    if (!node) return urls;
    const out: string[] = [];
    for (const url of urls) if (await node.leases.acquire(url)) out.push(url);
    return out;
  }
}
