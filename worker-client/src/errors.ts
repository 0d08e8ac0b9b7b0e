/**
 * The errors of the worker SDK: ServiceError, which a handler throws to fail its task with a code
 * of its own, and TaskAbortedError, the reason of a task's signal.
 */
import { HubError } from '@utils-hub/protocol';
import type { AbortReason } from './types.js';

/** Longest `code` of a worker's failure (docs/protocol.md section 5.1, `failed`'s `error.code`). */
export const MAX_ERROR_CODE_LENGTH = 128;
/** Longest `message` of a failure or a progress message, in characters; longer ones are cut. */
export const MAX_MESSAGE_LENGTH = 65_536;

/**
 * Thrown by a handler to fail its task with `code` (the service's own word, such as
 * `unsupported_format`) and a `message` for a person. The hub hands both to the client as the
 * `worker_error` of a `task_failed`. Any other exception fails the task with `internal` and its
 * message.
 */
export class ServiceError extends Error {
  /** The service's own error code: 1 to 128 characters. */
  readonly code: string;

  /** Throws TypeError when `code` is not a string of 1 to 128 characters. */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    if (typeof code !== 'string' || code.length === 0 || code.length > MAX_ERROR_CODE_LENGTH) {
      throw new TypeError(`ServiceError code: must be a string of 1 to ${MAX_ERROR_CODE_LENGTH} characters`);
    }
    this.name = 'ServiceError';
    this.code = code;
  }
}

/**
 * The `reason` of a task's AbortSignal: an Error (so that `signal.throwIfAborted()` and the APIs
 * that take a signal throw something useful) named `AbortError`, with `reason` saying why.
 */
export class TaskAbortedError extends Error {
  /** Why the task was aborted. */
  readonly reason: AbortReason;

  constructor(reason: AbortReason) {
    super(ABORT_MESSAGES[reason]);
    this.name = 'AbortError';
    this.reason = reason;
  }
}

const ABORT_MESSAGES: Record<AbortReason, string> = {
  client: 'the task was canceled by its client',
  timeout: 'the task ran past its deadline',
  shutdown: 'the worker or the hub is shutting down',
  connection_lost: 'the connection that carried the task was lost',
};

/** A string cut to `max` characters (without splitting a surrogate pair). */
export function cut(text: string, max = MAX_MESSAGE_LENGTH): string {
  if (text.length <= max) return text;
  const end = /[\uD800-\uDBFF]/.test(text[max - 1]) ? max - 1 : max;
  return text.slice(0, end);
}

/**
 * The `{code, message}` of a task that ended with `err`. `aborted` is the task's abort reason,
 * when its signal had fired: an exception after an abort is reported as the abort.
 */
export function failureOf(err: unknown, aborted: AbortReason | undefined): { code: string; message: string } {
  if (err instanceof ServiceError || err instanceof HubError) return { code: err.code, message: cut(err.message) };
  if (aborted) return { code: aborted === 'timeout' ? 'timeout' : 'canceled', message: ABORT_MESSAGES[aborted] };
  const message = err instanceof Error ? err.message : typeof err === 'string' ? err : 'the handler failed';
  return { code: 'internal', message: cut(message || 'the handler failed') };
}
