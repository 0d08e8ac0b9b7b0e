/**
 * The `tasks` table, written through a write-behind buffer: the hub saves a task's state at each
 * event without waiting, and the store writes the latest state of each task in batches of one
 * statement each (PROTOCOL.md section 5.2: an ended task stays readable across a restart).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { TASK_STATUSES, type TaskStatus } from '@utils-hub/protocol';
import { isMysql } from '../db/open.js';
import { MysqlWriter, type MysqlConnection } from './mysql-writer.js';
import { SqliteWriter, WRITER_STOPPED, type WriterFile } from './sqlite-writer.js';

/** The part of a better-sqlite3 connection the store uses. */
interface SqliteConnection {
  prepare(sql: string): { run(bindings: readonly unknown[]): unknown };
}

export { attachmentPieces, packAttachments, unpackAttachments } from './attachments.js';

/** The statuses after which a task never changes. */
export const ENDED_STATUSES: readonly TaskStatus[] = Object.freeze(['succeeded', 'failed', 'canceled'] as const);

/** Longest task id the table holds. */
export const MAX_TASK_ID_LENGTH = 32;

/** The error of a failed task, as the wire carries it: `{code, message, ...details}`. */
export interface TaskErrorValue {
  code: string;
  message: string;
  [detail: string]: unknown;
}

/**
 * A task as stored: the columns of `tasks`. Times in ms since the epoch. The store serialises
 * `error` and `result` as JSON; `attachments` holds the result's media bytes packed with
 * `packAttachments`, or the pieces of that blob from `attachmentPieces`, joined only when written
 * (the result refers to them as `{"$attachment": k, "mime", "name"}`).
 */
export interface TaskRow {
  id: string;
  service_id: number;
  status: TaskStatus;
  /** Attempts started so far. */
  attempts: number;
  /** Seq of the task's latest event (its end event's, once ended); `undefined` when not given. */
  seq?: number;
  /** 0 to 1, or null before any progress. */
  progress: number | null;
  message: string | null;
  error: TaskErrorValue | null;
  /** Any JSON value; `undefined` when there is no result (a JSON `null` result stays `null`). */
  result?: unknown;
  attachments: Buffer | readonly Uint8Array[] | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

/** A task as read back: its media as one blob. */
export type StoredTaskRow = TaskRow & { attachments: Buffer | null };

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
  /** How long a saved row may wait for its batch, in ms. Default 50. */
  flushDelayMs?: number;
  /** First delay before retrying a failed write, in ms; it doubles up to `retryMaxMs`. Default 100. */
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
}

type NumericOptions = Required<Omit<TaskStoreOptions, 'onError'>>;

const DEFAULTS: Readonly<NumericOptions> = Object.freeze({
  batchSize: 500,
  maxBatchBytes: 4 * 1024 * 1024,
  flushDelayMs: 50,
  retryMinMs: 100,
  retryMaxMs: 5000,
  closeTimeoutMs: 5000,
  backlogBytes: 64 * 1024 * 1024,
});

/** SQLite refuses an INSERT of more rows than this (knex writes it as a compound SELECT). */
const SQLITE_MAX_BATCH = 500;

/** The row as the database takes it. */
interface TaskRecord {
  id: string;
  service_id: number;
  status: string;
  attempts: number;
  seq: number | null;
  progress: number | null;
  message: string | null;
  error: string | null;
  result: string | null;
  /** The blob, or its pieces to join when written. */
  attachments: Buffer | readonly Uint8Array[] | null;
  /** SQLite on a file: the file holding the blob instead (set when written). */
  media_file: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}

/** The blob of `attachments` given as a blob or as its pieces. */
function joined(attachments: Buffer | readonly Uint8Array[]): Buffer {
  return Buffer.isBuffer(attachments) ? attachments : Buffer.concat(attachments);
}

/** Byte length of `attachments` given as a blob or as its pieces. */
function lengthOf(attachments: Buffer | readonly Uint8Array[]): number {
  if (Buffer.isBuffer(attachments)) return attachments.length;
  let n = 0;
  for (const p of attachments) n += p.byteLength;
  return n;
}

const MERGE_COLUMNS = [
  'service_id',
  'status',
  'attempts',
  'seq',
  'progress',
  'message',
  'error',
  'result',
  'attachments',
  'media_file',
  'created_at',
  'started_at',
  'finished_at',
] as const;

/** Every column, in the order of the upsert's values. */
const COLUMNS = ['id', ...MERGE_COLUMNS] as const;

/**
 * Row counts of the SQLite writer thread's statements: a batch is padded up to the next one by
 * repeating its last row (the repeats update the row to the values it already has). Each size is
 * one prepared statement kept for good; with a statement per batch size, the thread prepared one
 * for most batches, and the dropped ones held their native memory until the thread's rare garbage
 * collections (the hub's RSS grew by 70 MB a minute under a mixed load).
 */
const SQLITE_SIZES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512];

/** The smallest statement size that holds `n` rows. */
function paddedSize(n: number): number {
  return SQLITE_SIZES.find((s) => s >= n) ?? n;
}

/** The upsert of `rows` rows: one statement, the same for every batch of that size. */
function upsertSql(rows: number, mysql: boolean): string {
  const tuple = `(${COLUMNS.map(() => '?').join(', ')})`;
  const merge = mysql
    ? ` on duplicate key update ${MERGE_COLUMNS.map((c) => `\`${c}\` = values(\`${c}\`)`).join(', ')}`
    : ` on conflict (\`id\`) do update set ${MERGE_COLUMNS.map((c) => `\`${c}\` = excluded.\`${c}\``).join(', ')}`;
  return `insert into \`tasks\` (${COLUMNS.map((c) => `\`${c}\``).join(', ')}) values ${Array.from({ length: rows }, () => tuple).join(', ')}${merge}`;
}

interface Pending {
  row: TaskRow;
  record: TaskRecord;
  /** Rough size of the record in a statement. */
  bytes: number;
  /** Bytes it holds in memory: media, result, error, message. */
  held: number;
  /** Times the database refused this row written alone while it answered otherwise. */
  refusals: number;
}

/** A row the database refuses this many times on its own, while it answers otherwise, is dropped. */
const MAX_REFUSALS = 3;

/** Error codes that say "try again later" rather than "this row is wrong". */
const TRANSIENT_CODES = new Set([
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'PROTOCOL_CONNECTION_LOST',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_IOERR',
  'SQLITE_FULL',
  'ENOSPC',
  'EIO',
  'EMFILE',
  'ENFILE',
  WRITER_STOPPED,
]);

function fail(row: TaskRow, what: string): never {
  throw new TypeError(`TaskStore.save: task ${JSON.stringify(row?.id)} has ${what}`);
}

function isTime(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Checks a row and turns it into what the database takes. Throws TypeError on a bad row. */
function toRecord(row: TaskRow): TaskRecord {
  if (typeof row !== 'object' || row === null) throw new TypeError('TaskStore.save: a row must be an object');
  if (typeof row.id !== 'string' || row.id.length < 1 || row.id.length > MAX_TASK_ID_LENGTH) {
    fail(row, `an invalid id (1 to ${MAX_TASK_ID_LENGTH} characters)`);
  }
  if (!Number.isSafeInteger(row.service_id) || row.service_id < 0) fail(row, 'an invalid service_id');
  if (!(TASK_STATUSES as readonly string[]).includes(row.status)) fail(row, `an unknown status ${JSON.stringify(row.status)}`);
  if (!Number.isSafeInteger(row.attempts) || row.attempts < 0) fail(row, 'an invalid attempts count');
  if (row.seq !== undefined && (!Number.isSafeInteger(row.seq) || row.seq < 0)) fail(row, 'an invalid seq');
  if (row.progress !== null && !(typeof row.progress === 'number' && Number.isFinite(row.progress))) {
    fail(row, 'an invalid progress');
  }
  if (row.message !== null && typeof row.message !== 'string') fail(row, 'a message that is not a string');
  if (
    row.attachments !== null &&
    !Buffer.isBuffer(row.attachments) &&
    !(Array.isArray(row.attachments) && row.attachments.every((p) => p instanceof Uint8Array))
  ) {
    fail(row, 'attachments that are neither a Buffer nor a list of Buffers');
  }
  if (!isTime(row.created_at)) fail(row, 'an invalid created_at');
  if (row.started_at !== null && !isTime(row.started_at)) fail(row, 'an invalid started_at');
  if (row.finished_at !== null && !isTime(row.finished_at)) fail(row, 'an invalid finished_at');
  // JSON.stringify answers undefined for undefined (and functions): stored as NULL.
  const result = row.result === undefined ? null : (JSON.stringify(row.result) ?? null);
  const error = row.error === null || row.error === undefined ? null : (JSON.stringify(row.error) ?? null);
  return {
    id: row.id,
    service_id: row.service_id,
    status: row.status,
    attempts: row.attempts,
    seq: row.seq ?? null,
    progress: row.progress,
    message: row.message,
    error,
    result,
    attachments: row.attachments,
    media_file: null,
    created_at: row.created_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
  };
}

/** Length of a string as a quoted, escaped SQL literal (mysql2 escapes these with a backslash). */
function sqlStringLength(v: string | null): number {
  if (v === null) return 4;
  return Buffer.byteLength(v, 'utf8') + (v.match(/[\0\b\t\n\r\x1a"'\\]/g)?.length ?? 0) + 2;
}

/** Length of the record in an INSERT statement, in bytes: blobs travel as hex, two characters a byte. */
function sizeOf(r: TaskRecord): number {
  return (
    ROW_OVERHEAD +
    sqlStringLength(r.id) +
    sqlStringLength(r.message) +
    sqlStringLength(r.error) +
    sqlStringLength(r.result) +
    (r.attachments === null ? 4 : 2 * lengthOf(r.attachments) + 3)
  );
}

/** The name of a task's media file: the SHA-256 of its id, whatever characters the id holds. */
function mediaFileName(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

/** Bytes a record holds in memory besides its small fields. */
function heldBy(r: TaskRecord): number {
  return (
    (r.attachments === null ? 0 : lengthOf(r.attachments)) + (r.result?.length ?? 0) + (r.error?.length ?? 0) + (r.message?.length ?? 0)
  );
}

/** Bytes of a row's numbers, separators and ON DUPLICATE KEY clause share, with room to spare. */
const ROW_OVERHEAD = 256;
/** Bytes of an INSERT statement besides its rows. */
const STATEMENT_OVERHEAD = 1024;

type RawTask = Omit<TaskRecord, 'progress' | 'seq' | 'attachments'> & {
  progress: number | string | null;
  seq: number | string | null;
  attachments: Buffer | Uint8Array | null;
};

function num(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

function fromRecord(r: RawTask): StoredTaskRow {
  const row: StoredTaskRow = {
    id: r.id,
    service_id: Number(r.service_id),
    status: r.status as TaskStatus,
    attempts: Number(r.attempts),
    progress: num(r.progress),
    message: r.message ?? null,
    error: r.error === null ? null : (JSON.parse(r.error) as TaskErrorValue),
    attachments: r.attachments === null ? null : Buffer.from(r.attachments),
    created_at: Number(r.created_at),
    started_at: num(r.started_at),
    finished_at: num(r.finished_at),
  };
  if (r.seq !== null) row.seq = Number(r.seq);
  if (r.result !== null) row.result = JSON.parse(r.result);
  return row;
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
  readonly #opts: Readonly<NumericOptions>;
  readonly #onError: TaskStoreOptions['onError'];
  /** Latest unsaved row per task id, in order of first save. */
  readonly #pending = new Map<string, Pending>();
  /** Rows of the statement in flight. */
  readonly #writing = new Map<string, Pending>();
  #timer: NodeJS.Timeout | null = null;
  #timerAt = 0;
  #running: Promise<void> | null = null;
  /** Consecutive failed writes. */
  #failures = 0;
  /** When the first of those failed writes failed (ms since the epoch); null after a write went through. */
  #failingSince: number | null = null;
  #stopped = false;
  #closing: Promise<void> | null = null;
  readonly #mysql: boolean;
  /** The thread that runs the upserts (null on in-memory SQLite: no other connection sees it). */
  readonly #writer: SqliteWriter | MysqlWriter | null = null;
  /** With a writer thread: the upsert's SQL by number of rows. */
  readonly #upserts = new Map<number, string>();
  /** In-memory SQLite: prepared upserts by their SQL (a few shapes: the batch sizes seen lately). */
  readonly #statements = new Map<string, { conn: SqliteConnection; run: { run(bindings: readonly unknown[]): unknown } }>();
  /** Bytes held by the rows not yet written (pending and writing). */
  #heldBytes = 0;
  #backlogged = false;
  readonly #backlogWatchers: Array<(backlogged: boolean) => void> = [];
  /** MySQL's `max_allowed_packet`, read before the first write; null on SQLite or until read. */
  #packetLimit: number | null = null;

  constructor(db: Knex, options: TaskStoreOptions = {}) {
    const { onError, ...rest } = options;
    const opts: NumericOptions = { ...DEFAULTS };
    for (const [key, value] of Object.entries(rest)) {
      if (!(key in DEFAULTS)) throw new Error(`TaskStore: unknown option "${key}"`);
      if (value === undefined) continue;
      if (!Number.isSafeInteger(value) || (value as number) < (key === 'flushDelayMs' ? 0 : 1)) {
        throw new Error(`TaskStore: option "${key}" must be a ${key === 'flushDelayMs' ? 'non-negative' : 'positive'} integer, got ${String(value)}`);
      }
      opts[key as keyof NumericOptions] = value as number;
    }
    this.#mysql = isMysql(db);
    if (this.#mysql) {
      const { connection } = db.client.config as { connection?: unknown };
      if (typeof connection === 'object' && connection !== null) this.#writer = new MysqlWriter(connection as MysqlConnection);
    } else {
      opts.batchSize = Math.min(opts.batchSize, SQLITE_MAX_BATCH);
      // Another connection to the same database works for a file, not for an in-memory one.
      const { filename } = (db.client.config.connection ?? {}) as { filename?: unknown };
      if (typeof filename === 'string' && filename !== '' && filename !== ':memory:' && !filename.includes('mode=memory')) {
        this.#writer = new SqliteWriter(filename);
      }
    }
    this.#db = db;
    this.#opts = Object.freeze(opts);
    this.#onError = onError;
  }

  /** Rows saved and not yet written. */
  get pendingCount(): number {
    return this.#pending.size + this.#writing.size;
  }

  /**
   * Since when (ms since the epoch) every write has failed, its rows kept for a retry; null while
   * writes go through. A row dropped after repeated refusals does not count: the others went.
   */
  get failingSince(): number | null {
    return this.#failingSince;
  }

  /** Bytes held by the rows saved and not yet written (media, result, error, message). */
  get pendingBytes(): number {
    return this.#heldBytes;
  }

  /**
   * Calls `watcher(true)` when the rows waiting to be written pass `backlogBytes` (the database
   * writes slower than tasks end: say, megabytes of media per task on a slow disk), and
   * `watcher(false)` once they are down to half of it. The hub stops reading from its workers
   * meanwhile, so that results wait in their sockets rather than in its memory.
   */
  watchBacklog(watcher: (backlogged: boolean) => void): void {
    this.#backlogWatchers.push(watcher);
  }

  #account(delta: number): void {
    this.#heldBytes += delta;
    const backlogged = this.#backlogged ? this.#heldBytes > this.#opts.backlogBytes / 2 : this.#heldBytes > this.#opts.backlogBytes;
    if (backlogged === this.#backlogged) return;
    this.#backlogged = backlogged;
    for (const w of this.#backlogWatchers) {
      try {
        w(backlogged);
      } catch {
        // A faulty watcher must not break the store.
      }
    }
  }

  /**
   * Records the latest state of a task, to be written soon; earlier unsaved states of the same
   * task are replaced. Throws TypeError for a row the table cannot hold (and after `close()`).
   * The row is copied (its buffers and JSON values are not: leave them unchanged).
   */
  save(row: TaskRow): void {
    if (this.#closing) throw new Error('TaskStore.save: the store is closed');
    const record = toRecord(row);
    const held = heldBy(record);
    const previous = this.#pending.get(row.id);
    this.#pending.set(row.id, { row: { ...row }, record, bytes: sizeOf(record), held, refusals: 0 });
    this.#account(held - (previous?.held ?? 0));
    if (this.#failures > 0) return; // a retry is already scheduled
    this.#schedule(this.#pending.size >= this.#opts.batchSize ? 0 : this.#opts.flushDelayMs);
  }

  /** The task's latest state: an unsaved one first, else the table's. Null when unknown. */
  async get(id: string): Promise<StoredTaskRow | null> {
    const p = this.#pending.get(id) ?? this.#writing.get(id);
    if (p) return { ...p.row, attachments: p.row.attachments === null ? null : joined(p.row.attachments) };
    const raw = (await this.#db('tasks').where({ id }).first()) as RawTask | undefined;
    if (!raw) return null;
    const row = fromRecord(raw);
    if (raw.media_file !== null && this.#writer instanceof SqliteWriter) {
      // A file gone (deleted by hand) reads as no media: the result keeps its references.
      row.attachments = await fs.promises.readFile(path.join(this.#writer.filesDir, raw.media_file)).catch(() => null);
    }
    return row;
  }

  /**
   * Writes every row saved so far, now. Rejects when a write fails; the rows are then kept and
   * retried in the background.
   */
  async flush(): Promise<void> {
    if (this.#running) await this.#running.catch(() => {});
    if (this.#pending.size === 0) return;
    await this.#start();
  }

  /**
   * Ends every task left `queued` or `running` (by a hub that stopped or crashed) as `failed` with
   * `{code: "interrupted", message}`, finished at `now`. Returns how many. Run at start.
   */
  async markInterrupted(now: number = Date.now(), message = 'the hub stopped while the task was unfinished'): Promise<number> {
    await this.flush();
    return await this.#db('tasks')
      .whereIn('status', ['queued', 'running'])
      .update({ status: 'failed', error: JSON.stringify({ code: 'interrupted', message }), finished_at: now });
  }

  /** Deletes the ended tasks that finished before `before` (ms since the epoch). Returns how many. */
  async purgeEnded(before: number): Promise<number> {
    await this.flush();
    const expired = () => this.#db('tasks').whereIn('status', ENDED_STATUSES).where('finished_at', '<', before);
    const writer = this.#writer instanceof SqliteWriter ? this.#writer : null;
    const files = writer ? ((await expired().whereNotNull('media_file').pluck('media_file')) as string[]) : [];
    const deleted = await expired().delete();
    for (const f of files) await fs.promises.rm(path.join(writer!.filesDir, f), { force: true });
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
    this.#stopped = true; // from here on, close() drives the retries
    this.#clearTimer();
    const deadline = Date.now() + this.#opts.closeTimeoutMs;
    let delay = this.#opts.retryMinMs;
    try {
      for (;;) {
        try {
          await this.flush();
          return;
        } catch (err) {
          if (Date.now() + delay > deadline) {
            throw new Error(`TaskStore.close: ${this.pendingCount} task rows not saved: ${errorOf(err).message}`, { cause: err });
          }
          await new Promise((resolve) => setTimeout(resolve, delay));
          delay = Math.min(delay * 2, this.#opts.retryMaxMs);
        }
      }
    } finally {
      this.#clearTimer();
      await this.#writer?.close();
    }
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(delayMs: number): void {
    if (this.#running || this.#stopped) return; // a running write picks new rows up when done
    const at = Date.now() + delayMs;
    if (this.#timer) {
      if (this.#timerAt <= at) return;
      clearTimeout(this.#timer);
    }
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#start().catch(() => {}); // reported through onError (app.ts: logged, counted in /metrics); retried by #start
    }, delayMs);
    // The hub closes the store on shutdown; a pending timer must not keep a process alive.
    this.#timer.unref();
  }

  #failed(): void {
    if (this.#failures++ === 0) this.#failingSince = Date.now();
  }

  #backoff(): number {
    const base = Math.min(this.#opts.retryMaxMs, this.#opts.retryMinMs * 2 ** Math.min(this.#failures - 1, 30));
    return Math.round(base * (0.8 + 0.4 * Math.random()));
  }

  #start(): Promise<void> {
    if (this.#running) return this.#running;
    this.#clearTimer();
    const run = this.#drain().finally(() => {
      this.#running = null;
      if (this.#pending.size > 0) this.#schedule(this.#failures > 0 ? this.#backoff() : 0);
    });
    this.#running = run;
    return run;
  }

  async #drain(): Promise<void> {
    while (this.#pending.size > 0) {
      try {
        await this.#readPacketLimit();
      } catch (err) {
        this.#failed();
        this.#report(err, [...this.#pending.values()], false);
        throw err;
      }
      const batch = this.#take();
      if (batch.length === 0) continue;
      try {
        await this.#write(batch);
        this.#failures = 0;
        this.#failingSince = null;
        this.#account(-batch.reduce((n, p) => n + p.held, 0)); // written, or dropped and reported
      } catch (err) {
        // Keep the rows for the retry, unless the task was saved again meanwhile (newer wins).
        let superseded = 0;
        for (const p of batch) {
          if (!this.#pending.has(p.row.id)) this.#pending.set(p.row.id, p);
          else superseded += p.held;
        }
        this.#account(-superseded);
        this.#failed();
        this.#report(err, batch, false);
        throw err;
      } finally {
        this.#writing.clear();
      }
    }
  }

  /**
   * Reads MySQL's `max_allowed_packet` once: a statement over it is refused by closing the
   * connection, which looks like a network fault, so the store must keep under it beforehand.
   */
  async #readPacketLimit(): Promise<void> {
    if (!this.#mysql || this.#packetLimit !== null) return;
    const [rows] = (await this.#db.raw('select @@max_allowed_packet as m')) as [{ m: number | string }[]];
    this.#packetLimit = Number(rows[0].m);
  }

  #take(): Pending[] {
    const limit = this.#packetLimit;
    const maxBytes = limit === null ? this.#opts.maxBatchBytes : Math.min(this.#opts.maxBatchBytes, limit - STATEMENT_OVERHEAD);
    const batch: Pending[] = [];
    const tooBig: Pending[] = [];
    let bytes = 0;
    for (const [id, p] of this.#pending) {
      if (limit !== null && p.bytes + STATEMENT_OVERHEAD > limit) {
        tooBig.push(p);
        this.#pending.delete(id);
        this.#account(-p.held);
        continue;
      }
      if (batch.length >= this.#opts.batchSize) break;
      if (batch.length > 0 && bytes + p.bytes > maxBytes) break;
      batch.push(p);
      bytes += p.bytes;
      this.#pending.delete(id);
      this.#writing.set(id, p);
    }
    if (tooBig.length > 0) {
      const sizes = tooBig.map((p) => p.bytes).join(', ');
      this.#report(
        new Error(`task rows of ${sizes} bytes cannot be written: MySQL's max_allowed_packet is ${limit} bytes (media count twice, as hex)`),
        tooBig,
        true,
      );
    }
    return batch;
  }

  async #insert(records: TaskRecord[]): Promise<void> {
    if (this.#writer) {
      await this.#insertInThread(this.#writer, records);
      return;
    }
    // Without a writer thread (in-memory SQLite; a MySQL connection knex was given as a string).
    const rows = records.map((r) => (r.attachments === null || Buffer.isBuffer(r.attachments) ? r : { ...r, attachments: joined(r.attachments) }));
    const query = this.#db('tasks').insert(rows).onConflict('id').merge([...MERGE_COLUMNS]);
    if (this.#mysql) {
      await query;
      return;
    }
    // SQLite: run the same statement knex builds, but prepared once per shape and reused. Under
    // load the batches have the same size, and preparing a statement of hundreds of rows anew for
    // each batch cost the hub as much as running it.
    const { sql, bindings } = query.toSQL().toNative();
    const client = this.#db.client as { acquireConnection(): Promise<SqliteConnection>; releaseConnection(c: SqliteConnection): Promise<void> };
    const conn = await client.acquireConnection();
    try {
      let stmt = this.#statements.get(sql);
      if (!stmt || stmt.conn !== conn) {
        if (this.#statements.size >= 8) this.#statements.clear();
        stmt = { conn, run: conn.prepare(sql) };
        this.#statements.set(sql, stmt);
      }
      stmt.run.run(bindings);
      // As knex would: whoever watches the queries (tests, debugging) still sees this one.
      (this.#db as unknown as { emit(event: string, data: unknown): void }).emit('query', { sql, bindings, method: 'insert' });
    } finally {
      await client.releaseConnection(conn);
    }
  }

  /** The upsert runs in the writer's thread, off the event loop. */
  async #insertInThread(writer: SqliteWriter | MysqlWriter, records: TaskRecord[]): Promise<void> {
    const sqlite = writer instanceof SqliteWriter;
    const rows = sqlite ? paddedSize(records.length) : records.length;
    let sql = this.#upserts.get(rows);
    if (sql === undefined) {
      if (this.#upserts.size >= 32) this.#upserts.clear();
      sql = upsertSql(rows, !sqlite);
      this.#upserts.set(rows, sql);
    }
    const values: unknown[] = [];
    let files: WriterFile[] | undefined;
    for (const r of records) {
      // SQLite: media go to a file, written by the thread before the statement: one write of the
      // bytes rather than SQLite's page-by-page copy into its log and then into the database.
      let attachments = r.attachments;
      let file: string | null = null;
      if (sqlite && attachments !== null) {
        file = mediaFileName(r.id);
        (files ??= []).push([file, Buffer.isBuffer(attachments) ? [attachments] : attachments]);
        attachments = null;
      }
      values.push(r.id, r.service_id, r.status, r.attempts, r.seq, r.progress, r.message, r.error, r.result, attachments, file, r.created_at, r.started_at, r.finished_at);
    }
    const width = COLUMNS.length;
    const last = values.length - width;
    for (let i = records.length; i < rows; i++) for (let k = 0; k < width; k++) values.push(values[last + k]);
    if (sqlite) await writer.run(sql, values, files);
    else await writer.run(sql, values);
    // As knex would: whoever watches the queries (tests, debugging) still sees this one.
    (this.#db as unknown as { emit(event: string, data: unknown): void }).emit('query', { sql, bindings: values, method: 'insert' });
  }

  /**
   * Whether a failed write was about its rows rather than the database: the error is not a
   * transient one, and the database answers a read of the table.
   */
  async #refusedByAnsweringDb(err: unknown): Promise<boolean> {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return false;
    if ((err as Error | null)?.name === 'KnexTimeoutError') return false;
    try {
      await this.#db('tasks').select('id').where('id', '').limit(1);
      return true;
    } catch {
      return false;
    }
  }

  async #write(batch: Pending[]): Promise<void> {
    try {
      await this.#insert(batch.map((p) => p.record));
      return;
    } catch (err) {
      if (!(await this.#refusedByAnsweringDb(err))) throw err; // keep every row for the retry
      if (batch.length === 1) {
        // Alone, a refused row cannot be told from a passing fault with certainty: give it a
        // few attempts (with backoff) before dropping it, so that it cannot fail every flush.
        const [p] = batch;
        if (++p.refusals < MAX_REFUSALS) throw err;
        this.#report(err, batch, true);
        return;
      }
      // The statement may hold a row the database refuses (say, an unknown service_id): write
      // the rows one by one, so that one bad row cannot hold back every later save.
      let refused: Pending[] = [];
      let lastError: unknown = err;
      for (let pass = 0; pass < 2; pass++) {
        const next: Pending[] = [];
        for (const p of pass === 0 ? batch : refused) {
          try {
            await this.#insert([p.record]);
          } catch (e) {
            next.push(p);
            lastError = e;
          }
        }
        refused = next;
        if (pass === 0 && refused.length === batch.length) throw err; // nothing goes through: keep all
        if (refused.length === 0) return;
      }
      // Dropped. A newer save of the same task, if any, is still pending and gets its own chance.
      this.#report(lastError, refused, true);
    }
  }

  #report(err: unknown, rows: Pending[], dropped: boolean): void {
    if (!this.#onError) return;
    try {
      this.#onError(errorOf(err), { ids: rows.map((p) => p.row.id), dropped });
    } catch {
      // A faulty listener must not break the store.
    }
  }
}
