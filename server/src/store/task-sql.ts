/**
 * The upsert of task rows: its SQL, the size of a row in it, and where it runs (a writer thread
 * on SQLite on a file and on MySQL, else knex on the event loop with a prepared statement).
 */
import type { Knex } from 'knex';
import { isMysql } from '../db/open.js';
import { MysqlWriter, type MysqlConnection } from './mysql-writer.js';
import { SqliteWriter, type WriterFile } from './sqlite-writer.js';
import { mediaFile, writeMediaFiles } from './task-media.js';
import { joined, lengthOf, type TaskColumns } from './task-rows.js';
import type { IdempotencyRow } from './idempotency-keys.js';
import { claimValues, deliveryValues, runUnitWithKnex, updateValues, type DeliveryUpdate, type HolderValues, type UnitValues } from './unit-sql.js';
import { deliveryFromDb, type DeliveryRow } from './webhook-deliveries.js';

/** The part of a better-sqlite3 connection the store uses. */
interface SqliteConnection {
  prepare(sql: string): { run(bindings: readonly unknown[]): unknown };
}

/** SQLite refuses an INSERT of more rows than this (knex writes it as a compound SELECT). */
export const SQLITE_MAX_BATCH = 500;

/** Bytes of a row's numbers, separators and ON DUPLICATE KEY clause share, with room to spare. */
const ROW_OVERHEAD = 256;
/** Bytes of an INSERT statement besides its rows. */
export const STATEMENT_OVERHEAD = 1024;

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
  'owner',
] as const;

/**
 * Columns an upsert never clears nor lowers (cluster mode, docs/cluster.md): a row written
 * without them (null) leaves the table's values, `seq_reserved` only grows.
 */
const STICKY_COLUMNS = ['hub_id', 'seq_reserved'] as const;

/**
 * Every column, in the order of the upsert's values. `webhook` is written with a task's first row
 * only (not merged).
 */
const COLUMNS = ['id', ...MERGE_COLUMNS, 'webhook', ...STICKY_COLUMNS] as const;

/** The merge of the sticky columns: `incoming` names the new row's value (`values(c)`, `excluded.c`). */
function stickyMerge(mysql: boolean): string {
  const incoming = (c: string) => (mysql ? `values(\`${c}\`)` : `excluded.\`${c}\``);
  const max = mysql ? 'greatest' : 'max';
  return `\`hub_id\` = coalesce(${incoming('hub_id')}, \`hub_id\`), \`seq_reserved\` = ${max}(coalesce(${incoming('seq_reserved')}, 0), coalesce(\`seq_reserved\`, 0))`;
}

/** The merge clause of knex's upsert (no writer thread): the plain columns, then the sticky ones. */
function knexMerge(db: Knex, mysql: boolean): Record<string, Knex.Raw> {
  const out: Record<string, Knex.Raw> = {};
  for (const c of MERGE_COLUMNS) out[c] = db.raw(mysql ? `values(\`${c}\`)` : `excluded.\`${c}\``);
  const max = mysql ? 'greatest' : 'max';
  const incoming = (c: string) => (mysql ? `values(\`${c}\`)` : `excluded.\`${c}\``);
  out.hub_id = db.raw(`coalesce(${incoming('hub_id')}, \`tasks\`.\`hub_id\`)`);
  out.seq_reserved = db.raw(`${max}(coalesce(${incoming('seq_reserved')}, 0), coalesce(\`tasks\`.\`seq_reserved\`, 0))`);
  return out;
}

/** The upsert's pieces: its head, one row's tuple, and its merge clause. */
function upsertParts(mysql: boolean): { head: string; tuple: string; tail: string } {
  return {
    head: `insert into \`tasks\` (${COLUMNS.map((c) => `\`${c}\``).join(', ')}) values `,
    tuple: `(${COLUMNS.map(() => '?').join(', ')})`,
    tail: mysql
      ? ` on duplicate key update ${MERGE_COLUMNS.map((c) => `\`${c}\` = values(\`${c}\`)`).join(', ')}, ${stickyMerge(true)}`
      : ` on conflict (\`id\`) do update set ${MERGE_COLUMNS.map((c) => `\`${c}\` = excluded.\`${c}\``).join(', ')}, ${stickyMerge(false)}`,
  };
}

/** The upsert of `rows` rows: one statement, the same for every batch of that size. */
function upsertSql(rows: number, mysql: boolean): string {
  const { head, tuple, tail } = upsertParts(mysql);
  return `${head}${Array.from({ length: rows }, () => tuple).join(', ')}${tail}`;
}

/**
 * Appends a row's values to `out` in the upsert's column order, with its media as given
 * (`attachments`, or the name of the file holding them). A queued row claimed with its key has
 * neither.
 */
function pushValues(out: unknown[], r: TaskColumns, attachments: TaskColumns['attachments'] = null, file: string | null = null): unknown[] {
  out.push(
    r.id,
    r.service_id,
    r.status,
    r.attempts,
    r.seq,
    r.progress,
    r.message,
    r.error,
    r.result,
    attachments,
    file,
    r.created_at,
    r.started_at,
    r.finished_at,
    r.owner,
    r.webhook,
    r.hub_id,
    r.seq_reserved,
  );
  return out;
}

function compareKeys(a: IdempotencyRow, b: IdempotencyRow): number {
  if (a.scope !== b.scope) return a.scope < b.scope ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function upsertPartsOf(p: { head: string; tuple: string; tail: string }): { upsertHead: string; upsertTuple: string; upsertTail: string } {
  return { upsertHead: p.head, upsertTuple: p.tuple, upsertTail: p.tail };
}

/**
 * What one write commits in one transaction: task rows; key claims, each with the queued row of
 * its task (written only when the claim wins); webhook outbox rows; outcomes of webhook tries.
 */
export interface TaskWrite {
  rows: TaskColumns[];
  claims: ReadonlyArray<{ key: IdempotencyRow; expiredBefore: number; row: TaskColumns }>;
  outbox: readonly DeliveryRow[];
  updates: readonly DeliveryUpdate[];
  /** Leases of due webhook deliveries, run last: `[now, limit, until, skip]` each. */
  leases: NonNullable<UnitValues['leases']>;
}

/** What a write answers: each claim's holder (null: won), and the rows each lease took. */
export interface WriteAnswer {
  holders: Array<HolderValues | null>;
  leased: DeliveryRow[][];
}

/** Length of a string as a quoted, escaped SQL literal (mysql2 escapes these with a backslash). */
export function sqlStringLength(v: string | null): number {
  if (v === null) return 4;
  let escaped = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    // NUL, \b, \t, \n, \r, ^Z, ", ', \: what MySQL escapes.
    if (c === 0 || c === 8 || c === 9 || c === 10 || c === 13 || c === 26 || c === 34 || c === 39 || c === 92) escaped++;
  }
  return Buffer.byteLength(v, 'utf8') + escaped + 2;
}

/** Length of the row in an INSERT statement, in bytes: blobs travel as hex, two characters a byte. */
export function sqlSizeOf(r: TaskColumns): number {
  return (
    ROW_OVERHEAD +
    sqlStringLength(r.id) +
    sqlStringLength(r.message) +
    sqlStringLength(r.error) +
    sqlStringLength(r.result) +
    sqlStringLength(r.webhook) +
    (r.attachments === null ? 4 : 2 * lengthOf(r.attachments) + 3)
  );
}

/**
 * Runs the upserts of task rows against one database. Picks a writer thread when the database
 * can be reached from another connection (SQLite on a file; MySQL given as connection options).
 */
export class TaskUpserts {
  readonly #db: Knex;
  /** Whether the database is MySQL/MariaDB. */
  readonly mysql: boolean;
  /** The thread that runs the upserts (null on in-memory SQLite: no other connection sees it). */
  readonly #writer: SqliteWriter | MysqlWriter | null = null;
  /** With a writer thread: the upsert's SQL by number of rows. */
  readonly #upserts = new Map<number, string>();
  /** In-memory SQLite: prepared upserts by their SQL (a few shapes: the batch sizes seen lately). */
  readonly #statements = new Map<string, { conn: SqliteConnection; run: { run(bindings: readonly unknown[]): unknown } }>();
  /** MySQL's `max_allowed_packet`, read before the first write; null on SQLite or until read. */
  #packetLimit: number | null = null;
  /** SQLite writer: the one-row upsert of a claimed task's queued row. */
  #upsertRow: string | undefined;

  constructor(db: Knex) {
    this.#db = db;
    this.mysql = isMysql(db);
    if (this.mysql) {
      const { connection } = db.client.config as { connection?: unknown };
      if (typeof connection === 'object' && connection !== null) this.#writer = new MysqlWriter(connection as MysqlConnection);
    } else {
      // Another connection to the same database works for a file, not for an in-memory one.
      const { filename } = (db.client.config.connection ?? {}) as { filename?: unknown };
      if (typeof filename === 'string' && filename !== '' && filename !== ':memory:' && !filename.includes('mode=memory')) {
        this.#writer = new SqliteWriter(filename);
      }
    }
  }

  /** The folder of the tasks' media files: SQLite on a file only, else null. */
  get mediaDir(): string | null {
    return this.#writer instanceof SqliteWriter ? this.#writer.filesDir : null;
  }

  /** MySQL's `max_allowed_packet` in bytes once read by `readPacketLimit`; null on SQLite. */
  get packetLimit(): number | null {
    return this.#packetLimit;
  }

  /**
   * Reads MySQL's `max_allowed_packet` once: a statement over it is refused by closing the
   * connection, which looks like a network fault, so the store must keep under it beforehand.
   */
  async readPacketLimit(): Promise<void> {
    if (!this.mysql || this.#packetLimit !== null) return;
    const [rows] = (await this.#db.raw('select @@max_allowed_packet as m')) as [{ m: number | string }[]];
    this.#packetLimit = Number(rows[0].m);
  }

  /** Upserts `records` in one statement. */
  async insert(records: TaskColumns[]): Promise<void> {
    await this.write({ rows: records, claims: [], outbox: [], updates: [], leases: [] });
  }

  /**
   * Commits `w` in one transaction (task rows alone on MySQL: one statement). Resolves with each
   * claim's holder, in order (null when the claim won: its task's row is written; else the key's
   * row), and the rows each lease took.
   */
  async write(w: TaskWrite): Promise<WriteAnswer> {
    const extra = w.claims.length > 0 || w.outbox.length > 0 || w.updates.length > 0 || w.leases.length > 0;
    if (this.#writer) return this.#writeInThread(this.#writer, w);
    if (!extra) {
      await this.#insertWithKnex(w.rows);
      return { holders: [], leased: [] };
    }
    const merge = (rows: Record<string, unknown>[]) =>
      rows.map((r) => (r.attachments === null || Buffer.isBuffer(r.attachments) ? r : { ...r, attachments: joined(r.attachments as Uint8Array[]) }));
    return this.#db.transaction(async (trx) => {
      const upsert = async (t: Knex.Transaction, rows: Record<string, unknown>[]) => {
        await t('tasks').insert(merge(rows)).onConflict('id').merge(knexMerge(t, this.mysql));
      };
      if (w.rows.length) await upsert(trx, w.rows as unknown as Record<string, unknown>[]);
      return runUnitWithKnex(
        trx,
        w.claims.map((c) => ({ key: c.key, expiredBefore: c.expiredBefore, row: c.row as unknown as Record<string, unknown> })),
        w.outbox,
        w.updates,
        w.leases,
        upsert,
      );
    });
  }

  async #insertWithKnex(records: TaskColumns[]): Promise<void> {
    // Without a writer thread (in-memory SQLite; a MySQL connection knex was given as a string).
    const rows = records.map((r) => (r.attachments === null || Buffer.isBuffer(r.attachments) ? r : { ...r, attachments: joined(r.attachments) }));
    const query = this.#db('tasks').insert(rows).onConflict('id').merge(knexMerge(this.#db, this.mysql));
    if (this.mysql) {
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

  /**
   * The unit runs in the writer's thread, off the event loop. Task rows: on MySQL one statement
   * of every row (one round trip); on SQLite the one-row statement once per row, in the unit's
   * transaction (no statement to prepare per batch size, and SQLite's cost per row is the same).
   */
  async #writeInThread(writer: SqliteWriter | MysqlWriter, w: TaskWrite): Promise<WriteAnswer> {
    const sqlite = writer instanceof SqliteWriter;
    const records = w.rows;
    let sql: string | undefined;
    const values: unknown[] = [];
    let files: WriterFile[] | undefined;
    if (records.length > 0) {
      const rows = sqlite ? 1 : records.length;
      sql = this.#upserts.get(rows);
      if (sql === undefined) {
        if (this.#upserts.size >= 32) this.#upserts.clear();
        sql = upsertSql(rows, !sqlite);
        this.#upserts.set(rows, sql);
      }
      for (const r of records) {
        // SQLite: media go to a file, written before the statement that names it (see task-media.ts).
        let attachments = r.attachments;
        let file: string | null = null;
        if (sqlite && attachments !== null) {
          const f = mediaFile(r.id, attachments);
          (files ??= []).push(f);
          file = f[0];
          attachments = null;
        }
        pushValues(values, r, attachments, file);
      }
      // The files first: a committed row never names a file that is not written yet.
      if (files) await writeMediaFiles((writer as SqliteWriter).filesDir, files);
    }
    const unit: Parameters<SqliteWriter['unit']>[0] & Parameters<MysqlWriter['unit']>[0] = {};
    if (sql !== undefined) {
      unit.sql = sql;
      unit.values = values;
      if (sqlite) unit.width = COLUMNS.length;
    }
    // Claims go in the order of their keys, so that two hubs claiming the same keys lock them in one order.
    const order = w.claims.map((_, i) => i).sort((a, b) => compareKeys(w.claims[a].key, w.claims[b].key));
    if (order.length > 0) {
      unit.claims = order.map((i) => claimValues(w.claims[i].key, w.claims[i].expiredBefore));
      unit.claimRows = order.map((i) => pushValues([], w.claims[i].row));
      if (sqlite) unit.upsertRow = this.#upsertRow ??= upsertSql(1, false);
      else Object.assign(unit, upsertPartsOf(upsertParts(true)));
    }
    if (w.outbox.length > 0) {
      unit.outbox = w.outbox.map(deliveryValues);
      if (!sqlite && this.#packetLimit !== null) unit.outboxBudget = Math.min(4 << 20, this.#packetLimit - STATEMENT_OVERHEAD);
    }
    if (w.updates.length > 0) unit.updates = w.updates.map(updateValues);
    if (w.leases.length > 0) unit.leases = w.leases;
    const answer = await writer.unit(unit);
    const sorted = answer.claims;
    // As knex would: whoever watches the queries (tests, debugging) still sees the upsert.
    if (sql !== undefined) (this.#db as unknown as { emit(event: string, data: unknown): void }).emit('query', { sql, bindings: values, method: 'insert' });
    const holders = new Array<HolderValues | null>(order.length);
    for (let k = 0; k < order.length; k++) holders[order[k]] = sorted[k];
    return { holders, leased: answer.leases.map((rows) => rows.map(deliveryFromDb)) };
  }

  /** Stops the writer thread, if any. */
  async close(): Promise<void> {
    await this.#writer?.close();
  }
}
