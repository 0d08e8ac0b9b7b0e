/**
 * Token buckets per client (its key, else its address): `HUB_RATE_LIMIT` requests per second with
 * bursts of as many, over REST requests and client WebSocket requests together. The table is
 * bounded: past `maxClients` entries, full buckets (idle clients) are dropped first.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    /** Requests per second per client; 0 turns limiting off. */
    private readonly perSecond: number,
    private readonly now: () => number = Date.now,
    private readonly maxClients = 100_000,
  ) {}

  get enabled(): boolean {
    return this.perSecond > 0;
  }

  /** Takes one token for `client`; false when it has none left. */
  take(client: string): boolean {
    if (this.perSecond <= 0) return true;
    const t = this.now();
    let b = this.buckets.get(client);
    if (!b) {
      if (this.buckets.size >= this.maxClients) this.prune(t);
      b = { tokens: this.perSecond, at: t };
      this.buckets.set(client, b);
    } else {
      b.tokens = Math.min(this.perSecond, b.tokens + ((t - b.at) / 1000) * this.perSecond);
      b.at = t;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private prune(t: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((t - b.at) / 1000) * this.perSecond >= this.perSecond) this.buckets.delete(k);
    }
    // Everyone busy: forget the oldest half rather than grow without bound.
    if (this.buckets.size >= this.maxClients) {
      let n = this.buckets.size / 2;
      for (const k of this.buckets.keys()) {
        if (n-- <= 0) break;
        this.buckets.delete(k);
      }
    }
  }
}

/** The identity a client is limited by: a hash-free label of its key, else its address. */
export function clientIdentity(key: string | null, address: string | undefined): string {
  return key !== null ? `k:${key}` : `a:${address ?? '?'}`;
}
