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

/**
 * Reads `read()` again until `ok` accepts its value, for up to `ms` (default 5 s); returns that
 * value, or throws naming `what` with the last value read. `until` with the value kept: for state
 * that changes a moment after the event a test caused (a committed end, a progress handled).
 */
export async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms; last read ${JSON.stringify(value).slice(0, 300)}`);
    await sleep(20);
  }
}
