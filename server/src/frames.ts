/**
 * Small helpers for building wire frames on the hot path.
 */

/** One message as its text frame. */
export function jsonFrame(message: object): string {
  return JSON.stringify(message);
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
