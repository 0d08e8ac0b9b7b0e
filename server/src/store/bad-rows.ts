/**
 * Bad-row isolation: a statement the database refuses may hold one row it will never take (say,
 * an unknown service_id). Rather than let that row fail every later write, the batch is written
 * row by row and the rows refused on their own, while the database answers, are dropped.
 */
import type { Knex } from 'knex';
import { WRITER_STOPPED } from './sqlite-writer.js';

/** A row the database refuses this many times on its own, while it answers otherwise, is dropped. */
const MAX_REFUSALS = 3;

/** Error codes that say "try again later" rather than "this row is wrong". */
const TRANSIENT_CODES = new Set([
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_LOCK_DEADLOCK',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'PROTOCOL_CONNECTION_LOST',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  'SQLITE_IOERR',
  'SQLITE_FULL',
  'ENOSPC',
  'EIO',
  'EMFILE',
  'ENFILE',
  WRITER_STOPPED,
]);

/**
 * Whether a failed write was about its rows rather than the database: the error is not a
 * transient one, and the database answers a read of `table`.
 */
export async function refusedByAnsweringDb(db: Knex, table: string, err: unknown): Promise<boolean> {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return false;
  if ((err as Error | null)?.name === 'KnexTimeoutError') return false;
  try {
    await db(table).select('id').where('id', '').limit(1);
    return true;
  } catch {
    return false;
  }
}

/** A row to write; `refusals` counts the times the database refused it alone while it answered. */
export interface Refusable {
  refusals: number;
}

/** How {@link writeIsolatingBadRows} writes rows and tells what failed. */
export interface IsolationSteps<E> {
  /** Writes the rows in one statement. */
  insert(rows: E[]): Promise<void>;
  /** Whether a failed write was refused by a database that answers (see {@link refusedByAnsweringDb}). */
  refused(err: unknown): Promise<boolean>;
  /** Reports rows given up for good. */
  drop(err: unknown, rows: E[]): void;
}

/**
 * Writes `batch`. Resolves when every row was written or the bad ones dropped (and reported
 * through `steps.drop`); rejects, keeping every row for a retry, when the fault looks like the
 * database's rather than a row's.
 */
export async function writeIsolatingBadRows<E extends Refusable>(batch: E[], steps: IsolationSteps<E>): Promise<void> {
  try {
    await steps.insert(batch);
    return;
  } catch (err) {
    if (!(await steps.refused(err))) throw err; // keep every row for the retry
    if (batch.length === 1) {
      // Alone, a refused row cannot be told from a passing fault with certainty: give it a
      // few attempts (with backoff) before dropping it, so that it cannot fail every flush.
      const [p] = batch;
      if (++p.refusals < MAX_REFUSALS) throw err;
      steps.drop(err, batch);
      return;
    }
    // Write the rows one by one, so that one bad row cannot hold back every later save.
    let refused: E[] = [];
    let lastError: unknown = err;
    for (let pass = 0; pass < 2; pass++) {
      const next: E[] = [];
      for (const p of pass === 0 ? batch : refused) {
        try {
          await steps.insert([p]);
        } catch (e) {
          next.push(p);
          lastError = e;
        }
      }
      refused = next;
      if (pass === 0 && refused.length === batch.length) throw err; // nothing goes through: keep all
      if (refused.length === 0) return;
    }
    // Dropped. A newer save of the same task, if any, is still pending and gets its own chance.
    steps.drop(lastError, refused);
  }
}
