/**
 * What a submission takes besides its service and args: the options of `submit` and `run`, and
 * the checks that refuse a malformed submission before it is sent.
 */
import type { TaskProgress } from './task-handle.js';

/** True when `v` is a service id: a whole number of 0 or more. */
export const isServiceId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Options of `submit` and `run`. */
export interface SubmitOptions {
  /** The run deadline, in ms (`timeout_ms`). Default: the hub's (HUB_TASK_TIMEOUT_MS). */
  timeoutMs?: number;
  /** How long the task may wait in the queue, in ms (`queue_timeout_ms`). Default: the hub's. */
  queueTimeoutMs?: number;
  /** Cancels the task when aborted. */
  signal?: AbortSignal;
  /**
   * The task's idempotency key (`idempotency_key`, 1 to 255 printable ASCII characters): the hub
   * makes one task per key for 24 hours, whoever sends it and however often. Default: a random
   * UUID of this submission, so that a resend after a reconnect never runs the task twice. Give
   * your own (a chat message id, say) to stay safe across restarts of your bot too.
   */
  idempotencyKey?: string;
}

/** Options of `run`. */
export interface RunOptions extends SubmitOptions {
  /** Called with each progress of the task (and its progress after a reconnect). */
  onProgress?: (progress: TaskProgress) => void;
}

/**
 * Arguments of a task: positional (in the order of the service's arguments) or keyed by
 * argument_name. Media go as `{mime, name?, data}` with `data` a Buffer, Uint8Array,
 * ArrayBuffer or Blob (see `media()`), as a `data:` URL, or as `{url, mime}`.
 */
export type TaskArgs = unknown[] | Record<string, unknown>;

/** Why a submission is malformed before it is sent, or undefined. */
export function submitProblem(serviceId: unknown, args: unknown, options: SubmitOptions): string | undefined {
  if (!isServiceId(serviceId)) return `service id must be a whole number of 0 or more, got ${String(serviceId)}`;
  if (typeof args !== 'object' || args === null) return 'args must be an array (in the order of the arguments) or an object keyed by argument_name';
  const t = options.timeoutMs;
  if (t !== undefined && !(Number.isSafeInteger(t) && t >= 1)) return `timeoutMs must be a whole number of ms, 1 or more, got ${String(t)}`;
  const q = options.queueTimeoutMs;
  if (q !== undefined && !(Number.isSafeInteger(q) && q >= 0)) return `queueTimeoutMs must be a whole number of ms, 0 or more, got ${String(q)}`;
  const k = options.idempotencyKey;
  if (k !== undefined && (typeof k !== 'string' || !/^[\x20-\x7e]{1,255}$/.test(k))) {
    return `idempotencyKey must be 1 to 255 printable ASCII characters, got ${JSON.stringify(String(k).slice(0, 40))}`;
  }
  return undefined;
}

/** A new idempotency key: a random UUID. */
export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}
