/**
 * Opens the hub's database as a knex instance: SQLite (better-sqlite3) or MySQL/MariaDB (mysql2).
 */
import fs from 'node:fs';
import path from 'node:path';
import knex, { type Knex } from 'knex';
import { parseDbUrl } from './url.js';

/** Options of {@link openDb}. */
export interface OpenDbOptions {
  /** MySQL: how long to wait for a TCP connection, in ms. Default 10000. */
  connectTimeoutMs?: number;
  /** MySQL: most pooled connections. Default 10. (SQLite always uses one.) */
  poolMax?: number;
  /**
   * Where knex's own warnings go (a failed connection attempt, say). Default: one line each on
   * stderr, so that they never mix with a command's output on stdout.
   */
  log?: (level: 'warn' | 'error' | 'deprecate', message: string) => void;
}

function knexLog(log: NonNullable<OpenDbOptions['log']>): Knex.Logger {
  const text = (m: unknown) => (m instanceof Error ? m.message : String(m)).replace(/\s*\n\s*/g, ' ');
  return {
    warn: (m: unknown) => log('warn', text(m)),
    error: (m: unknown) => log('error', text(m)),
    deprecate: (method: string, alternative: string) => log('deprecate', `${method} is deprecated, use ${alternative}`),
    debug: () => {},
  };
}

function defaultLog(level: string, message: string): void {
  process.stderr.write(`knex ${level}: ${message}\n`);
}

/** Whether `db` talks to MySQL/MariaDB (as opposed to SQLite). */
export function isMysql(db: Knex): boolean {
  return db.client.config.client === 'mysql2';
}

/**
 * Opens `url` (see `parseDbUrl`). For SQLite the file's folder is created, and each connection
 * gets WAL journaling, foreign keys and a 5 s busy timeout (the command line may write while a
 * hub runs). Nothing connects until the first query; call `db.destroy()` when done.
 * Throws a plain Error naming the option for an invalid URL.
 */
export function openDb(url: string, options: OpenDbOptions = {}): Knex {
  const config = parseDbUrl(url);
  const log = knexLog(options.log ?? defaultLog);
  if (config.kind === 'sqlite') {
    if (config.filename !== ':memory:') fs.mkdirSync(path.dirname(config.filename), { recursive: true });
    return knex({
      client: 'better-sqlite3',
      connection: { filename: config.filename },
      useNullAsDefault: true,
      log,
      pool: {
        min: 1,
        max: 1,
        afterCreate(conn: { pragma(sql: string): unknown }, done: (err: Error | null, conn: unknown) => void) {
          try {
            conn.pragma('journal_mode = WAL');
            // In WAL mode NORMAL syncs at checkpoints, not at every commit: the database stays
            // consistent after a crash and only the last batches may be lost, while FULL would
            // block the hub's event loop on an fsync for every batch of task rows.
            conn.pragma('synchronous = NORMAL');
            conn.pragma('foreign_keys = ON');
            conn.pragma('busy_timeout = 5000');
            done(null, conn);
          } catch (err) {
            done(err as Error, conn);
          }
        },
      },
    });
  }
  return knex({
    client: 'mysql2',
    connection: {
      host: config.host,
      port: config.port,
      user: config.user,
      password: config.password,
      database: config.database,
      charset: 'utf8mb4',
      connectTimeout: options.connectTimeoutMs ?? 10_000,
    },
    pool: { min: 0, max: options.poolMax ?? 10 },
    log,
    acquireConnectionTimeout: (options.connectTimeoutMs ?? 10_000) + 5_000,
  });
}
