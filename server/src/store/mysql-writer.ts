/**
 * Runs the task store's upserts on MySQL/MariaDB from a worker thread with its own mysql2
 * connection. mysql2 is asynchronous, but it escapes every value into the statement's text and
 * parses the answer on the thread that calls it: for a batch of hundreds of rows that is work the
 * hub's event loop need not do.
 */
import { createRequire } from 'node:module';
import { WriterThread } from './writer-thread.js';
import { unitSql, type UnitAnswer, type UnitValues } from './unit-sql.js';

/**
 * The thread's program: one connection, opened on the first statement and again after a fatal
 * error (the server gone, a cut network); messages run one at a time, in order: a statement, a
 * unit in one transaction (see unit-sql.ts). A list of
 * Buffers is bound as their concatenation; a Buffer arrives as a plain Uint8Array (structured
 * clone) and is bound as bytes again.
 */
const THREAD_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const mysql = require(workerData.driver);
const SQL = workerData.sql;
let conn = null;
const queue = [];
let busy = false;
function connect() {
  // Several statements in one query (values still bound by mysql2's escaping): the per-row
  // updates of a lease, and the outcomes of tries, go in one round trip each.
  const c = mysql.createConnection({ ...workerData.connection, multipleStatements: true });
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
function query(c, sql, values) {
  return new Promise((resolve, reject) => c.query(sql, values, (err, result) => (err ? reject(err) : resolve(result))));
}
// Runs \`sql\` once per row of values, all in one query; answers each statement's result.
async function each(c, sql, rows) {
  if (rows.length === 0) return [];
  const result = await query(c, rows.map(() => sql).join('; '), rows.flat());
  return rows.length === 1 ? [result] : result;
}
function tuples(head, tuple, rows) {
  return head + rows.map(() => tuple).join(', ');
}
// Claims: every key inserted unless held (one statement), the holders read and locked; an
// expired holder is taken over by a conditional update. The winners' queued rows go in one
// upsert. Answers null (won) or the holder, per claim.
async function claim(c, u) {
  const keys = u.claims.map((k) => k.slice(0, 6));
  await query(c, tuples(SQL.claimInsert, SQL.claimTuple, keys), keys.flat());
  const held = await query(c, SQL.claimReadMany + keys.map(() => '(\`scope\` = ? and \`key\` = ?)').join(' or ') + SQL.claimReadTail, keys.flatMap((k) => [k[0], k[1]]));
  const byKey = new Map(held.map((h) => [h.scope + '\\u0000' + h.key, h]));
  const out = [];
  const won = [];
  for (let i = 0; i < u.claims.length; i++) {
    const [scope, key, taskId, serviceId, argsHash, createdAt, expiredBefore] = u.claims[i];
    const h = byKey.get(scope + '\\u0000' + key);
    if (h === undefined) throw new Error('a held idempotency key vanished inside its transaction');
    let holder = [h.task_id, Number(h.service_id), h.args_hash, Number(h.created_at)];
    if (h.task_id === taskId) holder = null;
    else if (Number(h.created_at) < expiredBefore) {
      const r = await query(c, SQL.claimTake, [taskId, serviceId, argsHash, createdAt, scope, key, h.task_id, h.created_at]);
      if (r.affectedRows === 1) holder = null;
    }
    out.push(holder);
    if (holder === null) won.push(u.claimRows[i]);
  }
  if (won.length) await query(c, u.upsertHead + won.map(() => u.upsertTuple).join(', ') + u.upsertTail, won.flat());
  return out;
}
// At most 200 rows, and at most \`budget\` bytes of SQL at worst (a UTF-16 unit of the url or the
// body is at most 6 bytes once escaped), in one insert; a row alone is within max_allowed_packet
// (the store bounds its body).
async function insertDeliveries(c, rows, budget) {
  const cost = (r) => 6 * (r[2].length + r[4].length) + 512;
  let i = 0;
  while (i < rows.length) {
    let bytes = 0;
    let j = i;
    while (j < rows.length && j - i < 200 && (j === i || bytes + cost(rows[j]) <= budget)) bytes += cost(rows[j++]);
    const part = rows.slice(i, j);
    await query(c, tuples(SQL.deliveryInsert, SQL.deliveryTuple, part), part.flat());
    i = j;
  }
}
async function inTransaction(c, steps) {
  await query(c, 'start transaction', []);
  try {
    const result = await steps();
    await query(c, 'commit', []);
    return result;
  } catch (err) {
    if (!err.fatal) await query(c, 'rollback', []).catch(() => {});
    throw err;
  }
}
async function unit(c, u) {
  const one = !u.claims && !u.outbox && !u.updates && !u.leases;
  if (one) {
    await query(c, u.sql, u.values.map(bindable));
    return {};
  }
  return inTransaction(c, async () => {
    const out = { claims: undefined, leases: undefined };
    if (u.claims) out.claims = await claim(c, u);
    if (u.sql) await query(c, u.sql, u.values.map(bindable));
    if (u.outbox) await insertDeliveries(c, u.outbox, u.outboxBudget || 1 << 20);
    if (u.updates) await each(c, SQL.deliveryUpdate, u.updates);
    if (u.leases) {
      out.leases = [];
      for (const l of u.leases) out.leases.push(await lease(c, l));
    }
    return out;
  });
}
async function lease(c, [now, limit, until, skip]) {
  const skipped = new Set(skip);
  const due = await query(c, SQL.deliveryDue, [now, limit + skipped.size]);
  const wanted = due.filter((r) => !skipped.has(r.id)).slice(0, limit);
  const done = await each(c, SQL.deliveryLease, wanted.map((r) => [until, r.id, r.next_at]));
  return wanted.filter((_, i) => done[i].affectedRows === 1).map((r) => ({ ...r }));
}
function run(c, msg) {
  if (msg.unit) return unit(c, msg.unit);
  return query(c, msg.sql, msg.values.map(bindable)).then(() => undefined);
}
function next() {
  if (busy || queue.length === 0) return;
  busy = true;
  const msg = queue.shift();
  const { id } = msg;
  let c;
  const failed = (err) => {
    const e = err instanceof Error ? err : new Error(String(err));
    if (e.fatal && conn === c) {
      conn = null;
      c.destroy();
    }
    parentPort.postMessage({ id, error: { message: e.message, code: typeof e.code === 'string' ? e.code : undefined } });
  };
  try {
    if (conn === null) conn = connect();
    c = conn;
    run(c, msg).then(
      (result) => parentPort.postMessage({ id, result }),
      failed,
    ).finally(() => {
      busy = false;
      next();
    });
  } catch (err) {
    busy = false;
    failed(err);
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
    super('MySQL', THREAD_SOURCE, { driver, connection, sql: unitSql(true) });
  }

  /**
   * Runs `sql` with `values` (numbers, strings, null, Buffers: copied to the thread; a list of
   * Buffers is bound as their concatenation) in the thread. Resolves once the server answered;
   * rejects with mysql2's error (its `code` kept).
   */
  async run(sql: string, values: unknown[]): Promise<void> {
    await this.send({ sql, values });
  }

  /**
   * Commits a unit in one transaction (BEGIN ... COMMIT; a unit of task rows alone is one
   * statement): its claims (the winners' queued rows upserted with `upsertHead` + tuples +
   * `upsertTail`), then `sql` with `values`, then its outbox rows (in statements of at most
   * `outboxBudget` bytes, default 1 MiB, a row alone whatever its size), outcomes and leases. Resolves
   * with the claims' holders (null: won) and the rows each lease took, in order.
   */
  async unit(
    u: UnitValues & { sql?: string; values?: unknown[]; upsertHead?: string; upsertTuple?: string; upsertTail?: string; outboxBudget?: number },
  ): Promise<UnitAnswer> {
    const answer = (await this.send({ unit: u })) as Partial<UnitAnswer> | undefined;
    return { claims: answer?.claims ?? [], leases: answer?.leases ?? [] };
  }
}
