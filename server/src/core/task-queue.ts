/**
 * One service's wait queue for the dispatcher: first in, first out, with a front door for
 * requeued tasks and O(1) removal from the middle.
 *
 * Storage is a ring buffer, so `shift()` never copies a long array. A task that leaves from the
 * middle (canceled, timed out) is only flagged (`inQueue = false`); the flagged slots are
 * skipped at the front and swept out when they outnumber the live ones.
 */

/** What the queue needs of a task. */
export interface Queueable {
  /** True while the task waits in this queue; cleared by `remove` or `popFront`. */
  inQueue: boolean;
  /** Never started yet (counts against the queue limit; requeued tasks do not). */
  readonly fresh: boolean;
  /** Bytes it holds while it waits (its args), counted in `bytes` and in the shared total. */
  readonly bytes?: number;
}

/** A count of bytes shared by several queues (all the services' queues of one dispatcher). */
export interface ByteTotal {
  bytes: number;
}

const MIN_CAPACITY = 16;
const COMPACT_MIN_DEAD = 64;

export class TaskQueue<T extends Queueable> {
  private buf: (T | undefined)[] = new Array(MIN_CAPACITY);
  private head = 0;
  /** Slots used in the ring, dead ones included. */
  private used = 0;
  private live = 0;
  private freshLive = 0;
  private liveBytes = 0;

  /** `total`, when given, also counts the bytes of the tasks waiting here. */
  constructor(private readonly total: ByteTotal = { bytes: 0 }) {}

  /** Bytes of the tasks waiting (as they declare them). */
  get bytes(): number {
    return this.liveBytes;
  }

  /** Tasks waiting. */
  get length(): number {
    return this.live;
  }

  /** Tasks waiting that were never started (what the queue limit bounds). */
  get freshLength(): number {
    return this.freshLive;
  }

  /** Appends a task at the back. */
  pushBack(task: T): void {
    this.grow();
    this.buf[(this.head + this.used) & (this.buf.length - 1)] = task;
    this.used++;
    this.admit(task);
  }

  /** Puts a task at the front (a requeue). */
  pushFront(task: T): void {
    this.grow();
    this.head = (this.head - 1) & (this.buf.length - 1);
    this.buf[this.head] = task;
    this.used++;
    this.admit(task);
  }

  /** Takes the first waiting task out, or undefined. */
  popFront(): T | undefined {
    this.dropDeadFront();
    if (this.used === 0) return undefined;
    const task = this.takeFront() as T;
    this.leave(task);
    return task;
  }

  /** Takes a waiting task out wherever it is (O(1): flagged, swept later). */
  remove(task: T): void {
    if (!task.inQueue) return;
    this.leave(task);
    const dead = this.used - this.live;
    if (dead > COMPACT_MIN_DEAD && dead > this.live) this.compact();
  }

  /** How many wait before `task` (O(position)), or null when it does not wait here. */
  positionOf(task: T): number | null {
    if (!task.inQueue) return null;
    let pos = 0;
    for (let i = 0; i < this.used; i++) {
      const t = this.buf[(this.head + i) & (this.buf.length - 1)] as T;
      if (t === task) return pos;
      if (t.inQueue) pos++;
    }
    return null;
  }

  /** Takes every waiting task out, in order. */
  drain(): T[] {
    const out: T[] = [];
    for (let t = this.popFront(); t; t = this.popFront()) out.push(t);
    this.buf = new Array(MIN_CAPACITY);
    this.head = 0;
    this.used = 0;
    return out;
  }

  private admit(task: T): void {
    task.inQueue = true;
    this.live++;
    if (task.fresh) this.freshLive++;
    const b = task.bytes ?? 0;
    this.liveBytes += b;
    this.total.bytes += b;
  }

  private leave(task: T): void {
    task.inQueue = false;
    this.live--;
    if (task.fresh) this.freshLive--;
    const b = task.bytes ?? 0;
    this.liveBytes -= b;
    this.total.bytes -= b;
  }

  private takeFront(): T | undefined {
    const task = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) & (this.buf.length - 1);
    this.used--;
    return task;
  }

  private dropDeadFront(): void {
    while (this.used > 0 && !(this.buf[this.head] as T).inQueue) this.takeFront();
  }

  private grow(): void {
    if (this.used < this.buf.length) return;
    this.resize(this.buf.length * 2, false);
  }

  private compact(): void {
    let cap = MIN_CAPACITY;
    while (cap < this.live * 2) cap *= 2;
    this.resize(cap, true);
  }

  private resize(capacity: number, liveOnly: boolean): void {
    const next: (T | undefined)[] = new Array(capacity);
    let n = 0;
    for (let i = 0; i < this.used; i++) {
      const t = this.buf[(this.head + i) & (this.buf.length - 1)] as T;
      if (!liveOnly || t.inQueue) next[n++] = t;
    }
    this.buf = next;
    this.head = 0;
    this.used = n;
  }
}
