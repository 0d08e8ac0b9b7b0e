/**
 * `echo`: answers its args back, after one progress message. The smallest useful worker, and the
 * one the quick start and the tests use.
 */
import { defineService, type Service } from '@utils-hub/worker-client';

/** A new `echo` service, not connected yet. */
export function echoService(): Service {
  return defineService({
    name: 'echo',
    description: 'Answers its arguments back',
    input: [
      { argument_name: 'value', argument_description: 'Any JSON value', type: 'json', prompt: 'What should I echo?' },
      { argument_name: 'text', argument_description: 'An optional text', type: 'str', required: false },
    ],
    output: [
      { argument_name: 'value', argument_description: 'The value given', type: 'json' },
      { argument_name: 'text', argument_description: 'The text given, if any', type: 'str', required: false },
    ],
    handler: async (args, ctx) => {
      await ctx.progress(0.5, 'echoing');
      return { ...args };
    },
  });
}
