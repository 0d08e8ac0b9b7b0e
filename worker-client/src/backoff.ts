/**
 * Jittered exponential backoff for redialing the hub (as centrifuge-js's `backoff`): the ceiling
 * doubles from the least delay to the greatest, and each delay is drawn in the upper half of its
 * ceiling, so that many workers that lost the hub together do not come back together.
 */

/**
 * The delay before redial number `attempt` (0 for the first after a loss), in ms: a random point
 * between half and all of `min(maxDelayMs, minDelayMs * 2^attempt)`.
 */
export function backoffDelay(attempt: number, minDelayMs: number, maxDelayMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(Math.max(attempt, 0), 40));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
