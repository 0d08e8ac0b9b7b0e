/**
 * Ended tasks kept in memory for a while, so that `GET /tasks/{id}`, `subscribe` and a waiting
 * `/add_task` read them without the database. Bounded in count and in bytes (oldest dropped
 * first) and in time (`HUB_RESULT_TTL_MS`); what falls out is still read from the task store.
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
  binaries: readonly Uint8Array[] | null;
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

/** Bytes an ended task holds: its end frame's text and its media. */
function bytesOf(t: EndedTask): number {
  let n = t.text.length;
  if (t.binaries) for (const b of t.binaries) n += b.length;
  return n;
}

/**
 * The latest ended tasks, at most `limit` of them and `maxBytes` of frames and media (the newest
 * is kept even when it alone is larger), each for `ttlMs`. Older ones are read from the database.
 */
export class EndedTasks {
  private readonly map = new Map<string, EndedTask>();
  /**
   * Entries in the order they were added; those before `start` are gone. Evicting the oldest
   * through `map.keys()` made V8 walk every deleted slot at the front of the Map, several
   * microseconds per task under load; this queue is compacted once half of it is gone.
   */
  private queue: Array<EndedTask | undefined> = [];
  private start = 0;
  private bytes = 0;

  constructor(
    private readonly limit: number,
    private readonly maxBytes: number,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  add(task: EndedTask): void {
    if (this.limit === 0) return;
    this.remove(task.id);
    this.map.set(task.id, task);
    this.bytes += bytesOf(task);
    this.queue.push(task);
    while (this.map.size > 1 && (this.map.size > this.limit || this.bytes > this.maxBytes)) this.dropOldest();
  }

  /** The ended task, unless it expired or fell out. */
  get(id: string): EndedTask | undefined {
    const t = this.map.get(id);
    if (t && t.finishedAt + this.ttlMs < this.now()) {
      this.remove(id);
      return undefined;
    }
    return t;
  }

  /** Drops expired entries (insertion order is end order, so it stops at the first live one). */
  purge(): void {
    const limit = this.now() - this.ttlMs;
    while (this.start < this.queue.length) {
      const t = this.queue[this.start];
      if (t && t.finishedAt >= limit && this.map.get(t.id) === t) break;
      this.dropOldest();
    }
  }

  get size(): number {
    return this.map.size;
  }

  /** Bytes of frames and media held. */
  get heldBytes(): number {
    return this.bytes;
  }

  private remove(id: string): void {
    const t = this.map.get(id);
    if (!t) return;
    this.map.delete(id);
    this.bytes -= bytesOf(t);
  }

  private dropOldest(): void {
    const t = this.queue[this.start];
    this.queue[this.start++] = undefined;
    // An entry replaced or removed since it was queued is not the map's any more.
    if (t && this.map.get(t.id) === t) this.remove(t.id);
    if (this.start >= 1024 && this.start * 2 >= this.queue.length) {
      this.queue = this.queue.slice(this.start);
      this.start = 0;
    }
  }
}
