/**
 * Ended tasks kept in memory for a while, so that `GET /tasks/{id}`, `subscribe` and a waiting
 * `/add_task` read them without the database. Bounded in count (oldest dropped first) and in
 * time (`HUB_RESULT_TTL_MS`); what falls out is still read from the task store.
 */

/** An ended task, with its end event as sent to clients. */
export interface EndedTask {
  id: string;
  serviceId: number;
  status: 'succeeded' | 'failed' | 'canceled';
  /** Seq of the end event. */
  seq: number;
  /** The end event's text frame and binary frames, to send again to a late subscriber. */
  text: string;
  binaries: readonly Buffer[] | null;
  /** The result with media as `{mime, name?, data: Buffer}` (succeeded). */
  result?: unknown;
  /** `{code, message, ...details}` (failed, canceled). */
  error?: Record<string, unknown> & { code: string; message: string };
  progress: number | null;
  message: string | null;
  attempts: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number;
}

export class EndedTasks {
  private readonly map = new Map<string, EndedTask>();
  /**
   * Ids in the order they were added, as a ring: evicting the oldest through `map.keys()` made V8
   * walk every deleted slot at the front of the Map, several microseconds per task under load.
   */
  private readonly ring: Array<string | undefined>;
  private head = 0;

  constructor(
    private readonly limit: number,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {
    this.ring = new Array<string | undefined>(limit);
  }

  add(task: EndedTask): void {
    if (this.limit === 0) return;
    const oldest = this.ring[this.head];
    if (oldest !== undefined) this.map.delete(oldest);
    this.ring[this.head] = task.id;
    this.head = (this.head + 1) % this.limit;
    this.map.set(task.id, task);
  }

  /** The ended task, unless it expired or fell out. */
  get(id: string): EndedTask | undefined {
    const t = this.map.get(id);
    if (t && t.finishedAt + this.ttlMs < this.now()) {
      this.map.delete(id);
      return undefined;
    }
    return t;
  }

  /** Drops expired entries (insertion order is end order, so it stops at the first live one). */
  purge(): void {
    const limit = this.now() - this.ttlMs;
    for (const [id, t] of this.map) {
      if (t.finishedAt >= limit) break;
      this.map.delete(id);
    }
  }

  get size(): number {
    return this.map.size;
  }
}
