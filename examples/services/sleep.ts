/**
 * `sleep`: waits the given time in steps, reporting progress after each, and stops as soon as
 * the task is canceled (its signal). Answers how long it slept and which instance ran it, which
 * shows the hub spreading tasks over several workers.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { defineService, type Service } from '@utils-hub/worker-client';

/** A new `sleep` service, not connected yet. */
export function sleepService(): Service {
  return defineService({
    name: 'sleep',
    description: 'Sleeps for a while, reporting progress; honours cancel',
    input: [
      { argument_name: 'seconds', argument_description: 'How long to sleep, in seconds', type: 'float', default: 1, min: 0, max: 3600 },
      { argument_name: 'steps', argument_description: 'How many progress steps', type: 'int', default: 4, min: 1, max: 1000 },
    ],
    output: [
      { argument_name: 'slept_ms', argument_description: 'How long it slept, in ms', type: 'int' },
      { argument_name: 'instance', argument_description: 'The worker instance that ran it', type: 'str' },
    ],
    handler: async ({ seconds, steps }, ctx) => {
      const started = performance.now();
      const stepMs = (seconds * 1000) / steps;
      for (let i = 1; i <= steps; i++) {
        // Rejects as soon as the task is canceled, timed out or the worker stops.
        await delay(stepMs, undefined, { signal: ctx.signal });
        await ctx.progress(i / steps, `step ${i} of ${steps}`);
      }
      return { slept_ms: Math.round(performance.now() - started), instance: ctx.instance };
    },
  });
}
