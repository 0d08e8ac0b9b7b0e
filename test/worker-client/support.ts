/**
 * Shared bits of the worker SDK tests: teardown registered right after each server or worker is
 * made (run in reverse order after each test), unique service names, and small waits.
 */
import { defineService, type Service, type TaskContext } from '@utils-hub/worker-client';
import { FakeHub, type HubSideOptions } from '../helpers/fake-hub.js';

const steps: Array<() => Promise<unknown> | unknown> = [];

/** Runs `step` after the current test, before the steps registered earlier. */
export function teardown(step: () => Promise<unknown> | unknown): void {
  steps.push(step);
}

afterEach(async () => {
  while (steps.length > 0) {
    try {
      await steps.pop()!();
    } catch {
      // One failed cleanup must not keep the others from running.
    }
  }
});

let n = 0;
/** A service name no other test uses. */
export function uniqueName(prefix = 'svc'): string {
  return `${prefix}_${process.pid}_${++n}`;
}

export { sleep, until } from '../helpers/wait.js';

/** A fake hub, torn down after the test. */
export async function fakeHub(options: HubSideOptions = {}): Promise<FakeHub> {
  const hub = await FakeHub.start(options);
  teardown(() => hub.close());
  return hub;
}

/**
 * A service with one `json` argument `value` and one optional `str` `text` whose handler is
 * `handler` (default: answers its args), closed after the test. Errors are collected, not printed.
 */
export function testService(
  handler: (args: { value: unknown; text?: string }, ctx: TaskContext) => unknown = (args) => ({ ...args }),
  extra: { concurrency?: number; progressIntervalMs?: number } = {},
): Service & { errors: Error[] } {
  const service = defineService({
    name: uniqueName(),
    description: 'a test service',
    input: [
      { argument_name: 'value', argument_description: 'anything', type: 'json' },
      { argument_name: 'text', type: 'str', required: false },
    ],
    ...extra,
    handler,
  });
  teardown(() => service.close({ graceMs: 200 }));
  const errors: Error[] = [];
  service.on('error', (e) => errors.push(e));
  return Object.assign(service, { errors });
}
