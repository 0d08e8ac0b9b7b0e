/**
 * Rate-limits the progress messages of one task, so that a handler reporting in a tight loop
 * cannot flood the socket: at most one message per interval goes out, calls in between replace the
 * waiting one, and `flush()` sends the waiting one at once (before the task's answer).
 */
import { cut } from './errors.js';

/** One progress report, as the wire's `progress` message carries it (without `task_id`). */
export interface ProgressUpdate {
  progress?: number;
  message?: string;
  data?: unknown;
}

/** The fields of a `progress(fraction, message, data)` call, checked: fraction clamped to 0..1, NaN dropped. */
export function progressUpdate(fraction: unknown, message: unknown, data: unknown): ProgressUpdate {
  const u: ProgressUpdate = {};
  if (typeof fraction === 'number' && !Number.isNaN(fraction)) u.progress = Math.min(1, Math.max(0, fraction));
  if (message !== undefined && message !== null) u.message = cut(String(message));
  if (data !== undefined) u.data = data;
  return u;
}

/** Sends the progress of one task at most once per `intervalMs`, always the latest value. */
export class ProgressThrottle {
  readonly #intervalMs: number;
  readonly #send: (update: ProgressUpdate) => void;
  #lastSent = -Infinity;
  #pending: ProgressUpdate | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  /** `send` writes one message; it is never called after `stop()`. */
  constructor(intervalMs: number, send: (update: ProgressUpdate) => void) {
    this.#intervalMs = intervalMs;
    this.#send = send;
  }

  /** Sends `update` now if the interval has passed since the last one, else keeps it as the one to send next. */
  push(update: ProgressUpdate): void {
    if (this.#stopped) return;
    const now = performance.now();
    const wait = this.#lastSent + this.#intervalMs - now;
    if (this.#pending === null && wait <= 0) {
      this.#emit(update, now);
      return;
    }
    this.#pending = update;
    this.#timer ??= setTimeout(
      () => {
        this.#timer = null;
        this.flush();
      },
      Math.max(0, wait),
    );
  }

  /** Sends the waiting update, if any, now. */
  flush(): void {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const pending = this.#pending;
    this.#pending = null;
    if (pending && !this.#stopped) this.#emit(pending, performance.now());
  }

  /** Drops the waiting update and takes no more. */
  stop(): void {
    this.#stopped = true;
    this.#pending = null;
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  #emit(update: ProgressUpdate, now: number): void {
    this.#lastSent = now;
    this.#send(update);
  }
}
