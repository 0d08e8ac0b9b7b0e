/**
 * Long-lived memory for the media of tasks the hub holds. A task's attachments arrive in buffers
 * of their own (one ArrayBuffer each, made by the WebSocket reader) and the hub keeps them until
 * the task ends, for a retry on another worker: long enough, under load, to outlive two young
 * collections and reach V8's old generation, where only a full collection frees them, and their
 * bytes, counted as external memory, start one after every few tasks (docs/performance.md,
 * media). Copied here, into a few large ArrayBuffers made once and reused, the received buffers
 * die young and the held bytes add nothing for the collector to track.
 *
 * Each slab is a bump allocator: views are cut from its free end, and it starts over from the
 * beginning once every view cut from it is released. A view is released when every holder let
 * it go: the task (`release` at its end) and each write of it to a socket (`retain` before,
 * `release` once written or failed). A bytes object too small or too large for the pool, or met
 * while every slab is in use, is kept as it is.
 */

/** Smallest attachment worth copying: smaller ones share the reader's pooled buffers anyway. */
export const POOLED_MIN_BYTES = 64 * 1024;
/** Bytes of one slab; an attachment larger than this is kept as it is. */
export const SLAB_BYTES = 8 * 1024 * 1024;
/** Most slabs: the pool's bound, in bytes, is SLAB_BYTES times this. */
export const MAX_SLABS = 8;

interface Slab {
  readonly bytes: Uint8Array;
  /** Bytes cut from the start. */
  used: number;
  /** Views cut from it and not released. */
  live: number;
}

export class MediaPool {
  readonly #slabs: Slab[] = [];
  /** Holders of each view cut from a slab, by view. */
  readonly #views = new Map<Uint8Array, { slab: Slab; holders: number }>();

  constructor(
    private readonly slabBytes = SLAB_BYTES,
    private readonly maxSlabs = MAX_SLABS,
    private readonly minBytes = POOLED_MIN_BYTES,
  ) {}

  /** Views held now, and bytes of the slabs made (the pool keeps them). */
  get size(): { views: number; slabBytes: number } {
    return { views: this.#views.size, slabBytes: this.#slabs.length * this.slabBytes };
  }

  /** A copy of `bytes` in the pool, held once (by its task); `bytes` itself when it stays out. */
  take(bytes: Uint8Array): Uint8Array {
    const n = bytes.byteLength;
    if (n < this.minBytes || n > this.slabBytes) return bytes;
    const slab = this.#slabWithRoom(n);
    if (!slab) return bytes;
    const view = slab.bytes.subarray(slab.used, slab.used + n);
    view.set(bytes);
    slab.used += (n + 7) & ~7;
    slab.live++;
    this.#views.set(view, { slab, holders: 1 });
    return view;
  }

  /** One more holder of `view` (a write to a socket); false when it is not the pool's. */
  retain(view: Uint8Array): boolean {
    const v = this.#views.get(view);
    if (!v) return false;
    v.holders++;
    return true;
  }

  /** One holder less of `view`; its bytes are reused once none is left. A view not the pool's is ignored. */
  release(view: Uint8Array): void {
    const v = this.#views.get(view);
    if (!v || --v.holders > 0) return;
    this.#views.delete(view);
    if (--v.slab.live === 0) v.slab.used = 0;
  }

  #slabWithRoom(n: number): Slab | null {
    for (const s of this.#slabs) if (s.used + n <= this.slabBytes) return s;
    if (this.#slabs.length >= this.maxSlabs) return null;
    const slab: Slab = { bytes: new Uint8Array(this.slabBytes), used: 0, live: 0 };
    this.#slabs.push(slab);
    return slab;
  }
}

/** Every Uint8Array inside `value` (the args of a task), each passed to `fn`; one that `fn` answers differently is put in its place. */
export function mapBytes(value: unknown, fn: (bytes: Uint8Array) => Uint8Array): void {
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || v instanceof Uint8Array) continue;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const x = v[i];
        if (x instanceof Uint8Array) {
          const y = fn(x);
          if (y !== x) v[i] = y;
        } else if (typeof x === 'object' && x !== null) stack.push(x);
      }
      continue;
    }
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      const x = o[k];
      if (x instanceof Uint8Array) {
        const y = fn(x);
        if (y !== x) o[k] = y;
      } else if (typeof x === 'object' && x !== null) stack.push(x);
    }
  }
}
