/**
 * Schema migrations: knex's migrator fed with the plain ESM files of the top-level `migrations/`
 * folder, so the compiled server runs them without a TypeScript loader.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Knex } from 'knex';

/**
 * The `migrations/` folder of the repository. The same relative path holds from
 * `server/src/db/` (tests under tsx) and from `server/dist/db/` (the compiled server).
 */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/', import.meta.url));

/** Table where knex records the migrations applied. */
export const MIGRATIONS_TABLE = 'knex_migrations';

/** Migration files: three digits, an underscore, a name, `.js` (e.g. `001_initial.js`). */
const MIGRATION_FILE = /^\d{3}_[A-Za-z0-9_-]+\.js$/;

interface MigrationFile {
  name: string;
  file: string;
}

/** A knex migration source reading the numbered `.js` files of a folder, in name order. */
export class FolderMigrationSource implements Knex.MigrationSource<MigrationFile> {
  constructor(readonly dir: string = MIGRATIONS_DIR) {}

  async getMigrations(): Promise<MigrationFile[]> {
    const names = (await fs.readdir(this.dir)).filter((n) => MIGRATION_FILE.test(n)).sort();
    return names.map((name) => ({ name, file: path.join(this.dir, name) }));
  }

  getMigrationName(migration: MigrationFile): string {
    return migration.name;
  }

  async getMigration(migration: MigrationFile): Promise<Knex.Migration> {
    const mod = (await import(pathToFileURL(migration.file).href)) as Partial<Knex.Migration>;
    if (typeof mod.up !== 'function' || typeof mod.down !== 'function') {
      throw new Error(`migration ${migration.name} must export up(knex) and down(knex)`);
    }
    return { up: mod.up, down: mod.down };
  }
}

function config(dir?: string): Knex.MigratorConfig {
  return { migrationSource: new FolderMigrationSource(dir), tableName: MIGRATIONS_TABLE };
}

/** Applies every pending migration; returns the names applied (empty when up to date). */
export async function migrate(db: Knex, dir?: string): Promise<string[]> {
  const [, applied] = (await db.migrate.latest(config(dir))) as [number, string[]];
  return applied;
}

/**
 * Undoes the latest batch of migrations, or all of them with `{ all: true }`; returns the names
 * undone.
 */
export async function rollback(db: Knex, options: { all?: boolean; dir?: string } = {}): Promise<string[]> {
  const [, undone] = (await db.migrate.rollback(config(options.dir), options.all ?? false)) as [number, string[]];
  return undone;
}

/**
 * The migrations not applied yet, without changing the database (knex's own `list` would create
 * its bookkeeping table): used by readiness checks.
 */
export async function pendingMigrations(db: Knex, dir?: string): Promise<string[]> {
  const source = new FolderMigrationSource(dir);
  const all = (await source.getMigrations()).map((m) => m.name);
  if (!(await db.schema.hasTable(MIGRATIONS_TABLE))) return all;
  const done = new Set((await db(MIGRATIONS_TABLE).select('name')).map((r: { name: string }) => r.name));
  return all.filter((name) => !done.has(name));
}
