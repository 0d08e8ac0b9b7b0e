/**
 * A small typed event emitter that runs in browsers too (Node's EventEmitter is not there).
 * An events interface gives each event its listener signature, as BullMQ's `WorkerListener` does.
 */

/** Listener signatures by event name (an interface such as `HubClientEvents`). */
// biome-ignore lint/suspicious/noExplicitAny: a map of listeners needs any[] so that each event's own parameter list fits it
export type EventMap<E> = { [K in keyof E]: (...args: any[]) => void };

/**
 * Emits typed events. A listener that throws does not stop the others nor the SDK: its error goes
 * to `onListenerError` (given by the owner), or is dropped.
 */
export class TypedEmitter<E extends EventMap<E>> {
  #listeners = new Map<keyof E, Array<{ fn: E[keyof E]; once: boolean }>>();
  readonly #onListenerError: ((err: unknown) => void) | undefined;

  constructor(onListenerError?: (err: unknown) => void) {
    this.#onListenerError = onListenerError;
  }

  /** Adds `listener` for `event`; returns this. */
  on<K extends keyof E>(event: K, listener: E[K]): this {
    return this.#add(event, listener, false);
  }

  /** Adds `listener` for the next `event` only; returns this. */
  once<K extends keyof E>(event: K, listener: E[K]): this {
    return this.#add(event, listener, true);
  }

  /** Removes `listener` from `event` (its first registration); returns this. */
  off<K extends keyof E>(event: K, listener: E[K]): this {
    const list = this.#listeners.get(event);
    const i = list ? list.findIndex((l) => l.fn === listener) : -1;
    if (i >= 0) list!.splice(i, 1);
    return this;
  }

  /** How many listeners `event` has. */
  listenerCount<K extends keyof E>(event: K): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  /** Calls the listeners of `event` in order; true when there was one. */
  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): boolean {
    const list = this.#listeners.get(event);
    if (!list || list.length === 0) return false;
    for (const l of list.slice()) {
      if (l.once) this.off(event, l.fn as E[K]);
      try {
        l.fn(...args);
      } catch (err) {
        try {
          this.#onListenerError?.(err);
        } catch {
          // An error handler that throws is not ours to fix.
        }
      }
    }
    return true;
  }

  #add<K extends keyof E>(event: K, fn: E[K], once: boolean): this {
    let list = this.#listeners.get(event);
    if (!list) this.#listeners.set(event, (list = []));
    list.push({ fn, once });
    return this;
  }
}
