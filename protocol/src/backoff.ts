/**
 * The one backoff of the project: jittered exponential delays for everything that retries (the
 * SDKs and the hub's dialer redialing, the task store rewriting, the hub waiting for its
 * database). The ceiling doubles from the least delay to the greatest, and each delay is drawn in
 * the upper half of its ceiling, so that many parties that lost the same peer together do not
 * come back together.
 */

/**
 * The delay before try number `attempt` (0 for the first retry), in ms: a random point between
 * half and all of `min(maxDelayMs, minDelayMs * 2^attempt)`. A negative attempt counts as 0;
 * `random` (default Math.random) returns a number in [0, 1).
 */
export function backoffDelay(attempt: number, minDelayMs: number, maxDelayMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(Math.max(attempt, 0), 40));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
