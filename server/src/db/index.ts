/** The database layer: opening, migrating, readiness. */
export { DEFAULT_DB_URL, parseDbUrl, redactDbUrl, type DbConfig } from './url.js';
export { openDb, isMysql, type OpenDbOptions } from './open.js';
export { migrate, rollback, pendingMigrations, FolderMigrationSource, MIGRATIONS_DIR, MIGRATIONS_TABLE } from './migrate.js';
export { dbReady, type DbReadiness } from './ready.js';
