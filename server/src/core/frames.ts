/**
 * Small helpers for building wire frames on the hot path.
 */

/** One message as its text frame. */
export function jsonFrame(message: object): string {
  return JSON.stringify(message);
}

/*
 * The frames sent for every task, written out rather than through JSON.stringify of a new object.
 * Task ids are the hub's own (nanoid: letters, digits, `_` and `-`), which JSON needs not escape;
 * a client's `ref` is serialised as it came.
 */

/** `accepted`, with the client's `ref` when it gave one, and `"duplicate": true` for a repeated idempotency key. */
export function acceptedFrame(taskId: string, position: number, ref?: unknown, duplicate = false): string {
  const tail = (ref === undefined ? '' : `,"ref":${JSON.stringify(ref)}`) + (duplicate ? ',"duplicate":true' : '');
  return `{"type":"accepted","task_id":"${taskId}","position":${position}${tail}}`;
}

/** `started`. */
export function startedFrame(taskId: string, seq: number, attempt: number): string {
  return `{"type":"started","task_id":"${taskId}","seq":${seq},"attempt":${attempt}}`;
}

/**
 * Adds `"seq": n` to a worker's message as received, so that the hub forwards it to clients
 * without parsing and serialising it again. The member goes last: where the worker sent a `seq`
 * of its own, JSON readers keep the last duplicate, which is the hub's.
 */
export function withSeq(raw: string, seq: number): string {
  let end = raw.length - 1;
  while (end > 0 && raw.charCodeAt(end) !== 0x7d /* } */) end--;
  return `${raw.slice(0, end)},"seq":${seq}}`;
}
