/**
 * The `workers` table: base URLs of the workers the hub dials (docs/protocol.md section 5.1).
 */
import type { Knex } from 'knex';
import { StoreError, isUniqueViolation } from './errors.js';

/** A row of `workers`. `created_at` in ms since the epoch. */
export interface WorkerRow {
  id: number;
  url: string;
  enabled: boolean;
  created_at: number;
}

/** Longest worker URL, in characters (the column's unique index bounds it). */
export const MAX_WORKER_URL_LENGTH = 512;

interface RawWorker {
  id: number | string;
  url: string;
  enabled: number | boolean;
  created_at: number | string;
}

function fromRaw(r: RawWorker): WorkerRow {
  return { id: Number(r.id), url: r.url, enabled: Boolean(r.enabled), created_at: Number(r.created_at) };
}

/**
 * Checks a worker's base URL and returns the form stored: an `http:` or `https:` URL without
 * credentials, query or fragment, and without a trailing slash (the hub appends `/me` and `/ws`).
 * Throws StoreError `invalid` otherwise.
 */
export function normalizeWorkerUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StoreError('invalid', `invalid worker URL "${url}": expected a base URL such as http://10.0.0.5:9001`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new StoreError('invalid', `invalid worker URL "${url}": the scheme must be http or https`);
  }
  if (u.username !== '' || u.password !== '') {
    throw new StoreError('invalid', `invalid worker URL "${url}": credentials do not belong in the URL (the hub sends HUB_DIAL_SECRET)`);
  }
  if (u.search !== '' || u.hash !== '') {
    throw new StoreError('invalid', `invalid worker URL "${url}": a base URL has no query or fragment`);
  }
  const normalized = u.href.replace(/\/+$/, '');
  if (normalized.length > MAX_WORKER_URL_LENGTH) {
    throw new StoreError('invalid', `invalid worker URL: longer than ${MAX_WORKER_URL_LENGTH} characters`);
  }
  return normalized;
}

/** The workers, ordered by id; only the enabled ones with `{ enabledOnly: true }`. */
export async function listWorkers(db: Knex, options: { enabledOnly?: boolean } = {}): Promise<WorkerRow[]> {
  const query = db('workers').select().orderBy('id');
  if (options.enabledOnly) query.where({ enabled: true });
  return ((await query) as RawWorker[]).map(fromRaw);
}

/**
 * Adds a worker URL (enabled). Throws StoreError `invalid` for a URL that is not http(s), and
 * `duplicate` for a URL already listed (compared after normalization).
 */
export async function addWorker(db: Knex, url: string, now: number = Date.now()): Promise<WorkerRow> {
  const normalized = normalizeWorkerUrl(url);
  try {
    await db('workers').insert({ url: normalized, enabled: true, created_at: now });
  } catch (err) {
    if (isUniqueViolation(err)) throw new StoreError('duplicate', `worker ${normalized} is already listed`);
    throw err;
  }
  const row = (await db('workers').where({ url: normalized }).first()) as RawWorker;
  return fromRaw(row);
}

/** Removes a worker URL. Throws StoreError `not_found` when it is not listed. */
export async function removeWorker(db: Knex, url: string): Promise<void> {
  const normalized = normalizeWorkerUrl(url);
  const count = await db('workers').where({ url: normalized }).delete();
  if (count === 0) throw new StoreError('not_found', `no worker ${normalized} is listed`);
}

/** Enables or disables a worker URL. Throws StoreError `not_found` when it is not listed. */
export async function setWorkerEnabled(db: Knex, url: string, enabled: boolean): Promise<void> {
  const normalized = normalizeWorkerUrl(url);
  const row = (await db('workers').where({ url: normalized }).first('id')) as Pick<RawWorker, 'id'> | undefined;
  if (!row) throw new StoreError('not_found', `no worker ${normalized} is listed`);
  // Update by id and ignore the affected count: MySQL reports 0 when the value did not change.
  await db('workers').where({ id: row.id }).update({ enabled });
}
