/**
 * One task on one connection: checks its args against the service's input, runs the handler with
 * its context (signal, rate-limited progress), and answers `result` or `failed` once — or not at
 * all when the answer was dropped (the connection died, or `close()` gave up on it).
 */
import { checkArgs, type Argument, type TaskMsg, type WorkerFailedMsg, type WorkerResultMsg, type WorkerToHubMessage } from '@utils-hub/protocol';
import { nodeBase64 } from './node-base64.js';
import { failureOf, TaskAbortedError } from './errors.js';
import { MAX_TIMER_MS } from './options.js';
import { ProgressThrottle, progressUpdate } from './progress.js';
import type { AbortReason, TaskContext } from './types.js';

/** What a task needs from the connection that carries it. */
export interface TaskHost {
  /** Encodes and sends a message (Buffers as attachments); throws HubError when it cannot be encoded. */
  send(message: WorkerToHubMessage): void;
  /** Reports a problem that the task handles itself (a progress message that could not be encoded). */
  error(err: Error): void;
  /** The instance name announced on the connection. */
  readonly instance: string;
  /** Least time between two progress messages, in ms. */
  readonly progressIntervalMs: number;
}

/** The handler as the SDK calls it (args already checked). */
export type RawHandler = (args: Record<string, unknown>, ctx: TaskContext) => unknown;

/** A task being run: created by the connection for each `task` message. */
export class RunningTask {
  readonly id: string;
  readonly attempt: number;
  /** Settles (never rejects) once the task has answered, or was dropped and its handler settled. */
  readonly done: Promise<void>;
  readonly #host: TaskHost;
  readonly #controller = new AbortController();
  readonly #throttle: ProgressThrottle;
  #abortReason: AbortReason | undefined;
  #ended = false;
  #dropped = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(msg: TaskMsg, input: readonly Argument[], handler: RawHandler, host: TaskHost) {
    this.id = msg.task_id;
    this.attempt = msg.attempt;
    this.#host = host;
    this.#throttle = new ProgressThrottle(host.progressIntervalMs, (u) => this.#sendProgress(u));
    // The hub sends `cancel` at the deadline too; the local timer is there for a cancel that is lost.
    if (msg.timeout_ms <= MAX_TIMER_MS) {
      this.#timer = setTimeout(() => this.abort('timeout'), msg.timeout_ms);
      this.#timer.unref();
    }
    this.done = this.#run(msg, input, handler);
  }

  /** True once the signal fired. */
  get aborted(): boolean {
    return this.#abortReason !== undefined;
  }

  /** Fires the signal with `reason` (once); the task still answers when its handler ends. */
  abort(reason: AbortReason): void {
    if (this.#abortReason !== undefined || this.#ended) return;
    this.#abortReason = reason;
    this.#throttle.stop(); // nobody reads progress of an aborted task
    this.#controller.abort(new TaskAbortedError(reason));
  }

  /** Fires the signal with `reason` and drops the answer: nothing more is sent for this task. */
  drop(reason: AbortReason): void {
    this.#dropped = true;
    this.abort(reason);
    this.#throttle.stop();
  }

  async #run(msg: TaskMsg, input: readonly Argument[], handler: RawHandler): Promise<void> {
    // The hub checked the args already; checking again fills defaults for a hub that did not and
    // guarantees the handler the types its declaration promises.
    const checked = checkArgs(input, msg.args, { base64: nodeBase64 });
    if (!checked.ok) {
      const first = checked.problems[0];
      this.#answer({ type: 'failed', task_id: this.id, error: { code: 'invalid_args', message: `${first.argument_name}: ${first.problem}` } });
      return;
    }
    const ctx = this.#context(msg);
    let outcome: { result: unknown } | { error: unknown };
    try {
      outcome = { result: await handler(checked.args, ctx) };
    } catch (error) {
      outcome = { error };
    }
    if ('result' in outcome) {
      this.#answer({ type: 'result', task_id: this.id, result: outcome.result === undefined ? null : outcome.result });
    } else {
      this.#answer({ type: 'failed', task_id: this.id, error: failureOf(outcome.error, this.#abortReason) });
    }
  }

  #context(msg: TaskMsg): TaskContext {
    const task = this;
    return Object.freeze({
      taskId: msg.task_id,
      attempt: msg.attempt,
      timeoutMs: msg.timeout_ms,
      instance: this.#host.instance,
      signal: this.#controller.signal,
      get abortReason() {
        return task.#abortReason;
      },
      progress: (fraction?: number, message?: string, data?: unknown): Promise<void> => {
        if (!this.#ended && this.#abortReason === undefined) this.#throttle.push(progressUpdate(fraction, message, data));
        return Promise.resolve();
      },
    });
  }

  #sendProgress(update: object): void {
    if (this.#ended || this.#dropped) return;
    try {
      this.#host.send({ type: 'progress', task_id: this.id, ...update });
    } catch (err) {
      this.#host.error(new Error(`task ${this.id}: a progress message could not be sent: ${(err as Error).message}`));
    }
  }

  /** Sends the last progress, then the answer; an answer that cannot be encoded becomes `failed` `internal`. */
  #answer(message: WorkerResultMsg | WorkerFailedMsg): void {
    if (this.#ended) return;
    if (!this.#dropped && !this.aborted) this.#throttle.flush();
    this.#ended = true;
    this.#throttle.stop();
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#dropped) return;
    try {
      this.#host.send(message);
    } catch (err) {
      const error = { code: 'internal', message: `the ${message.type} could not be sent: ${(err as Error).message}` };
      try {
        this.#host.send({ type: 'failed', task_id: this.id, error });
      } catch (again) {
        this.#host.error(again as Error);
      }
    }
  }
}
