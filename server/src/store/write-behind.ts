/**
 * A write-behind buffer: `put()` returns at once and the latest entry of each id is written soon
 * after, in batches, by a target that knows the database. A failed write keeps its entries (a
 * newer put of the same id wins) and is retried with jittered exponential backoff; the bytes the
 * entries hold are counted, and watchers hear when they pass a bound (a backlog) and fall back.
 */
import { backoffDelay } from '@utils-hub/protocol';

/** What the buffer needs to know of an entry. */
export interface Buffered {
  /** The entry's key: a newer entry of the same id replaces one not yet written. */
  readonly id: string;
  /** Rough size of the entry in a statement, in bytes. */
  readonly bytes: number;
  /** Bytes the entry holds in memory (counted towards the backlog). */
  readonly held: number;
}

/**
 * Called once an entry is written (`dropped: false`), or given up (`dropped: true`). An entry
 * replaced by a newer put of the same id before it was written passes its callbacks on to the
 * newer one: they are called, in order, when that one is written.
 */
export type WrittenCallback = (dropped: boolean) => void;

/** The callbacks of `older` then those of `newer`: writing `newer` writes `older` too. */
function joinCallbacks(older: WrittenCallback[] | undefined, newer: WrittenCallback[] | undefined): WrittenCallback[] | undefined {
  if (!older) return newer;
  if (!newer) return older;
  return [...older, ...newer];
}

/** Bounds and delays of a {@link WriteBehind}; every one a positive integer (`flushDelayMs` may be 0). */
export interface WriteBehindOptions {
  /** Most entries per batch. */
  batchSize: number;
  /** Bound of the entries' `bytes` in one batch; a larger entry goes alone. */
  maxBatchBytes: number;
  /**
   * How long a put entry may wait for its batch, in ms. With 0 (group commit), a write starts at
   * the event loop's next turn, and the entries put while a write runs go together in the next.
   */
  flushDelayMs: number;
  /** Ceiling of the first delay before retrying a failed write, in ms; it doubles up to `retryMaxMs`, each delay drawn in the upper half of its ceiling (backoffDelay). */
  retryMinMs: number;
  /** Longest delay between retries, in ms. */
  retryMaxMs: number;
  /** How long `close()` keeps retrying a failing write before giving up, in ms. */
  closeTimeoutMs: number;
  /** Held bytes above which the buffer says it is backlogged; it says it caught up at half. */
  backlogBytes: number;
}

/** Where a {@link WriteBehind} writes. */
export interface WriteBehindTarget<E extends Buffered> {
  /** Runs before each batch is taken (say, to learn the database's bounds); a rejection is a failed write. */
  prepare(): Promise<void>;
  /** Largest `bytes` of an entry that can be written at all, or null for no bound. */
  maxEntryBytes(): number | null;
  /** The error to report for entries over `maxEntryBytes()`, dropped. */
  oversize(entries: E[]): Error;
  /** Writes a batch. Resolves once written (or its bad entries dropped and reported); rejects to keep it for a retry. */
  write(batch: E[]): Promise<void>;
  /** Hears of a failed write: `dropped` false, the entries are kept and retried; true, given up. */
  report(err: unknown, entries: E[], dropped: boolean): void;
  /**
   * Called when `newer` replaces `older` (of the same id) before `older` was written: what must
   * be written with `older` but is not in `newer` (say, rows committed beside it) moves over.
   */
  supersede?(older: E, newer: E): void;
}

/** Write-behind buffer of entries keyed by id, written in batches by a {@link WriteBehindTarget}. */
export class WriteBehind<E extends Buffered> {
  readonly #opts: Readonly<WriteBehindOptions>;
  readonly #target: WriteBehindTarget<E>;
  /** Latest unwritten entry per id, in order of first put. */
  readonly #pending = new Map<string, E>();
  /** Entries of the batch in flight. */
  readonly #writing = new Map<string, E>();
  #timer: NodeJS.Timeout | null = null;
  #timerAt = 0;
  /** The write started at the event loop's next turn (a delay of 0). */
  #immediate: NodeJS.Immediate | null = null;
  /** What waits for an entry to be written, by entry (pending or writing). */
  readonly #waiting = new Map<E, WrittenCallback[]>();
  #running: Promise<void> | null = null;
  /** Consecutive failed writes. */
  #failures = 0;
  /** When the first of those failed writes failed (ms since the epoch); null after a write went through. */
  #failingSince: number | null = null;
  #stopped = false;
  #closing: Promise<void> | null = null;
  /** Bytes held by the entries not yet written (pending and writing). */
  #heldBytes = 0;
  #backlogged = false;
  readonly #backlogWatchers: Array<(backlogged: boolean) => void> = [];

  constructor(options: Readonly<WriteBehindOptions>, target: WriteBehindTarget<E>) {
    this.#opts = options;
    this.#target = target;
  }

  /** Entries put and not yet written. */
  get count(): number {
    return this.#pending.size + this.#writing.size;
  }

  /** Bytes held by the entries put and not yet written. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  /**
   * Since when (ms since the epoch) every write has failed, its entries kept for a retry; null
   * while writes go through. An entry dropped after repeated refusals does not count: the others went.
   */
  get failingSince(): number | null {
    return this.#failingSince;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closing !== null;
  }

  /** The unwritten entry of `id` (pending or being written), if any. */
  peek(id: string): E | undefined {
    return this.#pending.get(id) ?? this.#writing.get(id);
  }

  /** Calls `watcher(true)` when the held bytes pass `backlogBytes`, and `watcher(false)` once down to half. */
  watchBacklog(watcher: (backlogged: boolean) => void): void {
    this.#backlogWatchers.push(watcher);
  }

  /**
   * Buffers an entry, replacing an unwritten one of the same id; it is written within
   * `flushDelayMs`, or `delayMs` when given (0: at the event loop's next turn, or after the write
   * running now; longer: it rides with an earlier write of other entries, if any).
   * `onWritten` is called once it is (see {@link WrittenCallback}), never from inside this call;
   * while writes fail, not before one succeeds.
   */
  put(entry: E, onWritten?: WrittenCallback, delayMs?: number): void {
    const previous = this.#pending.get(entry.id);
    if (previous) this.#target.supersede?.(previous, entry);
    this.#pending.set(entry.id, entry);
    const older = previous && this.#waiting.get(previous);
    if (older) this.#waiting.delete(previous!);
    const callbacks = joinCallbacks(older, onWritten && [onWritten]);
    if (callbacks) this.#waiting.set(entry, callbacks);
    this.#account(entry.held - (previous?.held ?? 0));
    if (this.#failures > 0) return; // a retry is already scheduled
    this.#schedule(this.#pending.size >= this.#opts.batchSize ? 0 : (delayMs ?? this.#opts.flushDelayMs));
  }

  /** Writes every entry put so far, now. Rejects when a write fails; the entries are then kept and retried. */
  async flush(): Promise<void> {
    if (this.#running) await this.#running.catch(() => {});
    if (this.#pending.size === 0) return;
    await this.#start();
  }

  /**
   * Writes what is pending, retrying for up to `closeTimeoutMs`, then stops the timers. Rejects
   * with the last write's error when entries could not be written. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#stopped = true; // from here on, close() drives the retries
    this.#clearTimer();
    const deadline = Date.now() + this.#opts.closeTimeoutMs;
    let attempt = 0;
    try {
      for (;;) {
        try {
          await this.flush();
          return;
        } catch (err) {
          const delay = backoffDelay(attempt++, this.#opts.retryMinMs, this.#opts.retryMaxMs);
          if (Date.now() + delay > deadline) throw err;
          await new Promise((resolve) => setTimeout(resolve, delay));
        }
      }
    } finally {
      this.#clearTimer();
    }
  }

  #account(delta: number): void {
    this.#heldBytes += delta;
    const backlogged = this.#backlogged ? this.#heldBytes > this.#opts.backlogBytes / 2 : this.#heldBytes > this.#opts.backlogBytes;
    if (backlogged === this.#backlogged) return;
    this.#backlogged = backlogged;
    for (const w of this.#backlogWatchers) {
      try {
        w(backlogged);
      } catch {
        // A faulty watcher must not break the buffer.
      }
    }
  }

  /**
   * Calls back, with `dropped`, what waits for these entries (those the target gave up on its
   * own say so here; a written batch is settled by the buffer).
   */
  settle(entries: readonly E[], dropped: boolean): void {
    for (const e of entries) {
      const callbacks = this.#waiting.get(e);
      if (!callbacks) continue;
      this.#waiting.delete(e);
      for (const cb of callbacks) {
        try {
          cb(dropped);
        } catch {
          // A faulty callback must not break the buffer.
        }
      }
    }
  }

  #clearTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#immediate = null;
  }

  #schedule(delayMs: number): void {
    if (this.#running || this.#stopped) return; // a running write picks new entries up when done
    if (this.#immediate) return;
    if (delayMs <= 0) {
      // Group commit: what the event loop takes in this turn (other sockets' messages) joins the
      // batch; setTimeout(0) would add a millisecond to every write.
      this.#clearTimer();
      this.#immediate = setImmediate(() => {
        this.#immediate = null;
        this.#start().catch(() => {}); // reported through the target; retried by #start
      });
      this.#immediate.unref();
      return;
    }
    const at = Date.now() + delayMs;
    if (this.#timer) {
      if (this.#timerAt <= at) return;
      clearTimeout(this.#timer);
    }
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#start().catch(() => {}); // reported through the target (app.ts: logged, counted in /metrics); retried by #start
    }, delayMs);
    // The owner closes the buffer on shutdown; a pending timer must not keep a process alive.
    this.#timer.unref();
  }

  #failed(): void {
    if (this.#failures++ === 0) this.#failingSince = Date.now();
  }

  #backoff(): number {
    return backoffDelay(this.#failures - 1, this.#opts.retryMinMs, this.#opts.retryMaxMs);
  }

  #start(): Promise<void> {
    if (this.#running) return this.#running;
    this.#clearTimer();
    const run = this.#drain().finally(() => {
      this.#running = null;
      if (this.#pending.size > 0) this.#schedule(this.#failures > 0 ? this.#backoff() : 0);
    });
    this.#running = run;
    return run;
  }

  async #drain(): Promise<void> {
    while (this.#pending.size > 0) {
      try {
        await this.#target.prepare();
      } catch (err) {
        this.#failed();
        this.#report(err, [...this.#pending.values()], false);
        throw err;
      }
      const batch = this.#take();
      if (batch.length === 0) continue;
      try {
        await this.#target.write(batch);
        this.#failures = 0;
        this.#failingSince = null;
        this.#account(-batch.reduce((n, p) => n + p.held, 0)); // written, or dropped and reported
        this.settle(batch, false); // the dropped ones were settled when reported
      } catch (err) {
        // Keep the entries for the retry, unless the id was put again meanwhile (newer wins,
        // and takes over what waits for the older entry).
        let superseded = 0;
        for (const p of batch) {
          const newer = this.#pending.get(p.id);
          if (!newer) {
            this.#pending.set(p.id, p);
            continue;
          }
          superseded += p.held;
          this.#target.supersede?.(p, newer);
          const older = this.#waiting.get(p);
          if (older) {
            this.#waiting.delete(p);
            this.#waiting.set(newer, joinCallbacks(older, this.#waiting.get(newer))!);
          }
        }
        this.#account(-superseded);
        this.#failed();
        this.#report(err, batch, false);
        throw err;
      } finally {
        this.#writing.clear();
      }
    }
  }

  /** The next batch, in order of first put; entries that can never be written are dropped and reported. */
  #take(): E[] {
    const limit = this.#target.maxEntryBytes();
    const maxBytes = limit === null ? this.#opts.maxBatchBytes : Math.min(this.#opts.maxBatchBytes, limit);
    const batch: E[] = [];
    const tooBig: E[] = [];
    let bytes = 0;
    for (const p of this.#pending.values()) {
      const id = p.id;
      if (limit !== null && p.bytes > limit) {
        tooBig.push(p);
        this.#pending.delete(id);
        this.#account(-p.held);
        continue;
      }
      if (batch.length >= this.#opts.batchSize) break;
      if (batch.length > 0 && bytes + p.bytes > maxBytes) break;
      batch.push(p);
      bytes += p.bytes;
      this.#pending.delete(id);
      this.#writing.set(id, p);
    }
    if (tooBig.length > 0) this.#report(this.#target.oversize(tooBig), tooBig, true);
    return batch;
  }

  #report(err: unknown, entries: E[], dropped: boolean): void {
    if (dropped) this.settle(entries, true);
    try {
      this.#target.report(err, entries, dropped);
    } catch {
      // A faulty listener must not break the buffer.
    }
  }
}
