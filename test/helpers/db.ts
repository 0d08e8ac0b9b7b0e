/**
 * The databases the database tests run on: SQLite always (a file in a temp folder), MariaDB/MySQL
 * when one answers (`HUB_TEST_MYSQL_URL`, the server part such as `mysql://root@127.0.0.1:3306`;
 * else that very URL is tried). Reachability is decided once per run, within about 2 s; without
 * a server, the MySQL suites are skipped and say why, once.
 *
 * Each `freshDatabase()` makes a new empty database (`uh_test_<random>` on MySQL, a new file on
 * SQLite) and returns its `HUB_DB` URL; all of them are dropped when the run ends.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import mysql from 'mysql2/promise';
import { migrate, openDb } from '../../server/src/db/index.js';
import type { ServiceDescription } from '@utils-hub/protocol';
import { upsertService } from '../../server/src/store/services.js';
import { TaskStore, type TaskRow, type TaskStoreOptions } from '../../server/src/store/tasks.js';

export interface DbBackend {
  name: 'sqlite' | 'mysql';
  /** Why this backend's tests are skipped, or null when it is available. */
  skipReason: string | null;
  /** `describe`, or `describe.skip` when the backend is not available. */
  describe: Mocha.SuiteFunction | Mocha.PendingSuiteFunction;
  /** Creates a new empty database and returns its URL; it is dropped when the run ends. */
  freshDatabase(): Promise<string>;
}

const DEFAULT_MYSQL_URL = 'mysql://root@127.0.0.1:3306';

let sqliteDir: string | null = null;
const mysqlDatabases = new Set<string>();
let admin: Promise<mysql.Connection> | null = null;
let backends: Promise<DbBackend[]> | null = null;

function randomName(): string {
  return `uh_test_${crypto.randomBytes(6).toString('hex')}`;
}

/** The server part of the MySQL URL: scheme, credentials, host and port (no database). */
export function mysqlServerUrl(): string {
  const u = new URL(process.env.HUB_TEST_MYSQL_URL || DEFAULT_MYSQL_URL);
  const auth = u.username ? `${u.username}${u.password ? `:${u.password}` : ''}@` : '';
  return `mysql://${auth}${u.host}`;
}

function connectAdmin(): Promise<mysql.Connection> {
  admin ??= mysql.createConnection({ uri: mysqlServerUrl(), connectTimeout: 2000 }).then((conn) => {
    // A server that goes away must not crash the run: the next call reconnects.
    conn.on('error', () => {
      admin = null;
    });
    return conn;
  });
  return admin;
}

const sqlite: DbBackend = {
  name: 'sqlite',
  skipReason: null,
  describe,
  async freshDatabase() {
    sqliteDir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'uh-test-db-'));
    return `sqlite:${path.join(sqliteDir, `${randomName()}.sqlite`)}`;
  },
};

async function mysqlBackend(): Promise<DbBackend> {
  let skipReason: string | null = null;
  try {
    const conn = await connectAdmin();
    await conn.query('select 1');
  } catch (err) {
    admin = null;
    skipReason = (err as Error).message || String((err as { code?: string }).code ?? err);
    console.log(`MySQL suite skipped: ${skipReason} (${mysqlServerUrl().replace(/:[^:@/]*@/, ':***@')})`);
  }
  return {
    name: 'mysql',
    skipReason,
    describe: skipReason ? describe.skip : describe,
    async freshDatabase() {
      if (skipReason) throw new Error(`MySQL is not available: ${skipReason}`);
      const name = randomName();
      const conn = await connectAdmin();
      await conn.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
      mysqlDatabases.add(name);
      return `${mysqlServerUrl()}/${name}`;
    },
  };
}

/** The backends to loop over in `describe`s: SQLite, then MySQL (maybe skipped). */
export function dbBackends(): Promise<DbBackend[]> {
  backends ??= mysqlBackend().then((m) => [sqlite, m]);
  return backends;
}

/** Drops every database made by `freshDatabase()`. Runs once, after the whole run. */
async function dropAll(): Promise<void> {
  if (admin) {
    try {
      const conn = await admin;
      for (const name of mysqlDatabases) await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await conn.end();
    } catch (err) {
      console.log(`could not drop the test databases ${[...mysqlDatabases].join(', ')}: ${(err as Error).message}`);
    }
    mysqlDatabases.clear();
    admin = null;
  }
  if (sqliteDir) fs.rmSync(sqliteDir, { recursive: true, force: true });
  sqliteDir = null;
}

// A root hook: this module is loaded while mocha reads the spec files, so `after` here runs once
// the whole run is over.
if (typeof after === 'function') after(dropAll);

/**
 * Gives each test of the calling `describe` a fresh, migrated database of `backend`, closed after
 * the test. Returns a getter for the current test's knex.
 */
export function useMigratedDb(backend: DbBackend): () => Knex {
  let db: Knex | null = null;
  beforeEach(async () => {
    db = openDb(await backend.freshDatabase(), { log: () => {} });
    await migrate(db);
  });
  afterEach(async () => {
    await db?.destroy();
    db = null;
  });
  return () => {
    if (!db) throw new Error('useMigratedDb: no database outside a test');
    return db;
  };
}

/** The error `p` rejects with (its `code` kept); fails when `p` resolves. */
export async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

/** Values bound per row in an INSERT of tasks (the columns of the store's upsert). */
export const TASK_COLUMNS = 18;

/**
 * Records the INSERTs into tasks: one entry per statement, with the number of tasks it writes
 * (on SQLite a statement may repeat its last row to reach one of a few fixed sizes). Throws from
 * the query listener when a statement's values are not whole rows (a column added to the store
 * without TASK_COLUMNS).
 */
export function watchTaskInserts(db: Knex): number[] {
  const statements: number[] = [];
  db.on('query', (q: { sql: string; bindings?: unknown[] }) => {
    if (!/^insert into [`"]tasks[`"]/i.test(q.sql)) return;
    const bindings = q.bindings ?? [];
    if (bindings.length % TASK_COLUMNS !== 0) throw new Error(`an INSERT of tasks with ${bindings.length} values: not rows of ${TASK_COLUMNS}`);
    statements.push(new Set(bindings.filter((_, i) => i % TASK_COLUMNS === 0)).size);
  });
  return statements;
}

/** The migration files of the project, in the order they apply. */
export const MIGRATION_FILES: readonly string[] = Object.freeze(
  fs
    .readdirSync(path.join(path.dirname(new URL(import.meta.url).pathname), '../../migrations'))
    .filter((f) => /^\d+_.+\.js$/.test(f))
    .sort(),
);

/**
 * A migrated database of `backend` for each test with one service, and task stores opened on it
 * (closed after each test): `open(options)` makes a store, `row(id, overrides)` a queued task row
 * of that service.
 */
export function useTaskStores(backend: DbBackend): {
  db: () => Knex;
  open: (options?: TaskStoreOptions) => TaskStore;
  row: (id: string, overrides?: Partial<TaskRow>) => TaskRow;
} {
  const db = useMigratedDb(backend);
  let serviceId = 0;
  let stores: TaskStore[] = [];
  beforeEach(async () => {
    serviceId = await upsertService(db(), { name: 'svc', description: '', input: [] } as ServiceDescription);
    stores = [];
  });
  afterEach(async () => {
    for (const s of stores) await s.close().catch(() => {});
  });
  return {
    db,
    open(options = {}) {
      const store = new TaskStore(db(), options);
      stores.push(store);
      return store;
    },
    row(id, overrides = {}) {
      return {
        id,
        service_id: serviceId,
        status: 'queued',
        attempts: 0,
        progress: null,
        message: null,
        error: null,
        attachments: null,
        created_at: 1_700_000_000_000,
        started_at: null,
        finished_at: null,
        ...overrides,
      };
    },
  };
}
