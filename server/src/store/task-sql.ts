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

/** Every column, in the order of the upsert's values. */
const COLUMNS = ['id', ...MERGE_COLUMNS] as const;

/** The upsert of `rows` rows: one statement, the same for every batch of that size. */
function upsertSql(rows: number, mysql: boolean): string {
  const tuple = `(${COLUMNS.map(() => '?').join(', ')})`;
  const merge = mysql
    ? ` on duplicate key update ${MERGE_COLUMNS.map((c) => `\`${c}\` = values(\`${c}\`)`).join(', ')}`
    : ` on conflict (\`id\`) do update set ${MERGE_COLUMNS.map((c) => `\`${c}\` = excluded.\`${c}\``).join(', ')}`;
  return `insert into \`tasks\` (${COLUMNS.map((c) => `\`${c}\``).join(', ')}) values ${Array.from({ length: rows }, () => tuple).join(', ')}${merge}`;
}

/** Length of a string as a quoted, escaped SQL literal (mysql2 escapes these with a backslash). */
function sqlStringLength(v: string | null): number {
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
    if (this.#writer) {
      await this.#insertInThread(this.#writer, records);
      return;
    }
    // Without a writer thread (in-memory SQLite; a MySQL connection knex was given as a string).
    const rows = records.map((r) => (r.attachments === null || Buffer.isBuffer(r.attachments) ? r : { ...r, attachments: joined(r.attachments) }));
    const query = this.#db('tasks')
      .insert(rows)
      .onConflict('id')
      .merge([...MERGE_COLUMNS]);
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
   * The upsert runs in the writer's thread, off the event loop: on MySQL one statement of every
   * row (one round trip); on SQLite the one-row statement once per row in one transaction (no
   * statement to prepare per batch size, and SQLite's cost per row is the same).
   */
  async #insertInThread(writer: SqliteWriter | MysqlWriter, records: TaskColumns[]): Promise<void> {
    const sqlite = writer instanceof SqliteWriter;
    const rows = sqlite ? 1 : records.length;
    let sql = this.#upserts.get(rows);
    if (sql === undefined) {
      if (this.#upserts.size >= 32) this.#upserts.clear();
      sql = upsertSql(rows, !sqlite);
      this.#upserts.set(rows, sql);
    }
    const values: unknown[] = [];
    let files: WriterFile[] | undefined;
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
      values.push(
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
      );
    }
    if (sqlite) {
      // The files first: a committed row never names a file that is not written yet.
      if (files) await writeMediaFiles((writer as SqliteWriter).filesDir, files);
      await (writer as SqliteWriter).runEach(sql, values, COLUMNS.length);
    } else {
      await writer.run(sql, values);
    }
    // As knex would: whoever watches the queries (tests, debugging) still sees this one.
    (this.#db as unknown as { emit(event: string, data: unknown): void }).emit('query', { sql, bindings: values, method: 'insert' });
  }

  /** Stops the writer thread, if any. */
  async close(): Promise<void> {
    await this.#writer?.close();
  }
}
