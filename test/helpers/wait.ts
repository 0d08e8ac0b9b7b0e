/**
 * Waiting in tests, with nothing else imported (the SDK unit tests use it without loading the hub).
 */

/** Waits `ms` milliseconds. Only for pacing a peer or for "nothing happens within X ms": to wait for something, use `until`. */
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Resolves once `predicate` (sync or async) holds, checking every 20 ms; rejects after `ms`
 * (default 5000) with an error naming `what`. Tests wait for an asynchronous effect with this
 * rather than sleeping a fixed time, which a loaded machine outruns.
 */
export async function until(predicate: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() >= end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}
