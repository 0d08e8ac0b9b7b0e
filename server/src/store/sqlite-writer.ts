/**
 * Runs the task store's upserts on a SQLite file from a worker thread with its own better-sqlite3
 * connection. better-sqlite3 is synchronous: on the hub's event loop, each batch of task rows
 * (and each result's media bytes) held every socket until SQLite was done; on a thread, the writes
 * use the machine's other core while the hub goes on. WAL journaling lets the hub's own
 * connection read while the thread writes.
 */
import { createRequire } from 'node:module';
import { WriterThread } from './writer-thread.js';
import { unitSql, type UnitAnswer, type UnitValues } from './unit-sql.js';

export { WRITER_STOPPED } from './writer-thread.js';

/**
 * The writer's program, run in the thread and, for small units while the thread is idle, on the
 * event loop (see {@link SqliteWriter.unit}); it expects `require` and `workerData` in scope and
 * defines `handle(msg)`, which runs one message and returns its result or throws. Statements are
 * prepared once per SQL text and reused; files are written before the statement. A message is
 * one statement (with `width`: its one-row statement once per `width` values, all in one
 * transaction), a unit (claims, the task rows, outbox rows, outcomes and leases of due webhook
 * deliveries in one transaction; see unit-sql.ts), or a checkpoint of the WAL.
 */
const PROGRAM = `
const fs = require('node:fs');
const path = require('node:path');
const Database = require(workerData.driver);
const SQL = workerData.sql;
let db = null;
let each = null;
let unitTx = null;
const statements = new Map();
function connect() {
  const conn = new Database(workerData.filename, { timeout: workerData.busyTimeoutMs, fileMustExist: true });
  try {
    conn.pragma('journal_mode = WAL');
    conn.pragma('synchronous = NORMAL');
    conn.pragma('foreign_keys = ON');
    // On the event loop: no checkpoint there (it may take milliseconds); the thread does them.
    if (workerData.inline) conn.pragma('wal_autocheckpoint = 0');
  } catch (err) {
    conn.close();
    throw err;
  }
  return conn;
}
function writeFile(name, pieces) {
  fs.mkdirSync(workerData.filesDir, { recursive: true });
  const fd = fs.openSync(path.join(workerData.filesDir, name), 'w');
  try {
    fs.writevSync(fd, pieces);
  } finally {
    fs.closeSync(fd);
  }
}
function prepared(sql) {
  let stmt = statements.get(sql);
  if (stmt === undefined) {
    if (statements.size >= 64) statements.clear(); // a few texts only: the store's statements
    stmt = db.prepare(sql);
    statements.set(sql, stmt);
  }
  return stmt;
}
function joinBlobs(values) {
  for (let i = 0; i < values.length; i++) if (Array.isArray(values[i])) values[i] = Buffer.concat(values[i]);
  return values;
}
// Each claim: its key inserted unless held; a held key read, and taken over when expired. A
// claim that wins has its task's queued row written; the answer is null (won) or the holder.
function claim(c, row, upsertRow) {
  const [scope, key, taskId, serviceId, argsHash, createdAt, expiredBefore] = c;
  if (prepared(SQL.claimInsert).run(scope, key, taskId, serviceId, argsHash, createdAt).changes === 1) {
    prepared(upsertRow).run(row);
    return null;
  }
  const h = prepared(SQL.claimRead).get(scope, key);
  if (h === undefined) throw new Error('a held idempotency key vanished inside its transaction');
  if (h.task_id !== taskId && Number(h.created_at) < expiredBefore) {
    if (prepared(SQL.claimTake).run(taskId, serviceId, argsHash, createdAt, scope, key, h.task_id, h.created_at).changes === 1) {
      prepared(upsertRow).run(row);
      return null;
    }
  }
  if (h.task_id === taskId) return null; // a retry of a write that had committed
  return [h.task_id, Number(h.service_id), h.args_hash, Number(h.created_at)];
}
// A one-row statement once per \`width\` values (or, without \`width\`, one statement of them all).
function runRows(stmt, values, width) {
  if (!width) return stmt.run(values);
  for (let i = 0; i < values.length; i += width) stmt.run(values.slice(i, i + width));
}
function unit(u) {
  const out = { claims: undefined, leases: undefined };
  if (u.claims) out.claims = u.claims.map((c, i) => claim(c, u.claimRows[i], u.upsertRow));
  if (u.sql) runRows(prepared(u.sql), joinBlobs(u.values), u.width);
  if (u.outbox) for (const r of u.outbox) prepared(SQL.deliveryInsert).run(r);
  if (u.updates) for (const r of u.updates) prepared(SQL.deliveryUpdate).run(r);
  if (u.leases) out.leases = u.leases.map(lease);
  return out;
}
// Due webhook deliveries, each leased by a conditional update (in the unit's transaction: no
// other connection writes between the read and the leases).
function lease([now, limit, until, skip]) {
  const skipped = new Set(skip);
  const taken = [];
  for (const r of prepared(SQL.deliveryDue).all(now, limit + skipped.size)) {
    if (taken.length >= limit) break;
    if (skipped.has(r.id)) continue;
    if (prepared(SQL.deliveryLease).run(until, r.id, r.next_at).changes === 1) taken.push(r);
  }
  return taken;
}
function handle(msg) {
  if (msg.close) {
    if (db !== null) db.close();
    db = null;
    return;
  }
  const { files } = msg;
  if (files) for (const [name, pieces] of files) writeFile(name, pieces);
  if (db === null) {
    db = connect();
    each = db.transaction(runRows);
    unitTx = db.transaction(unit);
  }
  if (msg.checkpoint) return void db.pragma('wal_checkpoint(PASSIVE)');
  if (msg.unit) return unitTx.immediate(msg.unit);
  if (msg.width) return void each(prepared(msg.sql), joinBlobs(msg.values), msg.width);
  prepared(msg.sql).run(joinBlobs(msg.values));
}
`;

/** The thread: the program, answering each message. */
const THREAD_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
${PROGRAM}
parentPort.on('message', (msg) => {
  try {
    parentPort.postMessage({ id: msg.id, result: handle(msg) });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    parentPort.postMessage({ id: msg.id, error: { message: e.message, code: typeof e.code === 'string' ? e.code : undefined } });
  }
});
`;

/** Options of a {@link SqliteWriter}. */
export interface SqliteWriterOptions {
  /** How long SQLite waits for another connection's write lock, in ms. Default 5000. */
  busyTimeoutMs?: number;
  /** Folder of the files `run()` writes (created when needed). Default: `<filename>-media`. */
  filesDir?: string;
  /** Whether small units may commit on the event loop while the thread is idle (see `unit`). Default true. */
  inline?: boolean;
}

/** Most statements (rows, claims, outbox rows, outcomes) of a unit committed on the event loop. */
const INLINE_MAX_STATEMENTS = 4;
/** Units committed on the event loop between two checkpoints asked of the thread. */
const INLINE_CHECKPOINT_EVERY = 200;

/** A program's `handle`, with its own connection (opened by the first message). */
type Handle = (msg: Record<string, unknown>) => unknown;

/** A file to write before a statement: its name in `filesDir`, and its bytes in pieces. */
export type WriterFile = readonly [name: string, pieces: readonly Uint8Array[]];

/** One worker thread writing to one SQLite file (and to the folder of its media files). */
export class SqliteWriter extends WriterThread {
  /** Folder of the files written with the statements. */
  readonly filesDir: string;

  /** The program on the event loop, with a connection that never waits for a lock; null when not used (or it failed to open). */
  #inline: Handle | null;
  /** Units committed on the event loop since the last checkpoint asked of the thread. */
  #inlineSinceCheckpoint = 0;

  constructor(filename: string, options: SqliteWriterOptions = {}) {
    const filesDir = options.filesDir ?? `${filename}-media`;
    const require = createRequire(import.meta.url);
    const data = { driver: require.resolve('better-sqlite3'), filename, busyTimeoutMs: options.busyTimeoutMs ?? 5000, filesDir, sql: unitSql(false) };
    super('SQLite', THREAD_SOURCE, data);
    this.filesDir = filesDir;
    this.#inline =
      options.inline === false
        ? null
        : (new Function('require', 'workerData', `'use strict';\n${PROGRAM}\nreturn handle;`)(require, { ...data, busyTimeoutMs: 0, inline: true }) as Handle);
  }

  /**
   * Runs `sql` with `values` (numbers, strings, null, Buffers: copied to the thread; a list of
   * Buffers is bound as their concatenation, joined in the thread) in the thread, after writing
   * `files` (each replaced whole) into `filesDir`. Resolves once SQLite committed it; rejects with
   * the error of the file system or of SQLite (its `code` kept).
   */
  async run(sql: string, values: unknown[], files?: readonly WriterFile[]): Promise<void> {
    await this.send({ sql, values, files });
  }

  /**
   * Commits a unit in one transaction: its claims (each winner's queued row upserted with
   * `upsertRow`, a one-row upsert), then `sql` with `values` (the task rows, if any: with
   * `width`, `sql` is a one-row statement run once per `width` values), then its outbox rows,
   * outcomes and leases; `files` are written first. Resolves with the claims' holders (null:
   * won) and the rows each lease took, in order.
   *
   * A small unit (a few statements, no files, no leases) committed while the thread has nothing
   * in flight runs on the event loop instead, on a connection of its own: a commit there costs
   * the event loop about what handing the unit to the thread and hearing back costs it, and the
   * two thread wake-ups it saves are most of a lone task's commit latency. That connection never
   * waits for a lock (another process writing: the unit goes to the thread, which waits) and
   * never checkpoints (the thread is asked to, every few hundred such units). Order is kept: the
   * thread is idle, so every unit given before has committed.
   */
  async unit(u: UnitValues & { sql?: string; values?: unknown[]; width?: number; upsertRow?: string }, files?: readonly WriterFile[]): Promise<UnitAnswer> {
    const answer = ((files === undefined && this.#small(u) && this.#runInline({ unit: u })) || (await this.send({ unit: u, files }))) as
      | Partial<UnitAnswer>
      | undefined;
    return { claims: answer?.claims ?? [], leases: answer?.leases ?? [] };
  }

  override async close(): Promise<void> {
    const inline = this.#inline;
    this.#inline = null;
    inline?.({ close: true });
    await super.close();
  }

  #small(u: UnitValues & { values?: unknown[]; width?: number }): boolean {
    if (this.#inline === null || this.busy || u.leases !== undefined) return false;
    const rows = u.values === undefined ? 0 : u.width ? u.values.length / u.width : 1;
    return rows + (u.claims?.length ?? 0) + (u.outbox?.length ?? 0) + (u.updates?.length ?? 0) <= INLINE_MAX_STATEMENTS;
  }

  /** Runs `msg` on the event loop; false when it must go to the thread instead (the lock is taken, or the connection cannot open). */
  #runInline(msg: Record<string, unknown>): unknown {
    try {
      const result = this.#inline!(msg) ?? {};
      if (++this.#inlineSinceCheckpoint >= INLINE_CHECKPOINT_EVERY) {
        this.#inlineSinceCheckpoint = 0;
        this.send({ checkpoint: true }).catch(() => {}); // the thread's own commits checkpoint too
      }
      return result;
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code === 'SQLITE_LOCKED')) return false;
      if (code === 'SQLITE_CANTOPEN' || (err as Error).message?.includes('directory does not exist')) {
        this.#inline = null; // the thread opens it, and reports why it cannot
        return false;
      }
      throw err;
    }
  }

  /**
   * Runs the one-row statement `sql` once for each `width` consecutive `values`, all in one
   * transaction (so: all or none). One prepared statement
   * serves batches of every size: a statement of N rows per batch size would be prepared anew for
   * most batches, and SQLite's cost per row is the same either way.
   */
  async runEach(sql: string, values: unknown[], width: number): Promise<void> {
    if (!Number.isInteger(width) || width < 1 || values.length % width !== 0) {
      throw new RangeError(`runEach: ${values.length} values are not rows of ${width}`);
    }
    await this.send({ sql, values, width });
  }
}
