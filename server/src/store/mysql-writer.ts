/**
 * Runs the task store's upserts on MySQL/MariaDB from a worker thread with its own mysql2
 * connection. mysql2 is asynchronous, but it escapes every value into the statement's text and
 * parses the answer on the thread that calls it: for a batch of hundreds of rows that is work the
 * hub's event loop need not do.
 */
import { createRequire } from 'node:module';
import { WriterThread } from './writer-thread.js';

/**
 * The thread's program: one connection, opened on the first statement and again after a fatal
 * error (the server gone, a cut network); statements run one at a time, in order. A list of
 * Buffers is bound as their concatenation; a Buffer arrives as a plain Uint8Array (structured
 * clone) and is bound as bytes again.
 */
const THREAD_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const mysql = require(workerData.driver);
let conn = null;
const queue = [];
let busy = false;
function connect() {
  const c = mysql.createConnection(workerData.connection);
  c.on('error', () => {
    if (conn === c) conn = null;
  });
  return c;
}
function bindable(v) {
  if (Array.isArray(v)) return Buffer.concat(v);
  if (v instanceof Uint8Array && !Buffer.isBuffer(v)) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return v;
}
function next() {
  if (busy || queue.length === 0) return;
  busy = true;
  const { id, sql, values } = queue.shift();
  let c;
  try {
    if (conn === null) conn = connect();
    c = conn;
    c.query(sql, values.map(bindable), (err) => {
      busy = false;
      if (err) {
        if (err.fatal && conn === c) {
          conn = null;
          c.destroy();
        }
        parentPort.postMessage({ id, error: { message: err.message, code: typeof err.code === 'string' ? err.code : undefined } });
      } else {
        parentPort.postMessage({ id });
      }
      next();
    });
  } catch (err) {
    busy = false;
    const e = err instanceof Error ? err : new Error(String(err));
    parentPort.postMessage({ id, error: { message: e.message, code: typeof e.code === 'string' ? e.code : undefined } });
    next();
  }
}
parentPort.on('message', (msg) => {
  queue.push(msg);
  next();
});
`;

/** Where the thread connects: mysql2's connection options (as knex was given them). */
export type MysqlConnection = Record<string, unknown>;

/** One worker thread writing to one MySQL/MariaDB database. */
export class MysqlWriter extends WriterThread {
  constructor(connection: MysqlConnection) {
    const driver = createRequire(import.meta.url).resolve('mysql2');
    super('MySQL', THREAD_SOURCE, { driver, connection });
  }

  /**
   * Runs `sql` with `values` (numbers, strings, null, Buffers: copied to the thread; a list of
   * Buffers is bound as their concatenation) in the thread. Resolves once the server answered;
   * rejects with mysql2's error (its `code` kept).
   */
  run(sql: string, values: unknown[]): Promise<void> {
    return this.send({ sql, values });
  }
}
