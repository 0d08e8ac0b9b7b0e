/**
 * What the hub makes of the task store's failed writes: each one logged at error level with its
 * task ids, counted by outcome for `/metrics`, and, once the store has failed to write for
 * longer than `failingMs`, a reason for `/readyz` to answer 503 (docs/protocol.md section 10).
 */
import type { TaskStoreOptions } from './tasks.js';

/** The two outcomes of a failed write: its rows kept for a retry, or given up. */
export type WriteFailureOutcome = 'retried' | 'dropped';

/** The logger calls used (pino's and fastify's loggers fit). */
export interface WriteHealthLog {
  error(obj: object, msg: string): void;
}

/** The store as seen from here: since when its writes fail (null while they go through). */
export interface FailingStore {
  readonly failingSince: number | null;
}

/** Watches one task store's writes; give {@link WriteHealth.onError} to the store as `onError`. */
export class WriteHealth {
  /** Task rows in failed writes, by outcome, since the hub started. */
  readonly rows: Record<WriteFailureOutcome, number> = { retried: 0, dropped: 0 };
  #store: FailingStore | null = null;

  /**
   * @param log where the failures are logged (error level)
   * @param failingMs how long, in ms, the store may fail to write before {@link notReadyReason} says so
   * @param now the clock (ms since the epoch)
   */
  constructor(
    private readonly log: WriteHealthLog,
    private readonly failingMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The store whose `failingSince` is read (set once it exists: it takes `onError` when made). */
  watch(store: FailingStore): void {
    this.#store = store;
  }

  /** The store's `onError`: logs and counts one failed write. */
  readonly onError: NonNullable<TaskStoreOptions['onError']> = (err, { ids, dropped }) => {
    const outcome: WriteFailureOutcome = dropped ? 'dropped' : 'retried';
    this.rows[outcome] += ids.length;
    this.log.error(
      { err: err.message, outcome, task_ids: ids },
      dropped ? 'the database refused these task rows repeatedly: dropped (their latest state is lost)' : 'writing task rows failed: they are kept and retried',
    );
  };

  /** How long, in ms, every write has failed; 0 while writes go through. */
  failingForMs(): number {
    const since = this.#store?.failingSince ?? null;
    return since === null ? 0 : Math.max(0, this.now() - since);
  }

  /** Why the hub is not ready, when the store has failed to write for longer than `failingMs`; else null. */
  notReadyReason(): string | null {
    const ms = this.failingForMs();
    return ms > this.failingMs ? `the task store has failed to write for ${ms} ms` : null;
  }
}
