/**
 * The `services` table: one row per service name, whose id is the `service_id` clients use,
 * stable across restarts (docs/protocol.md section 5.1, "Services").
 */
import type { Knex } from 'knex';
import type { ServiceDescription } from '@utils-hub/protocol';
import { StoreError, isUniqueViolation } from './errors.js';
import { removeMediaFiles } from './task-media.js';

/** A row of `services`, with `me` parsed. Times in ms since the epoch. */
export interface ServiceRow {
  id: number;
  name: string;
  description: string;
  me: ServiceDescription;
  created_at: number;
  updated_at: number;
}

interface RawService {
  id: number | string;
  name: string;
  description: string;
  me: string;
  created_at: number | string;
  updated_at: number | string;
}

function fromRaw(r: RawService): ServiceRow {
  return {
    id: Number(r.id),
    name: r.name,
    description: r.description,
    me: JSON.parse(r.me) as ServiceDescription,
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
  };
}

/**
 * Stores a service's description under its name: a known name keeps its id and gets the new
 * description; a new name gets a new id. Returns the id. `me` must be valid already.
 * Safe when several hubs register the same name at once.
 */
export async function upsertService(db: Knex, me: ServiceDescription, now: number = Date.now()): Promise<number> {
  const meJson = JSON.stringify(me);
  const description = me.description ?? '';
  for (let attempt = 0; ; attempt++) {
    const existing = (await db('services').where({ name: me.name }).first('id', 'me')) as Pick<RawService, 'id' | 'me'> | undefined;
    if (existing) {
      if (existing.me !== meJson) {
        await db('services').where({ id: existing.id }).update({ description, me: meJson, updated_at: now });
      }
      return Number(existing.id);
    }
    try {
      await db('services').insert({ name: me.name, description, me: meJson, created_at: now, updated_at: now });
    } catch (err) {
      // Another hub inserted the same name between our select and insert: read its id.
      if (isUniqueViolation(err) && attempt === 0) continue;
      throw err;
    }
    const row = (await db('services').where({ name: me.name }).first('id')) as Pick<RawService, 'id'>;
    return Number(row.id);
  }
}

/** The service with that id, or null. */
export async function getServiceById(db: Knex, id: number): Promise<ServiceRow | null> {
  if (!Number.isSafeInteger(id) || id < 0) return null;
  const row = (await db('services').where({ id }).first()) as RawService | undefined;
  return row ? fromRaw(row) : null;
}

/** The service with that name, or null. */
export async function getServiceByName(db: Knex, name: string): Promise<ServiceRow | null> {
  const row = (await db('services').where({ name }).first()) as RawService | undefined;
  return row ? fromRaw(row) : null;
}

/** Every known service, ordered by id. */
export async function listServices(db: Knex): Promise<ServiceRow[]> {
  const rows = (await db('services').select().orderBy('id')) as RawService[];
  return rows.map(fromRaw);
}

/** What `removeService` forgot. */
export interface RemovedService {
  id: number;
  name: string;
  /** Ended tasks of the service deleted with it (their results go too). */
  tasks: number;
}

/**
 * Forgets a service that no worker serves any more: its row and its ended tasks (with their media
 * files when `mediaDir` is given). A worker that connects later under that name gets a new id.
 * Throws StoreError `not_found` for an unknown name, `invalid` while the service has unfinished
 * tasks (queued or running rows: a hub still works on them).
 */
export async function removeService(db: Knex, name: string, mediaDir: string | null = null): Promise<RemovedService> {
  const { removed, files } = await db.transaction(async (trx) => {
    const row = (await trx('services').where({ name }).first('id')) as Pick<RawService, 'id'> | undefined;
    if (!row) throw new StoreError('not_found', `no service is named ${JSON.stringify(name)}`);
    const id = Number(row.id);
    const tasks = trx('tasks').where({ service_id: id });
    const unfinished = Number(
      ((await tasks.clone().whereNotIn('status', ['succeeded', 'failed', 'canceled']).count({ n: '*' })) as Array<{ n: number | string }>)[0].n,
    );
    if (unfinished > 0) {
      throw new StoreError('invalid', `service ${name} still has ${unfinished} unfinished tasks: stop its workers and let a hub end them first`);
    }
    const files = mediaDir === null ? [] : ((await tasks.clone().whereNotNull('media_file').pluck('media_file')) as string[]);
    const deleted = await tasks.clone().delete();
    await trx('services').where({ id }).delete();
    return { removed: { id, name, tasks: deleted }, files };
  });
  if (mediaDir !== null) await removeMediaFiles(mediaDir, files);
  return removed;
}
