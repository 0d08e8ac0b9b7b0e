/**
 * A write unit: what the task store commits in one transaction besides its batch of task rows
 * (docs/delivery.md "Where the rows go"): idempotency key claims with the queued row of each
 * claim's task (inserted only when the claim wins), webhook outbox rows, and the outcomes of
 * webhook tries. The statements are written here once, as SQL text for the writer threads
 * (sqlite-writer.ts, mysql-writer.ts) and as knex queries for a store without a thread
 * (in-memory SQLite), so that both paths run the same steps.
 */
import type { Knex } from 'knex';
import type { IdempotencyRow } from './idempotency-keys.js';
import { dueDeliveries, leaseDelivery, type DeliveryRow } from './webhook-deliveries.js';

/** The outcome of a webhook try, as written back to its row. */
export interface DeliveryUpdate {
  id: string;
  status: DeliveryRow['status'];
  attempts: number;
  next_at: number;
  last_status: number | null;
  last_error: string | null;
  updated_at: number;
}

/** Columns of `idempotency_keys`, in the order of a claim's values. */
export const KEY_COLUMNS = ['scope', 'key', 'task_id', 'service_id', 'args_hash', 'created_at'] as const;

/** Columns of `webhook_deliveries`, in the order of an outbox row's values. */
export const DELIVERY_COLUMNS = [
  'id',
  'task_id',
  'url',
  'event',
  'body',
  'status',
  'attempts',
  'next_at',
  'last_status',
  'last_error',
  'created_at',
  'updated_at',
] as const;

/** A claim's values: the key's row, then the time before which a holder has expired. */
export function claimValues(row: IdempotencyRow, expiredBefore: number): unknown[] {
  return [row.scope, row.key, row.task_id, row.service_id, row.args_hash, row.created_at, expiredBefore];
}

/** An outbox row's values, in {@link DELIVERY_COLUMNS} order. */
export function deliveryValues(r: DeliveryRow): unknown[] {
  return DELIVERY_COLUMNS.map((c) => r[c]);
}

/** An outcome's values, in the order of {@link UnitSql.deliveryUpdate}. */
export function updateValues(u: DeliveryUpdate): unknown[] {
  return [u.status, u.attempts, u.next_at, u.last_status, u.last_error, u.updated_at, u.id];
}

/** The holder of a key as a claim that lost reads it: task_id, service_id, args_hash, created_at. */
export type HolderValues = [taskId: string, serviceId: number, argsHash: string, createdAt: number];

const cols = (names: readonly string[]) => names.map((c) => `\`${c}\``).join(', ');
const marks = (n: number) => `(${Array.from({ length: n }, () => '?').join(', ')})`;

/**
 * The statements of a unit, for one dialect; given to the writer thread as its `workerData.sql`.
 * `*Head` statements take their rows as `(?, ...)` tuples appended (MySQL writes many rows in one
 * statement); the others run once per row (SQLite, where a prepared statement costs microseconds).
 */
export interface UnitSql {
  /** Insert of one key, or (MySQL) the head of a multi-row one; a held key is left alone. */
  claimInsert: string;
  /** One key tuple. */
  claimTuple: string;
  /** Read of a key's holder (`scope = ? and key = ?`). */
  claimRead: string;
  /** Head of a read of many keys' holders (MySQL): `(scope = ? and key = ?) or ...` appended, then `claimReadTail`. */
  claimReadMany: string;
  /** Locks the holders read (MySQL: a held key cannot change hands before the commit). */
  claimReadTail: string;
  /** Takeover of an expired key: new task_id, service_id, args_hash, created_at; where scope, key, old task_id, old created_at. */
  claimTake: string;
  /** Insert of one outbox row, or (MySQL) the head of a multi-row one. */
  deliveryInsert: string;
  deliveryTuple: string;
  /** Records a try's outcome: status, attempts, next_at, last_status, last_error, updated_at; where id. */
  deliveryUpdate: string;
  /** Due rows: `status = 'pending' and next_at <= ?`, soonest first, `limit ?`. */
  deliveryDue: string;
  /** Lease of a due row: next_at = ?; where id = ? and it is still pending with the next_at read. */
  deliveryLease: string;
}

/** The statements of a unit on MySQL/MariaDB (`mysql`) or SQLite. */
export function unitSql(mysql: boolean): UnitSql {
  const keyTuple = marks(KEY_COLUMNS.length);
  const deliveryTuple = marks(DELIVERY_COLUMNS.length);
  return {
    claimInsert: mysql
      ? `insert ignore into \`idempotency_keys\` (${cols(KEY_COLUMNS)}) values `
      : `insert into \`idempotency_keys\` (${cols(KEY_COLUMNS)}) values ${keyTuple} on conflict (\`scope\`, \`key\`) do nothing`,
    claimTuple: keyTuple,
    claimRead: 'select `task_id`, `service_id`, `args_hash`, `created_at` from `idempotency_keys` where `scope` = ? and `key` = ?',
    claimReadMany: 'select `scope`, `key`, `task_id`, `service_id`, `args_hash`, `created_at` from `idempotency_keys` where ',
    claimReadTail: mysql ? ' lock in share mode' : '',
    claimTake:
      'update `idempotency_keys` set `task_id` = ?, `service_id` = ?, `args_hash` = ?, `created_at` = ? where `scope` = ? and `key` = ? and `task_id` = ? and `created_at` = ?',
    deliveryInsert: mysql
      ? `insert into \`webhook_deliveries\` (${cols(DELIVERY_COLUMNS)}) values `
      : `insert into \`webhook_deliveries\` (${cols(DELIVERY_COLUMNS)}) values ${deliveryTuple}`,
    deliveryTuple,
    deliveryUpdate:
      'update `webhook_deliveries` set `status` = ?, `attempts` = ?, `next_at` = ?, `last_status` = ?, `last_error` = ?, `updated_at` = ? where `id` = ?',
    deliveryDue: "select * from `webhook_deliveries` where `status` = 'pending' and `next_at` <= ? order by `next_at` limit ?",
    deliveryLease: "update `webhook_deliveries` set `next_at` = ? where `id` = ? and `status` = 'pending' and `next_at` = ?",
  };
}

/** What one write commits, as the writer thread takes it (values only: the SQL is the thread's). */
export interface UnitValues {
  /** Claims ({@link claimValues}), sorted by scope and key (two hubs lock keys in one order). */
  claims?: unknown[][];
  /** The queued task row of each claim, in the task upsert's column order: written when it wins. */
  claimRows?: unknown[][];
  /** Outbox rows ({@link deliveryValues}). */
  outbox?: unknown[][];
  /** Outcomes of tries ({@link updateValues}). */
  updates?: unknown[][];
  /** Leases of due deliveries, each `[now, limit, until, skip]`: run last; each answers the rows it took. */
  leases?: Array<[now: number, limit: number, until: number, skip: readonly string[]]>;
}

/** What the writer thread answers for a unit: each claim's holder (null: won), each lease's rows (as the driver gave them). */
export interface UnitAnswer {
  claims: Array<HolderValues | null>;
  leases: Record<string, unknown>[][];
}

/**
 * Runs a unit's claims, outbox rows, outcomes and leases through knex, in `trx`; answers the
 * claims' holders (null: won) and the rows each lease took.
 */
export async function runUnitWithKnex(
  trx: Knex.Transaction,
  claims: ReadonlyArray<{ key: IdempotencyRow; expiredBefore: number; row: Record<string, unknown> }>,
  outbox: readonly DeliveryRow[],
  updates: readonly DeliveryUpdate[],
  leases: NonNullable<UnitValues['leases']>,
  upsert: (trx: Knex.Transaction, rows: Record<string, unknown>[]) => Promise<void>,
): Promise<{ holders: Array<HolderValues | null>; leased: DeliveryRow[][] }> {
  const holders: Array<HolderValues | null> = [];
  const won: Record<string, unknown>[] = [];
  for (const c of claims) {
    const holder = await claimWithKnex(trx, c.key, c.expiredBefore);
    holders.push(holder);
    if (holder === null) won.push(c.row);
  }
  if (won.length) await upsert(trx, won);
  for (let i = 0; i < outbox.length; i += 100) await trx('webhook_deliveries').insert(outbox.slice(i, i + 100) as DeliveryRow[]);
  for (const u of updates) {
    const { id, ...change } = u;
    await trx('webhook_deliveries').where({ id }).update(change);
  }
  const leased: DeliveryRow[][] = [];
  for (const [now, limit, until, skip] of leases) {
    const taken: DeliveryRow[] = [];
    for (const row of await dueDeliveries(trx, now, limit, skip)) if (await leaseDelivery(trx, row, until)) taken.push(row);
    leased.push(taken);
  }
  return { holders, leased };
}

/** One claim in a transaction: null when it won (a new key, or an expired one taken over), else the holder. */
async function claimWithKnex(trx: Knex.Transaction, key: IdempotencyRow, expiredBefore: number): Promise<HolderValues | null> {
  for (let tries = 0; tries < 5; tries++) {
    await trx('idempotency_keys').insert(key).onConflict(['scope', 'key']).ignore();
    const held = (await trx('idempotency_keys').where({ scope: key.scope, key: key.key }).first()) as Record<string, unknown> | undefined;
    if (!held) continue;
    const holder: HolderValues = [String(held.task_id), Number(held.service_id), String(held.args_hash), Number(held.created_at)];
    if (holder[0] === key.task_id) return null;
    if (holder[3] >= expiredBefore) return holder;
    const n = await trx('idempotency_keys')
      .where({ scope: key.scope, key: key.key, task_id: holder[0], created_at: holder[3] })
      .update({ task_id: key.task_id, service_id: key.service_id, args_hash: key.args_hash, created_at: key.created_at });
    if (n === 1) return null;
  }
  throw new Error('an idempotency key changed hands five times in a row');
}
