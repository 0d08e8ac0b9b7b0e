/**
 * One service's wait queue for the dispatcher: first in, first out, with a front door for
 * requeued tasks, O(1) removal from the middle and a task's position in O(log n).
 *
 * Storage is a ring buffer, so `shift()` never copies a long array. A task that leaves from the
 * middle (canceled, timed out) is only flagged (`inQueue = false`); the flagged slots are
 * skipped at the front and swept out when they outnumber the live ones.
 *
 * Positions: each task gets a slot number as it comes in (counting up at the back, down at the
 * front), and a Fenwick tree counts the live tasks by slot, so a task's position is the count
 * of live slots below its own. Slots are renumbered (O(n)) when one end runs out of room, which
 * a run of at least n/2 entries at that end pays for.
 */

/** What the queue needs of a task. */
export interface Queueable {
  /** True while the task waits in this queue; cleared by `remove` or `popFront`. */
  inQueue: boolean;
  /** Never started yet (counts against the queue limit; requeued tasks do not). */
  readonly fresh: boolean;
  /** Bytes it holds while it waits (its args), counted in `bytes` and in the shared total. */
  readonly bytes?: number;
  /** Its slot number in the queue's position index while it waits; the queue's own. */
  queueSlot?: number;
}

/**
 * Counts of live slots with prefix sums in O(log n): a Fenwick (binary indexed) tree.
 */
class SlotCounts {
  private tree: Int32Array;

  constructor(readonly size: number) {
    this.tree = new Int32Array(size + 1);
  }

  add(slot: number, delta: number): void {
    for (let i = slot + 1; i <= this.size; i += i & -i) this.tree[i] += delta;
  }

  /** Live slots below `slot`. */
  below(slot: number): number {
    let n = 0;
    for (let i = slot; i > 0; i -= i & -i) n += this.tree[i];
    return n;
  }

  /** Builds the tree in O(size) from slots [first, first + count) all live. */
  fill(first: number, count: number): void {
    const t = this.tree;
    t.fill(0);
    for (let i = first + 1; i <= first + count; i++) t[i] = 1;
    for (let i = 1; i <= this.size; i++) {
      const j = i + (i & -i);
      if (j <= this.size) t[j] += t[i];
    }
  }
}

/** A count of bytes shared by several queues (all the services' queues of one dispatcher). */
export interface ByteTotal {
  bytes: number;
}

const MIN_CAPACITY = 16;
const COMPACT_MIN_DEAD = 64;
const MIN_SLOTS = 64;

export class TaskQueue<T extends Queueable> {
  private buf: (T | undefined)[] = new Array(MIN_CAPACITY);
  private head = 0;
  /** Slots used in the ring, dead ones included. */
  private used = 0;
  private live = 0;
  private freshLive = 0;
  private liveBytes = 0;
  private slots = new SlotCounts(MIN_SLOTS);
  /** Next slot at the front (counting down) and at the back (counting up). */
  private frontSlot = MIN_SLOTS / 2 - 1;
  private backSlot = MIN_SLOTS / 2;

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
    if (this.backSlot >= this.slots.size) this.renumber();
    task.queueSlot = this.backSlot++;
    this.grow();
    this.buf[(this.head + this.used) & (this.buf.length - 1)] = task;
    this.used++;
    this.admit(task);
  }

  /** Puts a task at the front (a requeue). */
  pushFront(task: T): void {
    if (this.frontSlot < 0) this.renumber();
    task.queueSlot = this.frontSlot--;
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

  /** How many wait before `task` (O(log n)), or null when it does not wait here. */
  positionOf(task: T): number | null {
    if (!task.inQueue || task.queueSlot === undefined) return null;
    return this.slots.below(task.queueSlot);
  }

  /** Takes every waiting task out, in order. */
  drain(): T[] {
    const out: T[] = [];
    for (let t = this.popFront(); t; t = this.popFront()) out.push(t);
    this.buf = new Array(MIN_CAPACITY);
    this.head = 0;
    this.used = 0;
    this.slots = new SlotCounts(MIN_SLOTS);
    this.frontSlot = MIN_SLOTS / 2 - 1;
    this.backSlot = MIN_SLOTS / 2;
    return out;
  }

  private admit(task: T): void {
    this.slots.add(task.queueSlot!, 1);
    task.inQueue = true;
    this.live++;
    if (task.fresh) this.freshLive++;
    const b = task.bytes ?? 0;
    this.liveBytes += b;
    this.total.bytes += b;
  }

  private leave(task: T): void {
    this.slots.add(task.queueSlot!, -1);
    task.inQueue = false;
    this.live--;
    if (task.fresh) this.freshLive--;
    const b = task.bytes ?? 0;
    this.liveBytes -= b;
    this.total.bytes -= b;
  }

  /**
   * Gives the live tasks slots 0.. in order, in a tree with room for as many again at each end.
   * Called before the task that needs room is stored, so it is not among them.
   */
  private renumber(): void {
    let size = MIN_SLOTS;
    while (size < this.live * 4) size *= 2;
    const first = size / 4;
    let slot = first;
    for (let i = 0; i < this.used; i++) {
      const t = this.buf[(this.head + i) & (this.buf.length - 1)] as T;
      if (t.inQueue) t.queueSlot = slot++;
    }
    this.slots = new SlotCounts(size);
    this.slots.fill(first, this.live);
    this.frontSlot = first - 1;
    this.backSlot = slot;
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
