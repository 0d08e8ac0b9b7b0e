/**
 * Runs the task store's upserts on a SQLite file from a worker thread with its own better-sqlite3
 * connection. better-sqlite3 is synchronous: on the hub's event loop, each batch of task rows
 * (and each result's media bytes) held every socket until SQLite was done; on a thread, the writes
 * use the machine's other core while the hub goes on. WAL journaling lets the hub's own
 * connection read while the thread writes.
 */
import { createRequire } from 'node:module';
import { WriterThread } from './writer-thread.js';

export { WRITER_STOPPED } from './writer-thread.js';

/**
 * The thread's program. Statements are prepared once per SQL text and reused; files are written
 * before the statement. A message with `width` runs its one-row statement once per `width`
 * values, all in one transaction.
 */
const THREAD_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const Database = require(workerData.driver);
let db = null;
let each = null;
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
parentPort.on('message', ({ id, sql, values, files, width }) => {
  try {
    if (files) for (const [name, pieces] of files) writeFile(name, pieces);
    for (let i = 0; i < values.length; i++) if (Array.isArray(values[i])) values[i] = Buffer.concat(values[i]);
    if (db === null) {
      db = connect();
      each = db.transaction((stmt, values, width) => {
        for (let i = 0; i < values.length; i += width) stmt.run(values.slice(i, i + width));
      });
    }
    const stmt = prepared(sql);
    if (width) each(stmt, values, width);
    else stmt.run(values);
    parentPort.postMessage({ id });
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
    super('SQLite', THREAD_SOURCE, { driver, filename, busyTimeoutMs: options.busyTimeoutMs ?? 5000, filesDir });
    this.filesDir = filesDir;
  }

  /**
   * Runs `sql` with `values` (numbers, strings, null, Buffers: copied to the thread; a list of
   * Buffers is bound as their concatenation, joined in the thread) in the thread, after writing
   * `files` (each replaced whole) into `filesDir`. Resolves once SQLite committed it; rejects with
   * the error of the file system or of SQLite (its `code` kept).
   */
  run(sql: string, values: unknown[], files?: readonly WriterFile[]): Promise<void> {
    return this.send({ sql, values, files });
  }

  /**
   * Runs the one-row statement `sql` once for each `width` consecutive `values`, all in one
   * transaction (so: all or none). One prepared statement
   * serves batches of every size: a statement of N rows per batch size would be prepared anew for
   * most batches, and SQLite's cost per row is the same either way.
   */
  runEach(sql: string, values: unknown[], width: number): Promise<void> {
    if (!Number.isInteger(width) || width < 1 || values.length % width !== 0) {
      return Promise.reject(new RangeError(`runEach: ${values.length} values are not rows of ${width}`));
    }
    return this.send({ sql, values, width });
  }
}
