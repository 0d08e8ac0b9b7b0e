/**
 * Runs a suite on each database the hub supports: SQLite (a fresh file per test) always, and
 * MariaDB/MySQL (a fresh database per suite) when one answers; otherwise that half is skipped
 * with a message saying why.
 */
import knex from 'knex';
import { randomBytes } from 'node:crypto';
import { tempSqlite } from './hub.js';

/** The server part of the MySQL URL used by tests. */
export const MYSQL_SERVER = (process.env.HUB_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306').replace(/\/+$/, '');

let reachable: Promise<string | null> | null = null;

/** Null when MySQL answers, else the reason it does not; asked once per run. */
export function mysqlProblem(): Promise<string | null> {
  reachable ??= (async () => {
    const db = knex({ client: 'mysql2', connection: `${MYSQL_SERVER}/`, pool: { min: 0, max: 1 }, acquireConnectionTimeout: 3000 });
    try {
      await db.raw('select 1');
      return null;
    } catch (err) {
      return (err as Error).message || String(err);
    } finally {
      await db.destroy();
    }
  })();
  return reachable;
}

let warned = false;

/** Creates a database with a unique name and returns its URL; `drop` removes it. */
export async function freshMysqlDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `uh_test_${randomBytes(5).toString('hex')}`;
  const admin = knex({ client: 'mysql2', connection: `${MYSQL_SERVER}/`, pool: { min: 0, max: 1 } });
  await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  await admin.destroy();
  return {
    url: `${MYSQL_SERVER}/${name}`,
    drop: async () => {
      const a = knex({ client: 'mysql2', connection: `${MYSQL_SERVER}/`, pool: { min: 0, max: 1 } });
      await a.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      await a.destroy();
    },
  };
}

/**
 * `describe(title)` once per database. `body` gets `dbUrl()`, the URL of the database to use in
 * the current test.
 */
export function forEachDatabase(title: string, body: (dbUrl: () => Promise<string>) => void): void {
  describe(`${title} [SQLite]`, () => body(async () => tempSqlite()));
  describe(`${title} [MariaDB]`, () => {
    let url = '';
    let drop: (() => Promise<void>) | null = null;
    before(async function () {
      const problem = await mysqlProblem();
      if (problem) {
        if (!warned) {
          warned = true;
          console.log(`\n    MySQL suite skipped: no MySQL at ${MYSQL_SERVER} (${problem}); set HUB_TEST_MYSQL_URL to run it\n`);
        }
        this.skip();
      }
      ({ url, drop } = await freshMysqlDatabase());
    });
    after(async () => {
      await drop?.();
    });
    body(async () => url);
  });
}
