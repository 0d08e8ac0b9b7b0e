/**
 * Tasks waiting for a slot anywhere in the cluster (docs/cluster.md "Least loaded, wherever it
 * is"): a JetStream work-queue stream, one subject per task (`<cluster>.task.<service>.<task>`),
 * one durable pull consumer per service. A hub pulls only as many messages as its connections of
 * the service have free slots, so the stream hands a task to a hub with room at once. A message
 * is acknowledged only when its task ends; meanwhile its holder marks it in progress, and if the
 * holder dies JetStream redelivers it after `ack_wait` to another hub: re-dispatch on a hub's
 * death is the stream's redelivery, not code of ours.
 */
import { AckPolicy, DeliverPolicy, JetStreamApiError, RetentionPolicy, StorageType, type Consumer, type JsMsg } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Broker } from './broker.js';
import type { ClusterNames } from './names.js';

/** A task as it waits in the stream. */
export interface StreamTask {
  id: string;
  serviceId: number;
  args: Record<string, unknown>;
  /** Run deadline of each attempt, in ms. */
  timeoutMs: number;
  /** When its wait must end (`no_worker`), ms since the epoch. */
  queueDeadline: number;
  /** ms since the epoch. */
  createdAt: number;
  /** Attempts started before this message was published (0 for a new task). */
  attempts: number;
  /** Seq of the task's latest event when it was published. */
  seq: number;
  /** The hub that published it. */
  from: string;
  /** The client key's owner that submitted it (null: no key required). */
  owner?: string | null;
  /** Published by a survivor for a hub that died while running it: its events go on from what followers saw. */
  takeover?: boolean;
  /** The URL of its `completed` webhook: the hub that ends it commits the delivery with its end row. */
  webhook?: string | null;
}

/** A message a hub holds: its task runs there until `ack()`. */
export interface HeldTask {
  readonly task: StreamTask;
  /** How many times JetStream delivered it (1 the first time; more after a holder's death or a nak). */
  readonly deliveries: number;
  /** The task ended here: the stream forgets it. Resolves false when the stream refused (another hub holds it now). */
  ack(): Promise<boolean>;
  /** This hub cannot run it after all: the next puller gets it at once, or after `delayMs`. */
  release(delayMs?: number): void;
}

/** Options of `TaskStream.open`. */
export interface TaskStreamOptions {
  /** How long a holder may stay silent before its messages go to another hub, in ms (3 x heartbeat). */
  ackWaitMs: number;
  /** How long one pull request waits for a message, in ms (at least 1000). Default 5000. */
  pullExpiresMs?: number;
}

/** Pulls one service's waiting tasks while this hub has room for them. */
export class ServicePuller {
  private room = 0;
  private outstanding = 0;
  private closed = false;

  constructor(
    private readonly stream: TaskStream,
    private readonly consumer: Consumer,
    private readonly take: (held: HeldTask) => boolean,
    private readonly expiresMs: number,
  ) {}

  /** Free slots this hub has for the service now: that many pull requests are kept waiting. */
  setRoom(free: number): void {
    this.room = Math.max(0, free);
    this.fill();
  }

  private fill(): void {
    while (!this.closed && this.outstanding < this.room && this.stream.broker.up) {
      this.outstanding++;
      void this.pullOne();
    }
  }

  private async pullOne(): Promise<void> {
    let msg: JsMsg | null = null;
    try {
      msg = await this.consumer.next({ expires: this.expiresMs });
    } catch {
      // The broker is away or the consumer was deleted: wait a little before pulling again.
      await new Promise((r) => setTimeout(r, 500).unref());
    } finally {
      this.outstanding--;
    }
    if (msg) {
      const held = this.stream.hold(msg);
      // The hub's room may be gone since the pull was sent (a connection left): hand it on.
      if (this.closed || !held || !this.take(held)) held ? held.release() : msg.term();
    }
    this.fill();
  }

  /** Stops pulling; waiting pull requests expire on their own. */
  close(): void {
    this.closed = true;
  }
}

export class TaskStream {
  private readonly held = new Map<string, JsMsg>();
  private readonly timer: NodeJS.Timeout;

  private constructor(
    readonly broker: Broker,
    private readonly names: ClusterNames,
    private readonly options: TaskStreamOptions,
  ) {
    // In progress well before ack_wait runs out: 3 times per ack_wait.
    this.timer = setInterval(() => this.keepAlive(), Math.max(50, Math.floor(options.ackWaitMs / 3)));
    this.timer.unref();
  }

  /** Creates the stream when missing and returns its handle. */
  static async open(broker: Broker, names: ClusterNames, options: TaskStreamOptions): Promise<TaskStream> {
    const config = {
      name: names.taskStream,
      subjects: [`${names.cluster}.task.>`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
      duplicate_window: nanos(120_000),
    };
    try {
      await broker.jsm.streams.info(names.taskStream);
    } catch (err) {
      if (!(err instanceof JetStreamApiError) && !String((err as Error).message).includes('not found')) throw err;
      await broker.jsm.streams.add(config).catch(async (e: unknown) => {
        // Another hub created it meanwhile.
        await broker.jsm.streams.info(names.taskStream).catch(() => {
          throw e;
        });
      });
    }
    return new TaskStream(broker, names, options);
  }

  /**
   * Publishes a waiting task and awaits JetStream's ack (the task is then durable). The message
   * id `<task>.<attempts>` makes a retried publish (or a takeover done twice) one message.
   */
  async publish(task: StreamTask): Promise<void> {
    await this.broker.js.publish(this.names.task(task.serviceId, task.id), JSON.stringify(task), {
      msgID: `${task.id}.${task.attempts}`,
    });
  }

  /**
   * Removes a task still waiting in the stream (cancel, queue timeout). True when it was there
   * and is gone: no hub will get it. False when no message of it is left.
   */
  async remove(serviceId: number, taskId: string): Promise<boolean> {
    const m = await this.broker.jsm.streams.getMessage(this.names.taskStream, { last_by_subj: this.names.task(serviceId, taskId) }).catch(() => null);
    if (!m) return false;
    return this.broker.jsm.streams.deleteMessage(this.names.taskStream, m.seq, false).catch(() => false);
  }

  /** Whether a message of the task is in the stream (waiting, or held by a hub until its end). */
  async has(serviceId: number, taskId: string): Promise<boolean> {
    const m = await this.broker.jsm.streams.getMessage(this.names.taskStream, { last_by_subj: this.names.task(serviceId, taskId) });
    return m !== null;
  }

  /** Tasks waiting for service `serviceId` (not yet delivered to any hub). */
  async pending(serviceId: number): Promise<number> {
    const info = await this.broker.jsm.consumers.info(this.names.taskStream, this.names.taskConsumer(serviceId));
    return info.num_pending;
  }

  /** Starts pulling service `serviceId`'s tasks for `take` (false: it could not place the task). */
  async puller(serviceId: number, take: (held: HeldTask) => boolean): Promise<ServicePuller> {
    const durable = this.names.taskConsumer(serviceId);
    await this.broker.jsm.consumers
      .add(this.names.taskStream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: this.names.taskFilter(serviceId),
        ack_wait: nanos(this.options.ackWaitMs),
        max_deliver: -1,
        max_waiting: 4096,
      })
      .catch(async (err: unknown) => {
        // It exists (another hub made it, maybe with another ack_wait): use it as it is.
        await this.broker.jsm.consumers.info(this.names.taskStream, durable).catch(() => {
          throw err;
        });
      });
    const consumer = await this.broker.js.consumers.get(this.names.taskStream, durable);
    // The client refuses a pull shorter than 1 s.
    return new ServicePuller(this, consumer, take, Math.max(1000, this.options.pullExpiresMs ?? 5000));
  }

  /** Wraps a delivered message; null when it is not a task (garbage on our subject). */
  hold(msg: JsMsg): HeldTask | null {
    let task: StreamTask;
    try {
      task = msg.json<StreamTask>();
      if (typeof task.id !== 'string' || typeof task.serviceId !== 'number') return null;
    } catch {
      return null;
    }
    this.held.set(task.id, msg);
    let done = false;
    return {
      task,
      deliveries: msg.info.deliveryCount,
      ack: async () => {
        if (done) return false;
        done = true;
        this.held.delete(task.id);
        try {
          return await msg.ackAck({ timeout: 5000 });
        } catch {
          return false;
        }
      },
      release: (delayMs?: number) => {
        if (done) return;
        done = true;
        this.held.delete(task.id);
        msg.nak(delayMs);
      },
    };
  }

  /** Ids of the tasks this hub holds from the stream. */
  heldIds(): IterableIterator<string> {
    return this.held.keys();
  }

  private keepAlive(): void {
    if (!this.broker.up) return;
    for (const m of this.held.values()) m.working();
  }

  /** Stops the in-progress marks: held messages go back to the stream after `ack_wait`. */
  close(): void {
    clearInterval(this.timer);
  }
}
