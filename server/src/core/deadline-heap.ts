/**
 * A binary min-heap of deadlines with lazy invalidation, for the dispatcher.
 *
 * An entry is cancelled by flagging it (`invalidate`), not by searching for it: the heap drops
 * flagged entries when they reach the top, and rebuilds itself when they outnumber the live
 * ones, so every operation stays O(log n) amortized however many deadlines come and go.
 */

/** One deadline. `at` is in ms since epoch (per the dispatcher's clock). */
export interface DeadlineEntry<T> {
  readonly at: number;
  /** Insertion order: breaks ties between equal `at`, so that equal deadlines fire first in, first out. */
  readonly order: number;
  readonly value: T;
  /** False once invalidated or popped. */
  live: boolean;
}

/** Rebuild when more than this many entries are dead and they outnumber the live ones. */
const COMPACT_MIN_DEAD = 64;

export class DeadlineHeap<T> {
  private items: DeadlineEntry<T>[] = [];
  private nextOrder = 0;
  private dead = 0;

  /** Live entries. */
  get size(): number {
    return this.items.length - this.dead;
  }

  /** Adds a deadline and returns its entry (keep it to invalidate it later). */
  push(at: number, value: T): DeadlineEntry<T> {
    const entry: DeadlineEntry<T> = { at, order: this.nextOrder++, value, live: true };
    this.items.push(entry);
    this.up(this.items.length - 1);
    return entry;
  }

  /** Cancels an entry; harmless when it is already dead or popped. */
  invalidate(entry: DeadlineEntry<T> | null | undefined): void {
    if (!entry?.live) return;
    entry.live = false;
    this.dead++;
    if (this.dead > COMPACT_MIN_DEAD && this.dead * 2 > this.items.length) this.compact();
  }

  /** The earliest live entry, or undefined. */
  peek(): DeadlineEntry<T> | undefined {
    this.dropDeadTop();
    return this.items[0];
  }

  /** Removes and returns the earliest live entry, or undefined. The entry is dead afterwards. */
  pop(): DeadlineEntry<T> | undefined {
    this.dropDeadTop();
    const top = this.items[0];
    if (!top) return undefined;
    this.removeTop();
    top.live = false;
    return top;
  }

  private dropDeadTop(): void {
    while (this.items.length > 0 && !this.items[0].live) {
      this.removeTop();
      this.dead--;
    }
  }

  private removeTop(): void {
    const last = this.items.pop() as DeadlineEntry<T>;
    if (this.items.length > 0) {
      this.items[0] = last;
      this.down(0);
    }
  }

  private compact(): void {
    this.items = this.items.filter((e) => e.live);
    this.dead = 0;
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private less(a: DeadlineEntry<T>, b: DeadlineEntry<T>): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }

  private up(i: number): void {
    const items = this.items;
    const entry = items[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(entry, items[parent])) break;
      items[i] = items[parent];
      i = parent;
    }
    items[i] = entry;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const entry = items[i];
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.less(items[child + 1], items[child])) child++;
      if (!this.less(items[child], entry)) break;
      items[i] = items[child];
      i = child;
    }
    items[i] = entry;
  }
}
