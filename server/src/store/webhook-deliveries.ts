/**
 * The `webhook_deliveries` table: the outbox of webhooks (docs/protocol.md section 12). Rows are
 * claimed by a conditional update of `next_at` (a lease), so that two hubs on one database never
 * send one row at once. Rows, outcomes and leases are written with the task store's batches
 * (unit-sql.ts); here are the reads, the knex lease and the purge.
 */
import type { Knex } from 'knex';

/** One delivery as stored. Times in ms since the epoch. */
export interface DeliveryRow {
  id: string;
  task_id: string;
  url: string;
  event: string;
  body: string;
  status: 'pending' | 'delivered' | 'failed' | 'gone';
  attempts: number;
  next_at: number;
  last_status: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

const TABLE = 'webhook_deliveries';

/** A row as the driver answers it (numbers may come as strings). */
export function deliveryFromDb(r: Record<string, unknown>): DeliveryRow {
  return {
    id: String(r.id),
    task_id: String(r.task_id),
    url: String(r.url),
    event: String(r.event),
    body: String(r.body),
    status: String(r.status) as DeliveryRow['status'],
    attempts: Number(r.attempts),
    next_at: Number(r.next_at),
    last_status: r.last_status === null ? null : Number(r.last_status),
    last_error: r.last_error === null ? null : String(r.last_error),
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
  };
}

/** Pending rows due at `now`, soonest first, at most `limit`, leaving out `skip` (ids in flight here). */
export async function dueDeliveries(db: Knex, now: number, limit: number, skip: readonly string[]): Promise<DeliveryRow[]> {
  const q = db(TABLE).where('status', 'pending').andWhere('next_at', '<=', now).orderBy('next_at').limit(limit);
  if (skip.length) q.whereNotIn('id', skip as string[]);
  return ((await q) as Record<string, unknown>[]).map(deliveryFromDb);
}

/** Takes a due row for one try: true when this caller got it (its `next_at` moves to `leaseUntil`). */
export async function leaseDelivery(db: Knex, row: DeliveryRow, leaseUntil: number): Promise<boolean> {
  const n = await db(TABLE).where({ id: row.id, status: 'pending', next_at: row.next_at }).update({ next_at: leaseUntil });
  return n === 1;
}

/** Deliveries for operators: pending and failed ones (or only failed ones), newest first. */
export async function listDeliveries(db: Knex, options: { failedOnly?: boolean; limit?: number } = {}): Promise<DeliveryRow[]> {
  const q = db(TABLE)
    .whereIn('status', options.failedOnly ? ['failed'] : ['pending', 'failed'])
    .orderBy('created_at', 'desc')
    .limit(options.limit ?? 1000);
  return ((await q) as Record<string, unknown>[]).map(deliveryFromDb);
}

/** Deletes finished deliveries (any status but pending) last changed before `before`. */
export async function purgeDeliveries(db: Knex, before: number): Promise<number> {
  return db(TABLE).whereNot('status', 'pending').andWhere('updated_at', '<', before).delete();
}

/** Longest error message kept in a delivery body cut down to its bound. */
const KEPT_ERROR_MESSAGE = 1024;

/**
 * A delivery body (the task's view plus `event`, JSON) over its bound, made to fit: the result
 * left out, with `"truncated": true` and `task_url` (where `GET /tasks/{id}` reads the whole
 * task); if that is still too large, the progress message too, and the error's message cut
 * to 1 KiB. `fits` says whether a body is within the bound.
 */
export function truncatedBody(
  row: Pick<DeliveryRow, 'body' | 'task_id' | 'event'>,
  taskUrl: (taskId: string) => string,
  fits: (body: string) => boolean,
): string {
  let view: Record<string, unknown>;
  try {
    view = JSON.parse(row.body) as Record<string, unknown>;
  } catch {
    view = {}; // not a view (none of the hub's): its identity only
  }
  if (typeof view !== 'object' || view === null || Array.isArray(view)) view = {};
  view.task_id ??= row.task_id;
  view.event ??= row.event;
  const { result: _result, ...rest } = view;
  const cut: Record<string, unknown> = { ...rest, truncated: true, task_url: taskUrl(String(view.task_id)) };
  let out = JSON.stringify(cut);
  if (fits(out)) return out;
  cut.message = null;
  const error = cut.error as { code?: unknown; message?: unknown } | null | undefined;
  if (error && typeof error === 'object') cut.error = { code: error.code, message: String(error.message ?? '').slice(0, KEPT_ERROR_MESSAGE) };
  out = JSON.stringify(cut);
  if (fits(out)) return out;
  // Only the task's identity and outcome are left (a bound of a few KiB holds these).
  return JSON.stringify({
    task_id: view.task_id,
    service_id: view.service_id,
    status: view.status,
    event: view.event,
    truncated: true,
    task_url: cut.task_url,
  });
}
