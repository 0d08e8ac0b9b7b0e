/**
 * Which hubs of the cluster are alive (docs/cluster.md "Who knows what"): each hub keeps a key in
 * the `<cluster>-hubs` KV bucket, put every heartbeat; the bucket's TTL (3 heartbeats) removes
 * the key of a hub that stopped putting it (SIGKILL, network cut), which is then dead to all.
 * The liveness itself is JetStream's (the key's age), not a protocol of ours.
 */
import { EventEmitter } from 'node:events';
import type { KV } from '@nats-io/kv';
import type { Broker } from './broker.js';
import { leaseBucket } from './kv-bucket.js';

/** What a hub says about itself in its key. */
export interface HubRecord {
  id: string;
  /** The hub's own URL, when it knows it (HUB_PUBLIC_URL or host:port). */
  url: string | null;
  /** ms since the epoch. */
  startedAt: number;
}

/** Events of `Membership`. */
export interface MembershipEvents {
  /** A hub seen alive before has no key any more. */
  dead: [hubId: string];
  /** A hub's key appeared. */
  alive: [hubId: string];
}

export class Membership extends EventEmitter<MembershipEvents> {
  private timer: NodeJS.Timeout | null = null;
  private liveSet = new Set<string>();
  private closed = false;

  private constructor(
    private readonly kv: KV,
    private readonly self: HubRecord,
  ) {
    super();
  }

  /**
   * Joins: puts this hub's key at once, then every `heartbeatMs`. The bucket's TTL is
   * 3 x `heartbeatMs`: a hub is dead 3 heartbeats after its last put.
   */
  static async join(broker: Broker, bucket: string, self: HubRecord, heartbeatMs: number): Promise<Membership> {
    const kv = await leaseBucket(broker, bucket, 3 * heartbeatMs);
    const m = new Membership(kv, self);
    await m.beat();
    m.timer = setInterval(() => void m.beat(), heartbeatMs);
    m.timer.unref();
    return m;
  }

  /** Ids of the hubs alive at the latest beat (this one included). */
  get live(): ReadonlySet<string> {
    return this.liveSet;
  }

  /** Puts this hub's key and re-reads the keys; a failure (broker away) changes nothing. */
  async beat(): Promise<void> {
    if (this.closed) return;
    try {
      await this.kv.put(this.self.id, JSON.stringify(this.self));
      const now = new Set<string>();
      for await (const k of await this.kv.keys()) now.add(k);
      if (this.closed) return;
      const before = this.liveSet;
      this.liveSet = now;
      for (const id of before) if (!now.has(id)) this.emit('dead', id);
      for (const id of now) if (!before.has(id)) this.emit('alive', id);
    } catch {
      // The broker is away: liveness is unknown, so nobody is declared dead from here.
    }
  }

  /** The record a live hub put, or null when its key is gone. */
  async record(hubId: string): Promise<HubRecord | null> {
    const e = await this.kv.get(hubId);
    return e && e.operation === 'PUT' ? (e.json() as HubRecord) : null;
  }

  /** Leaves: stops the beats and deletes this hub's key (the others see it gone at their next beat). */
  async leave(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.kv.delete(this.self.id).catch(() => undefined);
  }
}
