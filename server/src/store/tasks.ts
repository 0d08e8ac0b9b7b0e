/**
 * The `tasks` table, written through a write-behind buffer: the hub saves a task's state at each
 * event without waiting, and the store writes the latest state of each task in batches of one
 * statement each (docs/protocol.md section 8: an ended task stays readable across a restart).
 *
 * The parts: task-rows.ts (row checks and conversion), task-sql.ts (the upsert and where it
 * runs), write-behind.ts (the buffer, its retries and backlog), bad-rows.ts (a refused row is
 * isolated and dropped), task-media.ts (media files on SQLite).
 */
import type { Knex } from 'knex';
import { refusedByAnsweringDb, writeIsolatingBadRows } from './bad-rows.js';
import { readMediaFile, removeMediaFiles } from './task-media.js';
import {
  ENDED_STATUSES,
  fromColumns,
  heldBy,
  joined,
  toColumns,
  type RawTaskColumns,
  type StoredTaskRow,
  type TaskColumns,
  type TaskRow,
} from './task-rows.js';
import { SQLITE_MAX_BATCH, STATEMENT_OVERHEAD, TaskUpserts, sqlSizeOf, sqlStringLength, type TaskWrite } from './task-sql.js';
import { WriteBehind, type WriteBehindOptions, type WrittenCallback } from './write-behind.js';
import type { ClaimOutcome, IdempotencyRow } from './idempotency-keys.js';
import type { DeliveryUpdate, HolderValues } from './unit-sql.js';
import { truncatedBody, type DeliveryRow } from './webhook-deliveries.js';

/**
 * Called once a saved row is committed (`dropped: false`), or once the store gave it up
 * (`dropped: true`: the database refused it on its own, see `TaskStoreOptions.onError`). A row
 * replaced by a newer save of the same task before it was written passes its callbacks on to
 * the newer one: they are called, in order, when that is committed.
 */
export type StoredCallback = WrittenCallback;

export { attachmentPieces, packAttachments, unpackAttachments } from './attachments.js';
export { ENDED_STATUSES, MAX_TASK_ID_LENGTH, queuedTaskRow, type StoredTaskRow, type TaskErrorValue, type TaskRow } from './task-rows.js';
export type { DeliveryRow } from './webhook-deliveries.js';
export type { DeliveryUpdate } from './unit-sql.js';

/** Options of a {@link TaskStore}. */
export interface TaskStoreOptions {
  /** Most rows per statement. Default 500, which is also SQLite's cap (its compound-select limit). */
  batchSize?: number;
  /**
   * Bound of the data in one statement, in bytes (media count twice: they travel as hex); a larger
   * row goes alone. Default 4 MiB. On MySQL, also bounded by the server's `max_allowed_packet`;
   * a single row over that cannot be written at all and is dropped (and reported).
   */
  maxBatchBytes?: number;
  /**
   * How long a saved row may wait for its batch, in ms. Default 50. With 0 (group commit), a
   * write starts as soon as the event loop has taken in what arrived with the row, and the rows
   * saved while a write runs go together in the next one.
   */
  flushDelayMs?: number;
  /** Ceiling of the first delay before retrying a failed write, in ms; it doubles up to `retryMaxMs`, each delay drawn in the upper half of its ceiling (backoffDelay). Default 100. */
  retryMinMs?: number;
  /** Longest delay between retries, in ms. Default 5000. */
  retryMaxMs?: number;
  /** How long `close()` keeps retrying a failing write before giving up, in ms. Default 5000. */
  closeTimeoutMs?: number;
  /**
   * Bytes of rows not yet written (their media, result, error and message) above which the store
   * says it is backlogged (see `watchBacklog`); it says it caught up at half of that. Default
   * 64 MiB.
   */
  backlogBytes?: number;
  /**
   * Called when a write fails, with the ids of its tasks. `dropped: false`: the rows are kept
   * and retried. `dropped: true`: the database, while answering, refused these rows on their own
   * (twice when other rows of their batch went through, three times when alone; say, a row over
   * MySQL's `max_allowed_packet`), so they were given up rather than let them fail every write.
   */
  onError?: (err: Error, info: { ids: string[]; dropped: boolean }) => void;
  /**
   * Largest body of a webhook delivery, in bytes (UTF-8). A larger one is cut down as it is
   * written (`truncatedBody`: the result left out, `"truncated": true`, `task_url`), so that a
   * delivery never keeps the rows committed with it (a task's end) from being written. On MySQL
   * the bound is also kept under `max_allowed_packet`. Default 1 MiB.
   */
  maxDeliveryBytes?: number;
  /** Where a truncated delivery body says the task is read (`task_url`). Default `/tasks/{id}`. */
  taskUrl?: (taskId: string) => string;
  /**
   * Cluster mode: the hub's id, written in the `hub_id` column of every task row this store
   * writes (docs/cluster.md, "A hub may die"). Default null: none is written.
   */
  hubId?: string | null;
}

const DEFAULTS: Readonly<WriteBehindOptions> = Object.freeze({
  batchSize: 500,
  maxBatchBytes: 4 * 1024 * 1024,
  flushDelayMs: 50,
  retryMinMs: 100,
  retryMaxMs: 5000,
  closeTimeoutMs: 5000,
  backlogBytes: 64 * 1024 * 1024,
});

/** Default of `TaskStoreOptions.maxDeliveryBytes`: 1 MiB. */
export const MAX_DELIVERY_BYTES = 1_048_576;

/**
 * Room kept in a MySQL statement of one outbox row besides its body: the statement's head, the
 * URL (2048 characters, escaped) and the other columns.
 */
const DELIVERY_ROW_ROOM = 32 * 1024;

/** Longest an outcome of a webhook try waits for a write of other rows before it is written alone, in ms. */
const OUTCOME_DELAY_MS = 100;

/**
 * What waits in the buffer: a task's row (keyed by the task id), a key's claim with its task's
 * queued row, outbox rows alone, or a try's outcome (keyed by ids that start with a NUL, which
 * no task id holds). Everything taken into one batch is committed in one transaction.
 */
interface Pending {
  /** The task id; `\0k`, `\0o`, `\0u`, `\0l` + an id for a claim, outbox rows, an outcome, a lease. */
  id: string;
  /** The task's row (a claim's: written only if the claim wins); null for outbox rows or an outcome. */
  row: TaskRow | null;
  columns: TaskColumns | null;
  /** A key's claim: its row, the time before which a holder has expired, and (once written) its holder. */
  claim: { key: IdempotencyRow; expiredBefore: number; holder?: HolderValues | null } | null;
  /** Webhook outbox rows committed with this entry. */
  outbox: DeliveryRow[] | null;
  /** A webhook try's outcome. */
  update: DeliveryUpdate | null;
  /** A lease of due deliveries (`[now, limit, until, skip]`) and, once written, the rows it took. */
  lease?: { args: [number, number, number, readonly string[]]; rows?: DeliveryRow[] };
  /** Rough size of the row in a statement. */
  bytes: number;
  /** Bytes it holds in memory: media, result, error, message. */
  held: number;
  /** Times the database refused this row written alone while it answered otherwise. */
  refusals: number;
}

/** Bytes of outbox rows held in memory. */
function outboxBytes(rows: readonly DeliveryRow[] | null | undefined): number {
  let n = 0;
  if (rows) for (const r of rows) n += r.body.length + r.url.length;
  return n;
}

function errorOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Write-behind store of tasks. `save()` returns at once; the latest row of each task is written
 * within `flushDelayMs`, or as soon as `batchSize` rows wait, in one INSERT … ON CONFLICT /
 * ON DUPLICATE KEY UPDATE statement per batch. A failed write keeps its rows (a newer save of the
 * same task wins) and is retried with jittered exponential backoff.
 */
export class TaskStore {
  readonly #db: Knex;
  readonly #onError: TaskStoreOptions['onError'];
  readonly #sql: TaskUpserts;
  readonly #buffer: WriteBehind<Pending>;
  readonly #outboxWatchers: Array<() => void> = [];
  /** Leases asked for so far (each its own entry). */
  #leases = 0;
  #closing: Promise<void> | null = null;
  /** See `TaskStoreOptions.hubId`. */
  readonly #hubId: string | null;

  readonly #maxDeliveryBytes: number;
  readonly #taskUrl: (taskId: string) => string;

  constructor(db: Knex, options: TaskStoreOptions = {}) {
    const { onError, maxDeliveryBytes, taskUrl, hubId, ...rest } = options;
    if (maxDeliveryBytes !== undefined && (!Number.isSafeInteger(maxDeliveryBytes) || maxDeliveryBytes < 1024)) {
      throw new Error(`TaskStore: option "maxDeliveryBytes" must be an integer of at least 1024, got ${String(maxDeliveryBytes)}`);
    }
    this.#maxDeliveryBytes = maxDeliveryBytes ?? MAX_DELIVERY_BYTES;
    this.#taskUrl = taskUrl ?? ((id) => `/tasks/${id}`);
    const opts: WriteBehindOptions = { ...DEFAULTS };
    for (const [key, value] of Object.entries(rest)) {
      if (!(key in DEFAULTS)) throw new Error(`TaskStore: unknown option "${key}"`);
      if (value === undefined) continue;
      if (!Number.isSafeInteger(value) || (value as number) < (key === 'flushDelayMs' ? 0 : 1)) {
        throw new Error(`TaskStore: option "${key}" must be a ${key === 'flushDelayMs' ? 'non-negative' : 'positive'} integer, got ${String(value)}`);
      }
      opts[key as keyof WriteBehindOptions] = value as number;
    }
    this.#db = db;
    this.#onError = onError;
    this.#hubId = hubId ?? null;
    this.#sql = new TaskUpserts(db);
    if (!this.#sql.mysql) opts.batchSize = Math.min(opts.batchSize, SQLITE_MAX_BATCH);
    const sql = this.#sql;
    this.#buffer = new WriteBehind<Pending>(Object.freeze(opts), {
      prepare: () => sql.readPacketLimit(),
      maxEntryBytes: () => (sql.packetLimit === null ? null : sql.packetLimit - STATEMENT_OVERHEAD),
      oversize: (rows) =>
        new Error(
          `task rows of ${rows.map((p) => p.bytes).join(', ')} bytes cannot be written: MySQL's max_allowed_packet is ${sql.packetLimit} bytes (media count twice, as hex)`,
        ),
      write: (batch) =>
        writeIsolatingBadRows(batch, {
          insert: (entries) => this.#write(entries),
          refused: (err) => refusedByAnsweringDb(db, 'tasks', err),
          drop: (err, rows) => this.#report(err, rows, true),
        }),
      report: (err, rows, dropped) => this.#report(err, rows, dropped),
      supersede: (older, newer) => {
        if (older.outbox) newer.outbox = newer.outbox ? [...older.outbox, ...newer.outbox] : older.outbox;
      },
    });
  }

  /** Commits entries in one transaction; records each claim's holder on its entry; tells the outbox's watchers. */
  async #write(entries: Pending[]): Promise<void> {
    const w: TaskWrite = { rows: [], claims: [], outbox: [], updates: [], leases: [] };
    const claims: Pending[] = [];
    const leases: Pending[] = [];
    for (const p of entries) {
      if (p.claim) {
        claims.push(p);
        (w.claims as TaskWrite['claims'][number][]).push({ key: p.claim.key, expiredBefore: p.claim.expiredBefore, row: p.columns! });
      } else if (p.columns) w.rows.push(p.columns);
      if (p.outbox) for (const r of p.outbox) (w.outbox as DeliveryRow[]).push(this.#bounded(r));
      if (p.update) (w.updates as DeliveryUpdate[]).push(p.update);
      if (p.lease) {
        leases.push(p);
        w.leases.push(p.lease.args);
      }
    }
    const { holders, leased } = await this.#sql.write(w);
    for (let i = 0; i < claims.length; i++) claims[i].claim!.holder = holders[i];
    for (let i = 0; i < leases.length; i++) leases[i].lease!.rows = leased[i];
    if (w.outbox.length > 0) {
      for (const watcher of this.#outboxWatchers) {
        try {
          watcher();
        } catch {
          // A faulty watcher must not break the store.
        }
      }
    }
  }

  /**
   * The outbox row as it may be written: its body cut down (`truncatedBody`) when it is over
   * `maxDeliveryBytes` or, on MySQL, would make a statement over `max_allowed_packet`. A body a
   * third of the bound or less (in UTF-16 units; a unit is at most 3 bytes of UTF-8, 6 escaped)
   * is not measured.
   */
  #bounded(r: DeliveryRow): DeliveryRow {
    const max = this.#maxDeliveryBytes;
    const packet = this.#sql.packetLimit;
    const sqlMax = packet === null ? Number.POSITIVE_INFINITY : packet - STATEMENT_OVERHEAD - DELIVERY_ROW_ROOM;
    const fits = (body: string) => Buffer.byteLength(body, 'utf8') <= max && (packet === null || sqlStringLength(body) <= sqlMax);
    if (3 * r.body.length <= max && 6 * r.body.length <= sqlMax) return r;
    if (fits(r.body)) return r;
    return { ...r, body: truncatedBody(r, this.#taskUrl, fits) };
  }

  /** Rows saved and not yet written. */
  get pendingCount(): number {
    return this.#buffer.count;
  }

  /**
   * Since when (ms since the epoch) every write has failed, its rows kept for a retry; null while
   * writes go through. A row dropped after repeated refusals does not count: the others went.
   */
  get failingSince(): number | null {
    return this.#buffer.failingSince;
  }

  /** Bytes held by the rows saved and not yet written (media, result, error, message). */
  get pendingBytes(): number {
    return this.#buffer.heldBytes;
  }

  /**
   * Calls `watcher(true)` when the rows waiting to be written pass `backlogBytes` (the database
   * writes slower than tasks end: say, megabytes of media per task on a slow disk), and
   * `watcher(false)` once they are down to half of it. The hub stops reading from its workers
   * meanwhile, so that results wait in their sockets rather than in its memory.
   */
  watchBacklog(watcher: (backlogged: boolean) => void): void {
    this.#buffer.watchBacklog(watcher);
  }

  /**
   * Records the latest state of a task, to be written soon; earlier unsaved states of the same
   * task are replaced. Throws TypeError for a row the table cannot hold (and after `close()`).
   * The row is kept as given, not copied (a copy per save was garbage on the hot path): leave it,
   * its buffers and its JSON values unchanged once saved. `onStored`
   * is called once the row is committed (see {@link StoredCallback}); while the database fails,
   * not before it answers again.
   */
  save(row: TaskRow, onStored?: StoredCallback, outbox?: readonly DeliveryRow[]): void {
    if (this.#closing) throw new Error('TaskStore.save: the store is closed');
    const columns = toColumns(row);
    columns.hub_id ??= this.#hubId;
    const rows = outbox?.length ? [...outbox] : null;
    this.#buffer.put(
      { id: row.id, row, columns, claim: null, outbox: rows, update: null, bytes: sqlSizeOf(columns), held: heldBy(columns) + outboxBytes(rows), refusals: 0 },
      onStored,
    );
  }

  /**
   * Claims an idempotency key for `row`'s task (docs/protocol.md section 12) in the next write,
   * written at once: the key is inserted unless held, a holder older than `expiredBefore` (ms
   * since the epoch) is taken over, and only a claim that wins has `row` (the task's queued
   * row) written, in the same transaction as the key. Resolves `{won: true}`, or with the
   * holder's row; rejects when the store gives the claim up (or is closed).
   */
  claim(key: IdempotencyRow, row: TaskRow, expiredBefore: number): Promise<ClaimOutcome> {
    if (this.#closing) return Promise.reject(new Error('TaskStore.claim: the store is closed'));
    let columns: TaskColumns;
    try {
      columns = toColumns(row);
    } catch (err) {
      return Promise.reject(err);
    }
    columns.hub_id ??= this.#hubId;
    const entry: Pending = {
      id: `\u0000k${row.id}`,
      row,
      columns,
      claim: { key, expiredBefore },
      outbox: null,
      update: null,
      bytes: sqlSizeOf(columns) + key.key.length + 256,
      held: 0,
      refusals: 0,
    };
    return new Promise((resolve, reject) => {
      this.#buffer.put(
        entry,
        (dropped) => {
          const holder = entry.claim!.holder;
          if (dropped || holder === undefined) reject(new Error('the idempotency key could not be stored'));
          else if (holder === null) resolve({ won: true });
          else
            resolve({
              won: false,
              row: { scope: key.scope, key: key.key, task_id: holder[0], service_id: holder[1], args_hash: holder[2], created_at: holder[3] },
            });
        },
        0,
      );
    });
  }

  /** Writes webhook outbox rows with the next batch (rows due with a task's row go by `save`). */
  saveDeliveries(rows: readonly DeliveryRow[]): void {
    if (this.#closing) throw new Error('TaskStore.saveDeliveries: the store is closed');
    if (rows.length === 0) return;
    const held = outboxBytes(rows);
    this.#buffer.put({ id: `\u0000o${rows[0].id}`, row: null, columns: null, claim: null, outbox: [...rows], update: null, bytes: held, held, refusals: 0 });
  }

  /** Writes a webhook try's outcome with the next batch; a newer outcome of the same delivery replaces it. */
  recordDelivery(update: DeliveryUpdate): void {
    if (this.#closing) throw new Error('TaskStore.recordDelivery: the store is closed');
    const bytes = 256 + (update.last_error?.length ?? 0);
    // Not worth a write of its own: it goes with the next one, or within OUTCOME_DELAY_MS.
    this.#buffer.put(
      { id: `\u0000u${update.id}`, row: null, columns: null, claim: null, outbox: null, update, bytes, held: 0, refusals: 0 },
      undefined,
      OUTCOME_DELAY_MS,
    );
  }

  /** Calls `watcher` after each write that committed outbox rows (the webhook sender looks for due rows). */
  watchOutbox(watcher: () => void): void {
    this.#outboxWatchers.push(watcher);
  }

  /**
   * Leases up to `limit` webhook deliveries due at `now`, leaving out `skip` (ids in flight here),
   * until `until`, each by a conditional update: with the next write (at once, or with the write
   * running now), in its transaction, so that a lease costs no message to the writer thread of
   * its own. Resolves with the rows taken (none if the store gave the lease up).
   */
  leaseDeliveries(now: number, limit: number, until: number, skip: readonly string[]): Promise<DeliveryRow[]> {
    if (this.#closing) return Promise.reject(new Error('TaskStore.leaseDeliveries: the store is closed'));
    const entry: Pending = {
      id: `\u0000l${++this.#leases}`,
      row: null,
      columns: null,
      claim: null,
      outbox: null,
      update: null,
      lease: { args: [now, limit, until, [...skip]] },
      bytes: 256 + 64 * skip.length,
      held: 0,
      refusals: 0,
    };
    return new Promise((resolve) => this.#buffer.put(entry, (dropped) => resolve(dropped ? [] : (entry.lease!.rows ?? [])), 0));
  }

  /**
   * Writes the first row of a task now, unless the table has a row of it already (INSERT … ON
   * CONFLICT DO NOTHING / INSERT IGNORE), outside the write-behind batches. For a task whose
   * later rows another process writes (cluster mode: the submitting hub writes `queued`, the hub
   * that runs it writes `running` and the end): whichever order the two writes land in, the
   * later state stays. Rejects when the database refuses the row.
   */
  async insertIfAbsent(row: TaskRow): Promise<void> {
    if (this.#closing) throw new Error('TaskStore.insertIfAbsent: the store is closed');
    await this.#db('tasks')
      .insert({ ...toColumns({ ...row, attachments: null }), hub_id: row.hub_id ?? this.#hubId })
      .onConflict('id')
      .ignore();
  }

  /** The task's latest state: an unsaved one first, else the table's. Null when unknown. */
  async get(id: string): Promise<StoredTaskRow | null> {
    const p = this.#buffer.peek(id);
    if (p?.row && !p.claim) return { ...p.row, attachments: p.row.attachments === null ? null : joined(p.row.attachments) };
    const raw = (await this.#db('tasks').where({ id }).first()) as RawTaskColumns | undefined;
    if (!raw) return null;
    const row = fromColumns(raw);
    const dir = this.#sql.mediaDir;
    // A file gone (deleted by hand) reads as no media: the result keeps its references.
    if (raw.media_file !== null && dir !== null) row.attachments = await readMediaFile(dir, raw.media_file);
    return row;
  }

  /**
   * Writes every row saved so far, now. Rejects when a write fails; the rows are then kept and
   * retried in the background.
   */
  async flush(): Promise<void> {
    await this.#buffer.flush();
  }

  /**
   * Ends every task left `queued` or `running` (by a hub that stopped or crashed) as `failed` with
   * `{code: "interrupted", message}`, finished at `now`. Returns how many. Run at start. With
   * `completed`, each such task that has a `webhook` on its row gets the outbox row
   * `completed(row, url)` makes of its ended row, in the same transaction as its end.
   */
  async markInterrupted(
    now: number = Date.now(),
    message = 'the hub stopped while the task was unfinished',
    completed?: (row: StoredTaskRow, url: string) => DeliveryRow,
  ): Promise<number> {
    await this.flush();
    await this.#sql.readPacketLimit();
    const error = { code: 'interrupted', message };
    // The statuses as literals, not bound values: SQLite uses its partial index of the unfinished
    // tasks (migration 006) only for a condition it can see implies the index's own.
    const unfinished = (q: Knex) => q('tasks').whereRaw("`status` in ('queued', 'running')");
    return await this.#db.transaction(async (trx) => {
      const outbox: DeliveryRow[] = [];
      if (completed) {
        const hooked = (await unfinished(trx)
          .whereNotNull('webhook')
          .select('id', 'service_id', 'status', 'attempts', 'seq', 'progress', 'message', 'created_at', 'started_at', 'owner', 'webhook')) as Array<
          Pick<RawTaskColumns, 'id' | 'service_id' | 'status' | 'attempts' | 'seq' | 'progress' | 'message' | 'created_at' | 'started_at' | 'owner' | 'webhook'>
        >;
        for (const r of hooked) {
          const ended = fromColumns({
            ...r,
            status: 'failed',
            error: JSON.stringify(error),
            result: null,
            attachments: null,
            media_file: null,
            finished_at: now,
            hub_id: null,
          });
          outbox.push(completed(ended, r.webhook!));
        }
      }
      const n = await unfinished(trx).update({ status: 'failed', error: JSON.stringify(error), finished_at: now });
      // Each body within its bound; at most 100 rows or about 1 MiB of bodies per statement.
      const rows = outbox.map((r) => this.#bounded(r));
      for (let i = 0; i < rows.length; ) {
        let j = i;
        let bytes = 0;
        while (j < rows.length && j - i < 100 && (j === i || bytes + 3 * rows[j].body.length < 1 << 20)) bytes += 3 * rows[j++].body.length;
        await trx('webhook_deliveries').insert(rows.slice(i, j));
        i = j;
      }
      return n;
    });
  }

  /** Deletes the ended tasks that finished before `before` (ms since the epoch). Returns how many. */
  async purgeEnded(before: number): Promise<number> {
    await this.flush();
    const expired = () => this.#db('tasks').whereIn('status', ENDED_STATUSES).where('finished_at', '<', before);
    const dir = this.#sql.mediaDir;
    const files = dir !== null ? ((await expired().whereNotNull('media_file').pluck('media_file')) as string[]) : [];
    const deleted = await expired().delete();
    if (dir !== null) await removeMediaFiles(dir, files);
    return deleted;
  }

  /**
   * Writes what is pending, retrying for up to `closeTimeoutMs`, then stops the timers. Rejects
   * when rows could not be written. Safe to call twice: returns the same promise. Does not close
   * the database.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    try {
      await this.#buffer.close();
    } catch (err) {
      throw new Error(`TaskStore.close: ${this.pendingCount} task rows not saved: ${errorOf(err).message}`, { cause: err });
    } finally {
      await this.#sql.close();
    }
  }

  #report(err: unknown, rows: Pending[], dropped: boolean): void {
    if (dropped) this.#buffer.settle(rows, true);
    if (!this.#onError) return;
    try {
      this.#onError(errorOf(err), { ids: rows.map((p) => p.id), dropped });
    } catch {
      // A faulty listener must not break the store.
    }
  }
}
