/**
 * The `services` table: one row per service name, whose id is the `service_id` clients use,
 * stable across restarts (docs/protocol.md section 5.1, "Services").
 */
import type { Knex } from 'knex';
import type { ServiceDescription } from '@utils-hub/protocol';
import { isUniqueViolation } from './errors.js';

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
    const existing = (await db('services').where({ name: me.name }).first('id', 'me')) as
      | Pick<RawService, 'id' | 'me'>
      | undefined;
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
