/**
 * Between the hub and the `tasks` table: turns live tasks and ended tasks into rows for the
 * batched TaskStore (never awaited per message: a save may name a callback for its commit), and
 * rows back into ended tasks after a restart or once they fell out of the in-memory cache.
 */
import { resolveRefs, type ClientResultMsg } from '@utils-hub/protocol';
import type { HubConfig } from '../config.js';
import type { TaskRecord } from './dispatcher.js';
import type { EndedTask } from './ended-tasks.js';
import { clientFrame } from './frames.js';
import { endedTaskView } from './hub.js';
import { deliveryRow } from './webhook-rows.js';
import {
  attachmentPieces,
  queuedTaskRow,
  unpackAttachments,
  type DeliveryRow,
  type StoredCallback,
  type StoredTaskRow,
  type TaskStore,
  type TaskRow,
} from '../store/tasks.js';

/**
 * A stored result with its `{"$attachment": k, ...}` refs replaced by `{...rest, data}`, on a
 * copy: the row may be the store's own unsaved one. The refs were written by the hub from a
 * message the codec had resolved, so they name the stored media; a problem leaves the rest as it
 * is (a result relayed without attachments may hold a literal `$attachment`: there is no media).
 */
function withMedia(result: unknown, buffers: readonly Uint8Array[]): unknown {
  if (result === undefined || result === null || typeof result !== 'object') return result;
  const message = { result: JSON.parse(JSON.stringify(result)) as unknown };
  resolveRefs(message, buffers, 1);
  return message.result;
}

export class TaskPersistence {
  constructor(
    private readonly tasks: TaskStore,
    private readonly config: Readonly<HubConfig>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Records a queued or running task (coalesced; written with the next batch). `onStored` is
   * called once a row of this task at least this recent is committed (see `TaskStore.save`);
   * `owner`: the client key it belongs to; `seqReserved`: cluster mode, the highest `seq` the hub
   * may send for it (docs/cluster.md, "Seq across attempts").
   */
  saveLive(t: TaskRecord<unknown>, onStored?: StoredCallback, owner: string | null = null, webhook: string | null = null, seqReserved?: number): void {
    this.tasks.save(
      {
        id: t.id,
        service_id: t.serviceId,
        status: t.status,
        attempts: t.attempt,
        seq: t.seq,
        progress: t.progress,
        message: t.message,
        error: null,
        attachments: null,
        created_at: t.createdAt,
        started_at: t.startedAt,
        finished_at: null,
        owner,
        webhook,
        seq_reserved: seqReserved,
      },
      onStored,
    );
  }

  /**
   * Writes the `queued` row of a task that waits elsewhere (the cluster's work queue) now, unless
   * its row exists already: the hub that runs it writes the later ones, and they stay whatever
   * order the writes land in (`TaskStore.insertIfAbsent`).
   */
  insertQueued(t: { id: string; serviceId: number; createdAt: number; owner: string | null; webhook?: string | null }): Promise<void> {
    return this.tasks.insertIfAbsent(queuedTaskRow(t.id, t.serviceId, t.createdAt, t.owner, t.webhook ?? null));
  }

  /**
   * Records an ended task with its result and media (the bytes as a blob, never base64).
   * `onStored` is called once that end is committed (see `TaskStore.save`); `outbox`: webhook
   * deliveries committed in the same transaction.
   */
  saveEnded(t: EndedTask, onStored?: StoredCallback, outbox?: readonly DeliveryRow[]): void {
    let result: unknown;
    let attachments: TaskRow['attachments'] = null;
    if (t.status === 'succeeded') {
      if (t.binaries?.length) {
        // The end event's text holds the result with `$attachment` refs: the stored form.
        result = (JSON.parse(t.text) as { result?: unknown }).result ?? null;
        attachments = attachmentPieces(t.binaries); // joined by the store when written
      } else {
        // Without media the result as parsed is already the stored form: no second parse.
        result = t.result ?? null;
      }
    }
    this.tasks.save(
      {
        id: t.id,
        service_id: t.serviceId,
        status: t.status,
        attempts: t.attempts,
        seq: t.seq,
        progress: t.progress,
        message: t.message,
        error: t.error ?? null,
        result,
        attachments,
        created_at: t.createdAt,
        started_at: t.startedAt,
        finished_at: t.finishedAt,
        owner: t.owner ?? null,
      },
      onStored,
      outbox,
    );
  }

  /** Writes webhook deliveries with the next batch (see `TaskStore.saveDeliveries`). */
  saveDeliveries(rows: readonly DeliveryRow[]): void {
    this.tasks.saveDeliveries(rows);
  }

  /** The ended task of a stored row, unless it is unfinished, unknown or expired. */
  async get(id: string): Promise<EndedTask | null> {
    if (id.length > 64) return null;
    const row = await this.tasks.get(id);
    if (!row || row.finished_at === null || !['succeeded', 'failed', 'canceled'].includes(row.status)) return null;
    if (row.finished_at + this.config.resultTtlMs < this.now()) return null;
    return fromRow(row);
  }

  /**
   * At start: every task a previous run left unfinished ends `failed` `interrupted`; the `completed`
   * webhook of each that asked for one is written in the same transaction, from the view
   * `GET /tasks/{id}` shows of its end.
   */
  markInterrupted(): Promise<number> {
    const now = this.now();
    return this.tasks.markInterrupted(now, undefined, (row, url) => deliveryRow(row.id, url, 'completed', endedTaskView(fromRow(row)), now));
  }

  /** Deletes ended tasks older than `HUB_RESULT_TTL_MS`. */
  purge(): Promise<number> {
    return this.tasks.purgeEnded(this.now() - this.config.resultTtlMs);
  }

  /** See `TaskStore.watchBacklog`. */
  watchBacklog(watcher: (backlogged: boolean) => void): void {
    this.tasks.watchBacklog(watcher);
  }

  flush(): Promise<void> {
    return this.tasks.flush();
  }

  close(): Promise<void> {
    return this.tasks.close();
  }
}

function fromRow(row: StoredTaskRow): EndedTask {
  const status = row.status as EndedTask['status'];
  // An interrupted task's end was written at restart without an event: it comes after the last one.
  const seq = row.error?.code === 'interrupted' ? (row.seq ?? 0) + 1 : (row.seq ?? 1);
  const base = {
    id: row.id,
    serviceId: row.service_id,
    status,
    seq,
    progress: row.progress,
    message: row.message,
    attempts: row.attempts,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at as number,
    owner: row.owner ?? null,
  };
  if (status === 'succeeded') {
    const binaries = row.attachments ? unpackAttachments(row.attachments) : [];
    const msg: ClientResultMsg = { type: 'result', task_id: row.id, seq, result: row.result };
    if (binaries.length) msg.attachments = binaries.length;
    return { ...base, text: clientFrame(msg), binaries: binaries.length ? binaries : null, result: withMedia(row.result, binaries) };
  }
  const error = (row.error ?? { code: 'internal', message: 'unknown error' }) as EndedTask['error'] & object;
  const text = status === 'canceled' ? clientFrame({ type: 'canceled', task_id: row.id, seq }) : clientFrame({ type: 'failed', task_id: row.id, seq, error });
  return { ...base, text, binaries: null, error };
}
