/**
 * The registry: services by name with their stable ids (kept in the database), and the live
 * worker connections of each. It decides `service_conflict` and tells when the list of live
 * services changes, so that the hub can push `services` to its clients.
 */
import { EventEmitter } from 'node:events';
import { canonicalJson, HubError, type ServiceDescription, type ServiceListEntry } from '@utils-hub/protocol';

/** A service the hub has seen, live or not. */
export interface ServiceEntry {
  id: number;
  name: string;
  me: ServiceDescription;
  /** canonicalJson(me), to compare descriptions. */
  canonical: string;
  /**
   * Its live connections: those past the registry's yes (a welcome may still be on its way). A
   * count, not ids: the connection's record is the dispatcher's (see `Hub`), and the hub's
   * `ServiceClaim` makes each attach detached exactly once.
   */
  live: number;
}

/** What the registry needs from the database. */
export interface ServiceStorage {
  /** Every stored service. */
  load(): Promise<Array<{ id: number; me: ServiceDescription }>>;
  /** Stores a description by name, keeping the id; returns it. */
  upsert(me: ServiceDescription): Promise<number>;
}

export interface RegistryEvents {
  /** The list of live services changed; `list` is the new one. */
  change: [list: ServiceListEntry[]];
}

export class Registry extends EventEmitter<RegistryEvents> {
  private readonly byName = new Map<string, ServiceEntry>();
  private readonly byId = new Map<number, ServiceEntry>();
  /** Serialises registrations per service name, so two hellos cannot race on one row. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private liveList: ServiceListEntry[] = [];

  constructor(private readonly storage: ServiceStorage) {
    super();
  }

  /** Reads the stored services. Call once before use. */
  async load(): Promise<void> {
    for (const { id, me } of await this.storage.load()) this.remember(id, me);
  }

  /**
   * Reads services stored since `load()` (cluster mode: registered on another hub), keeping
   * those already known with their live connections.
   */
  async refresh(): Promise<void> {
    for (const { id, me } of await this.storage.load()) if (!this.byId.has(id) && !this.byName.has(me.name)) this.remember(id, me);
  }

  /** A service by id, live or not. */
  byServiceId(id: number): ServiceEntry | undefined {
    return this.byId.get(id);
  }

  /** The live services, ordered by id (the body of `/services_list`). */
  list(): ServiceListEntry[] {
    return this.liveList;
  }

  /** Every known service, live or not, ordered by id. */
  all(): ServiceEntry[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }

  /**
   * Adds a live connection for the service `me` describes. Throws `service_conflict` when live
   * connections describe it otherwise; when none is live, a new description replaces the stored one.
   */
  async attach(me: ServiceDescription): Promise<ServiceEntry> {
    const prev = this.locks.get(me.name) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.attachNow(me));
    this.locks.set(me.name, run);
    try {
      return await run;
    } finally {
      if (this.locks.get(me.name) === run) this.locks.delete(me.name);
    }
  }

  private async attachNow(me: ServiceDescription): Promise<ServiceEntry> {
    const canonical = canonicalJson(me);
    let entry = this.byName.get(me.name);
    if (entry && entry.live > 0 && entry.canonical !== canonical) {
      throw new HubError('service_conflict', `service "${me.name}" is already served with another description; stop its connections or use another name`);
    }
    if (!entry || entry.canonical !== canonical) {
      const id = await this.storage.upsert(me);
      // A connection may have attached while we awaited; the lock makes that the same service only.
      entry = this.remember(id, me, entry?.live);
    }
    if (entry.live++ === 0) this.changed();
    return entry;
  }

  /** Removes a live connection, once per `attach`; the service stays known. */
  detach(serviceId: number): void {
    const entry = this.byId.get(serviceId);
    if (!entry || entry.live === 0) return;
    if (--entry.live === 0) this.changed();
  }

  private remember(id: number, me: ServiceDescription, live = 0): ServiceEntry {
    const entry: ServiceEntry = { id, name: me.name, me, canonical: canonicalJson(me), live };
    const old = this.byName.get(me.name);
    if (old && old.id !== id) this.byId.delete(old.id);
    this.byName.set(me.name, entry);
    this.byId.set(id, entry);
    return entry;
  }

  private changed(): void {
    this.liveList = [...this.byId.values()]
      .filter((e) => e.live > 0)
      .sort((a, b) => a.id - b.id)
      .map((e) => ({ service_id: e.id, service_name: e.name }));
    this.emit('change', this.liveList);
  }
}
