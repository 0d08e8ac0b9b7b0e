/**
 * Who dials which listed worker (docs/cluster.md "Dialed workers"): a hub dials a URL only while
 * it holds the URL's key in the `<cluster>-dials` KV bucket. `create()` fails when a live hub
 * holds the key, so one hub wins; the holder renews it every heartbeat with `update()` on the
 * key's revision (which fails if another hub took it meanwhile); the bucket's TTL (3 heartbeats)
 * frees the key of a hub that died. Exclusivity is JetStream's, not ours.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { Broker } from './broker.js';
import { leaseBucket } from './kv-bucket.js';

/** The key of a worker URL (a URL holds characters KV keys may not). */
export function dialKey(url: string): string {
  return createHash('sha1').update(url).digest('hex');
}

export class DialLeases {
  /** Revision and time of last renewal of each lease this hub holds, by URL. */
  private readonly held = new Map<string, { rev: number; at: number }>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(
    private readonly kv: KV,
    private readonly hubId: string,
    private readonly heartbeatMs: number,
    /** Called when a lease this hub held is lost (renewal refused): stop dialing that URL. */
    private readonly onLost: (url: string) => void,
  ) {}

  /** Opens the bucket (TTL 3 x `heartbeatMs`) and renews held leases every `heartbeatMs`. */
  static async open(broker: Broker, bucket: string, hubId: string, heartbeatMs: number, onLost: (url: string) => void): Promise<DialLeases> {
    const leases = new DialLeases(await leaseBucket(broker, bucket, 3 * heartbeatMs), hubId, heartbeatMs, onLost);
    leases.timer = setInterval(() => void leases.renewAll(), heartbeatMs);
    leases.timer.unref();
    return leases;
  }

  /** True when this hub holds (or just won) the lease of `url`. */
  async acquire(url: string): Promise<boolean> {
    if (this.closed) return false;
    if (this.held.has(url)) return true;
    try {
      this.held.set(url, { rev: await this.kv.create(dialKey(url), this.hubId), at: Date.now() });
      return true;
    } catch {
      return false;
    }
  }

  /** Whether this hub holds the lease of `url`. */
  holds(url: string): boolean {
    return this.held.has(url);
  }

  /** The hub holding `url`'s lease, or null. */
  async holder(url: string): Promise<string | null> {
    const e = await this.kv.get(dialKey(url));
    return e && e.operation === 'PUT' ? e.string() : null;
  }

  /** Gives up the lease of `url` (stopped dialing it). */
  async release(url: string): Promise<void> {
    const lease = this.held.get(url);
    if (lease === undefined) return;
    this.held.delete(url);
    await this.kv.delete(dialKey(url), { previousSeq: lease.rev }).catch(() => undefined);
  }

  private async renewAll(): Promise<void> {
    if (!this.closed) await Promise.all([...this.held.keys()].map((url) => this.renew(url)));
  }

  private async renew(url: string): Promise<void> {
    const lease = this.held.get(url);
    if (lease === undefined) return;
    try {
      this.held.set(url, { rev: await this.kv.update(dialKey(url), this.hubId, lease.rev), at: Date.now() });
    } catch (err) {
      // Refused on the revision: another hub holds it now. The broker away: the key lapses 3
      // heartbeats after its last renewal, so the URL is given up before another hub can win it.
      const taken = /wrong last sequence/i.test(String((err as Error)?.message ?? err));
      if (taken || Date.now() - lease.at >= 2 * this.heartbeatMs) {
        this.held.delete(url);
        this.onLost(url);
      }
    }
  }

  /** Stops renewing and releases every lease; safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.held.keys()].map((url) => this.release(url)));
  }
}
