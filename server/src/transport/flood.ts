/**
 * Counts a peer's bad messages in a sliding window: past the limit the connection is closed
 * with 1008 (docs/protocol.md section 5: "after many in a short time it may close").
 */
export class FloodGuard {
  private count = 0;
  private windowStart = 0;

  constructor(
    private readonly limit = 50,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records one bad message; true when the peer is past the limit. */
  hit(): boolean {
    const t = this.now();
    if (t - this.windowStart > this.windowMs) {
      this.windowStart = t;
      this.count = 0;
    }
    return ++this.count > this.limit;
  }
}
