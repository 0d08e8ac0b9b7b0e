/**
 * Helpers of the bounds on what peers may make the hub hold (docs/security.md): the frame limit
 * before a worker's `welcome`, and the bytes a queued task's args hold (`HUB_QUEUE_MAX_BYTES`).
 * The bounds themselves are options of the hub (config.ts: `queueMaxBytes`, `maxQueueTimeoutMs`,
 * `maxServiceBytes`).
 */

/** Most bytes a worker may send in one frame before its `welcome` (docs/protocol.md section 9): 1 MiB. */
export const PRE_WELCOME_FRAME_BYTES = 1024 * 1024;

/**
 * Bytes a JS value holds, roughly and from above: strings at two bytes per UTF-16 unit, bytes as
 * they are, 16 per member and per container. Iterative (checked args nest at most 32 deep anyway).
 */
export function heldBytes(value: unknown): number {
  let n = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') n += 16 + 2 * v.length;
    else if (v instanceof Uint8Array) n += 64 + v.byteLength;
    else if (Array.isArray(v)) {
      n += 16;
      for (const x of v) stack.push(x);
    } else if (typeof v === 'object' && v !== null) {
      n += 16;
      for (const k of Object.keys(v)) {
        n += 16 + 2 * k.length;
        stack.push((v as Record<string, unknown>)[k]);
      }
    } else n += 16;
  }
  return n;
}
