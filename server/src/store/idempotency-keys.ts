/**
 * The `idempotency_keys` table (docs/protocol.md section 12): the database decides which submit
 * of a key makes the task. An insert either wins (its row is new) or loses to a unique
 * violation and reads the winner's row; never a check-then-insert race.
 */
import type { Knex } from 'knex';

/** One key as stored. Times in ms since the epoch. */
export interface IdempotencyRow {
  /** sha256 hex of the client key that submitted, or `''`. */
  scope: string;
  key: string;
  task_id: string;
  service_id: number;
  /** sha256 hex of the canonical service id and args. */
  args_hash: string;
  created_at: number;
}

/** What a claim found: `won` when this row is now the key's; else the row that holds it. */
export type ClaimOutcome = { won: true } | { won: false; row: IdempotencyRow };

const TABLE = 'idempotency_keys';

/** Most rows in one grouped insert (SQLite binds at most 32766 values; 6 per row). */
const MAX_GROUP = 500;

/** True for a duplicate-key error of SQLite or MySQL/MariaDB. */
export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; errno?: number };
  return e?.code === 'ER_DUP_ENTRY' || e?.errno === 1062 || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}

function fromDb(r: Record<string, unknown>): IdempotencyRow {
  return {
    scope: String(r.scope),
    key: String(r.key),
    task_id: String(r.task_id),
    service_id: Number(r.service_id),
    args_hash: String(r.args_hash),
    created_at: Number(r.created_at),
  };
}

/** The row of a key, or null. */
export async function readKey(db: Knex, scope: string, key: string): Promise<IdempotencyRow | null> {
  const r = await db(TABLE).where({ scope, key }).first();
  return r ? fromDb(r as Record<string, unknown>) : null;
}

/**
 * Claims `row.key` for `row.task_id`: one insert when the key is new. A row older than
 * `expiredBefore` (ms since the epoch) is taken over by a conditional update, so that two
 * claimants of an expired key still agree on one winner.
 */
export async function claimKey(db: Knex, row: IdempotencyRow, expiredBefore: number): Promise<ClaimOutcome> {
  for (let tries = 0; tries < 5; tries++) {
    try {
      await db(TABLE).insert(row);
      return { won: true };
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
    }
    const held = await readKey(db, row.scope, row.key);
    if (!held) continue; // purged or released between the two statements: insert again
    if (held.created_at >= expiredBefore) return { won: false, row: held };
    const n = await db(TABLE)
      .where({ scope: row.scope, key: row.key, task_id: held.task_id, created_at: held.created_at })
      .update({ task_id: row.task_id, service_id: row.service_id, args_hash: row.args_hash, created_at: row.created_at });
    if (n === 1) return { won: true };
  }
  throw new Error('an idempotency key changed hands five times in a row');
}

/**
 * Claims many keys in one statement and one read (group commit): `INSERT ... ON CONFLICT DO
 * NOTHING` (MySQL: `INSERT IGNORE`) of every row, then the rows of those keys. A row that holds
 * its own `task_id` now won; another row lost to it; an expired one goes through `claimKey`.
 * The rows must name distinct keys.
 */
export async function claimKeys(db: Knex, rows: readonly IdempotencyRow[], expiredBefore: number): Promise<ClaimOutcome[]> {
  if (rows.length === 1) return [await claimKey(db, rows[0], expiredBefore)];
  if (rows.length > MAX_GROUP) {
    const out: ClaimOutcome[] = [];
    for (let i = 0; i < rows.length; i += MAX_GROUP) out.push(...(await claimKeys(db, rows.slice(i, i + MAX_GROUP), expiredBefore)));
    return out;
  }
  try {
    await db(TABLE)
      .insert(rows as IdempotencyRow[])
      .onConflict(['scope', 'key'])
      .ignore();
  } catch (err) {
    // MySQL may pick this insert as a deadlock's victim when another hub inserts the same keys.
    if ((err as { errno?: number }).errno !== 1213) throw err;
    const out: ClaimOutcome[] = [];
    for (const row of rows) out.push(await claimKey(db, row, expiredBefore));
    return out;
  }
  const held = (await db(TABLE).whereIn(
    ['scope', 'key'],
    rows.map((r) => [r.scope, r.key]),
  )) as Record<string, unknown>[];
  const byKey = new Map(held.map((r) => [`${String(r.scope)}\u0000${String(r.key)}`, fromDb(r)]));
  return Promise.all(
    rows.map(async (row) => {
      const h = byKey.get(`${row.scope}\u0000${row.key}`);
      if (h && h.task_id === row.task_id) return { won: true } as const;
      if (h && h.created_at >= expiredBefore) return { won: false, row: h } as const;
      return claimKey(db, row, expiredBefore); // expired, or purged meanwhile: one by one
    }),
  );
}

/** Gives a key up when its task could not be queued after all (`queue_full`, `shutting_down`). */
export async function releaseKey(db: Knex, scope: string, key: string, taskId: string): Promise<void> {
  await db(TABLE).where({ scope, key, task_id: taskId }).delete();
}

/** Deletes keys made before `before` (ms since the epoch); returns how many. */
export async function purgeKeys(db: Knex, before: number): Promise<number> {
  return db(TABLE).where('created_at', '<', before).delete();
}

/** Every key's row, newest first, at most `limit` (for tests and operators). */
export async function listKeys(db: Knex, limit = 100): Promise<IdempotencyRow[]> {
  const rows = await db(TABLE).orderBy('created_at', 'desc').limit(limit);
  return (rows as Record<string, unknown>[]).map(fromDb);
}
