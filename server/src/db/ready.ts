/**
 * Readiness of the database, for `GET /readyz`.
 */
import type { Knex } from 'knex';
import { pendingMigrations } from './migrate.js';

/** The answer of {@link dbReady}. */
export type DbReadiness = { ready: true } | { ready: false; reason: string };

/**
 * Whether the database answers `select 1` and has every migration applied, within `timeoutMs`
 * (default 2000 ms). Never throws: a failure is `{ ready: false, reason }`.
 */
export async function dbReady(db: Knex, options: { timeoutMs?: number } = {}): Promise<DbReadiness> {
  const timeoutMs = options.timeoutMs ?? 2000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<DbReadiness>((resolve) => {
    timer = setTimeout(() => resolve({ ready: false, reason: `database did not answer within ${timeoutMs} ms` }), timeoutMs);
  });
  const check = (async (): Promise<DbReadiness> => {
    try {
      await db.raw('select 1');
      const pending = await pendingMigrations(db);
      if (pending.length > 0) return { ready: false, reason: `migrations not applied: ${pending.join(', ')}` };
      return { ready: true };
    } catch (err) {
      return { ready: false, reason: `database unreachable: ${(err as Error).message}` };
    }
  })();
  try {
    return await Promise.race([check, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
