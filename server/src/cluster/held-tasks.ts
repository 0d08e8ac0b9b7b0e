/**
 * The tasks a hub runs on its own workers without the work queue (docs/cluster.md "A hub may
 * die"): each is a message `<cluster>.held.<hub>.<task>` in a JetStream stream while it lives,
 * deleted at its end. When a hub dies, the survivor that wins its takeover (a KV `create`,
 * exclusive) reads the dead hub's messages, hands each task to the work queue as a new attempt,
 * and purges them. What survives the hub is JetStream's; who takes over is KV's.
 */
import { RetentionPolicy, StorageType } from '@nats-io/jetstream';
import type { Broker } from './broker.js';
import type { ClusterNames } from './names.js';
import type { StreamTask } from './task-stream.js';

export class HeldTasks {
  private constructor(
    private readonly broker: Broker,
    private readonly names: ClusterNames,
  ) {}

  /** Creates the stream when missing. */
  static async open(broker: Broker, names: ClusterNames): Promise<HeldTasks> {
    try {
      await broker.jsm.streams.info(names.heldStream);
    } catch {
      await broker.jsm.streams
        .add({ name: names.heldStream, subjects: [`${names.cluster}.held.>`], retention: RetentionPolicy.Limits, storage: StorageType.File })
        .catch(async (err: unknown) => {
          await broker.jsm.streams.info(names.heldStream).catch(() => {
            throw err;
          });
        });
    }
    return new HeldTasks(broker, names);
  }

  /** Records a task hub `hubId` runs; resolves with its message's sequence (for `forget`). */
  async record(hubId: string, task: StreamTask): Promise<number> {
    const ack = await this.broker.js.publish(this.names.held(hubId, task.id), JSON.stringify(task));
    return ack.seq;
  }

  /** Whether hub `hubId` has a record of the task (null from the server means none; other errors throw). */
  async has(hubId: string, taskId: string): Promise<boolean> {
    const m = await this.broker.jsm.streams.getMessage(this.names.heldStream, { last_by_subj: this.names.held(hubId, taskId) });
    return m !== null;
  }

  /** The task ended: its record goes. Failures are ignored (a takeover then finds its row ended). */
  forget(seq: number): void {
    void this.broker.jsm.streams.deleteMessage(this.names.heldStream, seq, false).catch(() => undefined);
  }

  /** Ids of the hubs that have recorded tasks. */
  async hubs(): Promise<string[]> {
    const info = await this.broker.jsm.streams.info(this.names.heldStream, { subjects_filter: `${this.names.cluster}.held.>` });
    const out = new Set<string>();
    for (const subject of Object.keys(info.state.subjects ?? {})) out.add(subject.split('.')[2]);
    return [...out];
  }

  /** Every task hub `hubId` recorded, then purged once `each` has handled them all. */
  async drain(hubId: string, each: (task: StreamTask) => Promise<void>): Promise<number> {
    const filter = this.names.heldFilter(hubId);
    const info = await this.broker.jsm.streams.info(this.names.heldStream, { subjects_filter: filter });
    let n = 0;
    for (const subject of Object.keys(info.state.subjects ?? {})) {
      const m = await this.broker.jsm.streams.getMessage(this.names.heldStream, { last_by_subj: subject }).catch(() => null);
      if (!m) continue;
      await each(m.json<StreamTask>());
      n++;
    }
    await this.broker.jsm.streams.purge(this.names.heldStream, { filter });
    return n;
  }
}
