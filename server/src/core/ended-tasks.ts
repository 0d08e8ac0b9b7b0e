/**
 * Ended tasks kept in memory for a while, so that `GET /tasks/{id}`, `subscribe` and a waiting
 * `/add_task` read them without the database. Bounded in count and in bytes (oldest dropped
 * first) and in time (`HUB_RESULT_TTL_MS`); what falls out is still read from the task store.
 */
import { resolveRefs } from '@utils-hub/protocol';

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
  /**
   * The result with media as `{mime, name?, data: Buffer}` (succeeded), as the hub parsed it;
   * absent from the entries `EndedTasks` holds (read it with `resultOf`).
   */
  result?: unknown;
  /** `{code, message, ...details}` (failed, canceled). */
  error?: Record<string, unknown> & { code: string; message: string };
  progress: number | null;
  message: string | null;
  attempts: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number;
  /** The client key it belongs to (docs/protocol.md, "Whose task it is"); null or absent: none was required. */
  owner?: string | null;
}

/** Bytes of a JS string on the heap, counted as two per UTF-16 unit (V8 may use one for Latin-1). */
const stringBytes = (s: string | null | undefined) => (s ? 2 * s.length : 0);

/** Bytes of the fields every entry has besides its strings and media (the object, numbers, map slot). */
const ENTRY_OVERHEAD = 256;

/**
 * Bytes an ended task holds in this cache: its end frame's text, its media, its last progress
 * message, its error, and the entry itself. Entries keep no parsed result (see `resultOf`), so
 * this is what they really hold, whatever the shape of the result.
 */
export function bytesOf(t: EndedTask): number {
  let n = ENTRY_OVERHEAD + stringBytes(t.text) + stringBytes(t.message) + stringBytes(t.id) + stringBytes(t.owner);
  if (t.binaries) for (const b of t.binaries) n += b.length;
  if (t.error) n += stringBytes(JSON.stringify(t.error));
  return n;
}

/**
 * The result of a succeeded task, with media as `{mime, name?, data: Buffer}`: the parsed value
 * when the entry has it, else parsed from its end frame on demand. A parsed result may take ten
 * times its text in heap (`[[],[],...]`: each empty array is an object), so the cache keeps text.
 */
export function resultOf(t: EndedTask): unknown {
  if (t.result !== undefined) return t.result;
  // A fresh parse: its refs are resolved in place, as the codec resolved them when it came.
  const message = JSON.parse(t.text) as { result?: unknown };
  if (t.binaries?.length) resolveRefs(message, t.binaries, 1);
  return message.result ?? null;
}

/**
 * The latest ended tasks, at most `limit` of them and `maxBytes` as `bytesOf` counts them (the
 * newest is kept even when it alone is larger), each for `ttlMs`. Older ones are read from the
 * database. An entry is stored without its parsed result: `resultOf` parses its text when read.
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

  add(ended: EndedTask): void {
    if (this.limit === 0) return;
    const task: EndedTask = ended.result === undefined ? ended : { ...ended, result: undefined };
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

  /** Bytes held, as `bytesOf` counts them. */
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
