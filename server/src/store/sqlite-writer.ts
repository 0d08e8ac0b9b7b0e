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
 * The thread's program. Statements are prepared once per SQL text and reused; files are written
 * before the statement. A message is one statement (with `width`: its one-row statement once
 * per `width` values, all in one transaction) or a unit (claims, the task rows, outbox rows,
 * outcomes and leases of due webhook deliveries in one transaction; see unit-sql.ts).
 */
const THREAD_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
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
parentPort.on('message', (msg) => {
  const { id, files } = msg;
  try {
    if (files) for (const [name, pieces] of files) writeFile(name, pieces);
    if (db === null) {
      db = connect();
      each = db.transaction(runRows);
      unitTx = db.transaction(unit);
    }
    let result;
    if (msg.unit) result = unitTx.immediate(msg.unit);
    else if (msg.width) each(prepared(msg.sql), joinBlobs(msg.values), msg.width);
    else prepared(msg.sql).run(joinBlobs(msg.values));
    parentPort.postMessage({ id, result });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    parentPort.postMessage({ id, error: { message: e.message, code: typeof e.code === 'string' ? e.code : undefined } });
  }
});
`;

/** Options of a {@link SqliteWriter}. */
export interface SqliteWriterOptions {
  /** How long SQLite waits for another connection's write lock, in ms. Default 5000. */
  busyTimeoutMs?: number;
  /** Folder of the files `run()` writes (created when needed). Default: `<filename>-media`. */
  filesDir?: string;
}

/** A file to write before a statement: its name in `filesDir`, and its bytes in pieces. */
export type WriterFile = readonly [name: string, pieces: readonly Uint8Array[]];

/** One worker thread writing to one SQLite file (and to the folder of its media files). */
export class SqliteWriter extends WriterThread {
  /** Folder of the files written with the statements. */
  readonly filesDir: string;

  constructor(filename: string, options: SqliteWriterOptions = {}) {
    const filesDir = options.filesDir ?? `${filename}-media`;
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    super('SQLite', THREAD_SOURCE, { driver, filename, busyTimeoutMs: options.busyTimeoutMs ?? 5000, filesDir, sql: unitSql(false) });
    this.filesDir = filesDir;
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
   */
  async unit(u: UnitValues & { sql?: string; values?: unknown[]; width?: number; upsertRow?: string }, files?: readonly WriterFile[]): Promise<UnitAnswer> {
    const answer = (await this.send({ unit: u, files })) as Partial<UnitAnswer> | undefined;
    return { claims: answer?.claims ?? [], leases: answer?.leases ?? [] };
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
