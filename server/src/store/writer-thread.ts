/**
 * A worker thread that runs the task store's statements off the hub's event loop, one at a time,
 * in the order given. The thread's program is plain JavaScript evaluated by
 * `new Worker(..., { eval: true })`: a module file would need a build step (or a loader the
 * thread does not inherit) to run from the sources. It answers each message `{id, ...}` with
 * `{id, result?}` or `{id, error: {message, code}}`.
 */
import { Worker } from 'node:worker_threads';

/** What the thread answers for one message: nothing, or the error it met. */
interface Answer {
  id: number;
  result?: unknown;
  error?: { message: string; code?: string };
}

/** Error code of a write lost because the thread stopped; the store keeps such rows and retries. */
export const WRITER_STOPPED = 'SQLITE_WRITER_STOPPED';

/**
 * The thread starts with the first message and again after it stopped (a crash fails the
 * messages in flight with {@link WRITER_STOPPED}); it does not keep the process alive while no
 * message is in flight.
 */
export abstract class WriterThread {
  #worker: Worker | null = null;
  #nextId = 1;
  readonly #waiting = new Map<number, { resolve: (result: unknown) => void; reject: (err: Error) => void }>();
  #closed = false;

  /**
   * @param name What the thread writes to, for errors ("SQLite", "MySQL").
   * @param source The thread's program.
   * @param workerData Given to the program as `workerData` (copied).
   */
  protected constructor(
    private readonly name: string,
    private readonly source: string,
    private readonly workerData: Record<string, unknown>,
  ) {}

  /** Sends `message` to the thread; resolves with its answer's result, rejects with its error (code kept). */
  protected send(message: Record<string, unknown>): Promise<unknown> {
    if (this.#closed) return Promise.reject(stopped(`the ${this.name} writer is closed`));
    const worker = this.#worker ?? this.#start();
    const id = this.#nextId++;
    return new Promise<unknown>((resolve, reject) => {
      if (this.#waiting.size === 0) worker.ref();
      this.#waiting.set(id, { resolve, reject });
      worker.postMessage({ ...message, id });
    });
  }

  /** Whether a message sent to the thread is not answered yet. */
  protected get busy(): boolean {
    return this.#waiting.size > 0;
  }

  /**
   * Starts the thread now rather than with the first message: loading its driver takes a moment
   * (most of a second for mysql2), better spent while the hub starts than by its first batch.
   */
  warmUp(): void {
    if (!this.#closed && !this.#worker) this.#start();
  }

  /** Stops the thread once the messages in flight are answered. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    if (!worker) return;
    while (this.#waiting.size > 0) await new Promise((resolve) => setImmediate(resolve));
    this.#worker = null;
    await worker.terminate();
  }

  #start(): Worker {
    const worker = new Worker(this.source, {
      eval: true,
      workerData: this.workerData,
      // The thread runs plain JavaScript: a loader given to the process (tsx) has nothing to do.
      execArgv: [],
    });
    worker.unref();
    worker.on('message', (answer: Answer) => {
      const waiter = this.#waiting.get(answer.id);
      if (!waiter) return;
      this.#waiting.delete(answer.id);
      if (this.#waiting.size === 0) worker.unref();
      if (answer.error) waiter.reject(Object.assign(new Error(answer.error.message), { code: answer.error.code }));
      else waiter.resolve(answer.result);
    });
    const lost = (err: Error) => {
      if (this.#worker === worker) this.#worker = null;
      const waiting = [...this.#waiting.values()];
      this.#waiting.clear();
      for (const w of waiting) w.reject(stopped(`the ${this.name} writer thread stopped: ${err.message}`));
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`exit code ${code}`)));
    this.#worker = worker;
    return worker;
  }
}

function stopped(message: string): Error {
  return Object.assign(new Error(message), { code: WRITER_STOPPED });
}
