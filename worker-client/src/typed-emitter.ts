/**
 * A typed face on Node's EventEmitter: an events interface (such as WorkerEvents) gives each
 * event its listener signature, as BullMQ's `WorkerListener` does.
 */
import { EventEmitter } from 'node:events';

/** Listener signatures by event name. */
// biome-ignore lint/suspicious/noExplicitAny: a map of listeners needs any[] so that each event's own parameter list fits it
export type EventMap<E> = { [K in keyof E]: (...args: any[]) => void };

/**
 * Emits typed events through a private EventEmitter. A listener that throws does not break the
 * SDK: its error is reported with `process.emitWarning`. An `error` event without a listener is
 * handed to `onUnhandledError` instead of being thrown.
 */
export class TypedEmitter<E extends EventMap<E>> {
  readonly #ee = new EventEmitter();

  /** Adds `listener` for `event`; returns this. */
  on<K extends keyof E & string>(event: K, listener: E[K]): this {
    this.#ee.on(event, listener);
    return this;
  }

  /** Adds `listener` for the next `event` only; returns this. */
  once<K extends keyof E & string>(event: K, listener: E[K]): this {
    this.#ee.once(event, listener);
    return this;
  }

  /** Removes `listener` from `event`; returns this. */
  off<K extends keyof E & string>(event: K, listener: E[K]): this {
    this.#ee.off(event, listener);
    return this;
  }

  /** Removes every listener of `event`, or of all events; returns this. */
  removeAllListeners<K extends keyof E & string>(event?: K): this {
    if (event === undefined) this.#ee.removeAllListeners();
    else this.#ee.removeAllListeners(event);
    return this;
  }

  /** How many listeners `event` has. */
  listenerCount<K extends keyof E & string>(event: K): number {
    return this.#ee.listenerCount(event);
  }

  /** Calls the listeners of `event` in order; true when there was one. */
  protected emit<K extends keyof E & string>(event: K, ...args: Parameters<E[K]>): boolean {
    if (event === 'error' && this.#ee.listenerCount('error') === 0) {
      this.onUnhandledError(args[0] as Error);
      return false;
    }
    const listeners = this.#ee.rawListeners(event) as Array<(...a: unknown[]) => void>;
    if (listeners.length === 0) return false;
    for (const l of listeners) {
      // rawListeners keeps `once` wrappers, which remove themselves when called.
      try {
        l.apply(this, args);
      } catch (err) {
        process.emitWarning(`a listener of "${event}" threw: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    return true;
  }

  /** Called with an `error` that has no listener. Default: nothing. */
  protected onUnhandledError(_error: Error): void {}
}
