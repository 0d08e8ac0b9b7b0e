/**
 * Runs the task store's upserts on a SQLite file from a worker thread with its own better-sqlite3
 * connection. better-sqlite3 is synchronous: on the hub's event loop, each batch of task rows
 * (and each result's media bytes) held every socket until SQLite was done; on a thread, the writes
 * use the machine's other core while the hub goes on. WAL journaling lets the hub's own
 * connection read while the thread writes.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** What the thread answers for one batch: nothing, or the error SQLite raised. */
interface Answer {
  id: number;
  error?: { message: string; code?: string };
}

/**
 * The thread's code. Plain JavaScript evaluated by `new Worker(..., { eval: true })`: a module
 * file would need a build step (or a loader the thread does not inherit) to run from the sources.
 * Statements are prepared once per SQL text (one per batch size seen lately) and reused.
 */
const THREAD_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const Database = require(workerData.driver);
let db = null;
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
parentPort.on('message', ({ id, sql, values, files }) => {
  try {
    if (files) for (const [name, pieces] of files) writeFile(name, pieces);
    for (let i = 0; i < values.length; i++) if (Array.isArray(values[i])) values[i] = Buffer.concat(values[i]);
    if (db === null) db = connect();
    let stmt = statements.get(sql);
    if (stmt === undefined) {
      if (statements.size >= 16) statements.clear();
      stmt = db.prepare(sql);
      statements.set(sql, stmt);
    }
    stmt.run(values);
    parentPort.postMessage({ id });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    parentPort.postMessage({ id, error: { message: e.message, code: typeof e.code === 'string' ? e.code : undefined } });
  }
});
`;

/** Error code of a write lost because the thread stopped; the store keeps such rows and retries. */
export const WRITER_STOPPED = 'SQLITE_WRITER_STOPPED';

/** Options of a {@link SqliteWriter}. */
export interface SqliteWriterOptions {
  /** How long SQLite waits for another connection's write lock, in ms. Default 5000. */
  busyTimeoutMs?: number;
  /** Folder of the files `run()` writes (created when needed). Default: `<filename>-media`. */
  filesDir?: string;
}

/** A file to write before a statement: its name in `filesDir`, and its bytes in pieces. */
export type WriterFile = readonly [name: string, pieces: readonly Uint8Array[]];

/**
 * One worker thread writing to one SQLite file. The thread starts with the first write and
 * again after it stopped (a crash fails the writes in flight with {@link WRITER_STOPPED}); it
 * does not keep the process alive while no write is in flight.
 */
export class SqliteWriter {
  readonly #filename: string;
  readonly #busyTimeoutMs: number;
  /** Folder of the files written with the statements. */
  readonly filesDir: string;
  #worker: Worker | null = null;
  #nextId = 1;
  readonly #waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  #closed = false;

  constructor(filename: string, options: SqliteWriterOptions = {}) {
    this.#filename = filename;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.filesDir = options.filesDir ?? `${filename}-media`;
  }

  /**
   * Runs `sql` with `values` (numbers, strings, null, Buffers: copied to the thread; a list of
   * Buffers is bound as their concatenation, joined in the thread) in the thread, after writing
   * `files` (each replaced whole) into `filesDir`. Resolves once SQLite committed it; rejects with
   * the error of the file system or of SQLite (its `code` kept).
   */
  run(sql: string, values: unknown[], files?: readonly WriterFile[]): Promise<void> {
    if (this.#closed) return Promise.reject(stopped('the SQLite writer is closed'));
    const worker = this.#worker ?? this.#start();
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      if (this.#waiting.size === 0) worker.ref();
      this.#waiting.set(id, { resolve, reject });
      worker.postMessage({ id, sql, values, files });
    });
  }

  /** Stops the thread once the writes in flight are answered. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    if (!worker) return;
    while (this.#waiting.size > 0) await new Promise((resolve) => setImmediate(resolve));
    this.#worker = null;
    await worker.terminate();
  }

  #start(): Worker {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    const worker = new Worker(THREAD_SOURCE, {
      eval: true,
      workerData: { driver, filename: this.#filename, busyTimeoutMs: this.#busyTimeoutMs, filesDir: this.filesDir },
      // The thread runs plain JavaScript: a loader given to the process (tsx) has nothing to do.
      execArgv: [],
    });
    worker.unref();
    worker.on('message', (answer: Answer) => {
      const waiter = this.#waiting.get(answer.id);
      if (!waiter) return;
      this.#waiting.delete(answer.id);
      if (this.#waiting.size === 0) worker.unref();
      if (answer.error) waiter.reject(Object.assign(new Error(answer.error.message), { code: answer.error.code }));
      else waiter.resolve();
    });
    const lost = (err: Error) => {
      if (this.#worker === worker) this.#worker = null;
      const waiting = [...this.#waiting.values()];
      this.#waiting.clear();
      for (const w of waiting) w.reject(stopped(`the SQLite writer thread stopped: ${err.message}`));
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`exit code ${code}`)));
    this.#worker = worker;
    return worker;
  }
}

function stopped(message: string): Error {
  return Object.assign(new Error(message), { code: WRITER_STOPPED });
}
