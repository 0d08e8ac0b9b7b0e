/**
 * The service that the fuzz suite calls, and a generator of its args that knows, by
 * construction, which arguments each generated call gets wrong (the expected `invalid_args`
 * details), so the hub's answers are checked against the contract and not against its own code.
 */
import fc from 'fast-check';
import { RawJson, anyValue, badBase64, badMime, base64Of, deepJson, hostileKey, hostileString, jsonValue, objectOf } from './values.js';

/** One argument of every kind, with the extras that a call can break. */
export const FUZZ_INPUT = [
  { argument_name: 'n', argument_description: 'an int from -100 to 100', type: 'int', min: -100, max: 100 },
  { argument_name: 'f', type: 'float', required: false },
  { argument_name: 's', type: 'str', min: 1, max: 20, required: false },
  { argument_name: 'c', type: 'str', choices: ['a', 'b'], default: 'a' },
  { argument_name: 'b', type: 'bool', required: false },
  { argument_name: 'j', type: 'json', required: false },
  { argument_name: 'img', type: 'image', mime: ['image/png'], max_bytes: 1024, required: false },
  { argument_name: 'doc', type: 'file', required: false },
] as const;

export const ARG_NAMES = FUZZ_INPUT.map((a) => a.argument_name);

/** The description of a fuzz service called `name`. */
export function fuzzService(name: string): Record<string, unknown> {
  return { name, description: 'takes one argument of every kind', input: FUZZ_INPUT };
}

/** Code points, as the contract counts a string's length. */
const codePoints = (s: string) => [...s].length;

/** A value for one argument and whether it fits. */
interface Pick {
  value: unknown;
  ok: boolean;
}

const good = (a: fc.Arbitrary<unknown>) => a.map((value): Pick => ({ value, ok: true }));
const bad = (a: fc.Arbitrary<unknown>) => a.map((value): Pick => ({ value, ok: false }));

/** Values that JSON reads back as numbers no argument takes. */
const infinities = fc.constantFrom(new RawJson('1e999'), new RawJson('-1e999'));

const media = (mime: string) => ({
  base64: fc.record({ mime: fc.constant(mime), data: base64Of(0, 64), name: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }) }),
  dataUrl: base64Of(0, 64).map((b) => `data:${mime};base64,${b}`),
  url: fc.record({ url: fc.webUrl(), mime: fc.option(fc.constant(mime), { nil: undefined }) }),
});

/** For each argument: values that fit and values that do not, by construction. */
const VALUES: Record<string, fc.Arbitrary<Pick>> = {
  n: fc.oneof(
    good(fc.integer({ min: -100, max: 100 })),
    bad(fc.oneof(fc.integer({ min: 101 }), fc.integer({ max: -101 }), fc.constantFrom(1.5, '1', true, null, [], {}, 2 ** 53), infinities)),
  ),
  f: fc.oneof(good(fc.double({ noNaN: true, noDefaultInfinity: true })), bad(fc.oneof(fc.constantFrom('1.5', true, null, [1], {}), infinities))),
  s: fc.oneof(
    hostileString.filter((s) => s.length > 0).map((value): Pick => ({ value, ok: codePoints(value) >= 1 && codePoints(value) <= 20 })),
    bad(fc.constantFrom('', 5, null, false, ['a'], { s: 'a' })),
  ),
  c: fc.oneof(good(fc.constantFrom('a', 'b')), bad(fc.constantFrom('c', 'A', '', 1, null, ['a']))),
  b: fc.oneof(good(fc.boolean()), bad(fc.constantFrom(0, 1, 'true', null, [], {}))),
  j: fc.oneof(
    { weight: 4, arbitrary: good(jsonValue) },
    // Deeper than the contract's json nesting bound: a problem, never a stack overflow.
    {
      weight: 1,
      arbitrary: bad(fc.tuple(fc.integer({ min: 40, max: 20_000 }), fc.constantFrom('array', 'object', 'mixed')).map(([d, k]) => deepJson(d, k as 'array'))),
    },
  ),
  img: fc.oneof(
    good(fc.oneof(media('image/png').base64, media('image/png').dataUrl, media('image/png').url, fc.constant({ mime: 'image/PNG; q=1', data: '' }))),
    bad(
      fc.oneof(
        base64Of(0, 8).map((data) => ({ mime: 'image/jpeg', data })), // not in the argument's list
        base64Of(0, 8).map((data) => ({ mime: 'text/plain', data })), // not an image
        badMime.map((mime) => ({ mime, data: 'YWJj' })),
        badBase64.map((data) => ({ mime: 'image/png', data })),
        base64Of(1025, 1400).map((data) => ({ mime: 'image/png', data })), // over max_bytes
        badBase64.map((b) => `data:image/png;base64,${b}`),
        fc.constantFrom(
          { data: 'YWJj' }, // no mime
          { mime: 'image/png', data: 5 },
          { mime: 'image/png' },
          { $attachment: 0, mime: 'image/png' }, // REST and unannounced: no attachment here
          { url: '', mime: 'image/png' },
          { url: 'https://x.example/a.gif', mime: 'image/gif' },
          'https://x.example/a.png',
          'data:image/png,not-base64',
          'data:text/plain;base64,YWJj',
          null,
          42,
          [],
        ),
      ),
    ),
  ),
  doc: fc.oneof(
    good(fc.oneof(media('application/pdf').base64, media('text/plain').dataUrl, fc.constant('data:;base64,YWJj'), media('application/zip').url)),
    bad(
      fc.oneof(
        badBase64.map((data) => ({ mime: 'application/pdf', data })),
        badMime.map((mime) => ({ mime, data: '' })),
        fc.constantFrom({ mime: 'a/b', data: [] }, 'plain text', true),
      ),
    ),
  ),
};

/** Args for the fuzz service, with the names the hub must list as problems. */
export interface ArgsCase {
  args: unknown;
  /** `argument_name`s of the expected `invalid_args` details; empty when the args fit. */
  problems: string[];
}

/** Named args: each argument absent, fitting or not; maybe unknown names too. */
const namedArgs: fc.Arbitrary<ArgsCase> = fc
  .tuple(
    fc.record(
      Object.fromEntries(ARG_NAMES.map((n) => [n, fc.option(VALUES[n], { nil: undefined, freq: 2 })])) as Record<string, fc.Arbitrary<Pick | undefined>>,
    ),
    fc.array(fc.tuple(hostileKey, anyValue), { maxLength: 2 }),
  )
  .map(([picks, extra]) => {
    const entries: Array<[string, unknown]> = [];
    const problems = new Set<string>();
    for (const name of ARG_NAMES) {
      const p = picks[name];
      if (p === undefined) {
        if (name === 'n') problems.add('n'); // the one required argument without a default
        continue;
      }
      entries.push([name, p.value]);
      if (!p.ok) problems.add(name);
    }
    for (const [key, value] of extra) {
      if ((ARG_NAMES as readonly string[]).includes(key)) continue;
      entries.push([key, value]);
      problems.add(key);
    }
    return { args: objectOf(entries), problems: [...problems] };
  });

/** Positional args: the first k arguments, each fitting or not; maybe one too many. */
const positionalArgs: fc.Arbitrary<ArgsCase> = fc
  .tuple(fc.tuple(...ARG_NAMES.map((n) => VALUES[n])), fc.integer({ min: 0, max: ARG_NAMES.length }), fc.option(anyValue, { nil: undefined, freq: 4 }))
  .map(([picks, k, extra]) => {
    const args: unknown[] = [];
    const problems: string[] = [];
    for (let i = 0; i < k; i++) {
      args.push(picks[i].value);
      if (!picks[i].ok) problems.push(ARG_NAMES[i]);
    }
    if (k === 0) problems.push('n');
    if (extra !== undefined && k === ARG_NAMES.length) {
      args.push(extra);
      problems.push(`args[${ARG_NAMES.length}]`);
    }
    return { args, problems };
  });

export const argsCase: fc.Arbitrary<ArgsCase> = fc.oneof(namedArgs, positionalArgs);

/** Args that always fit (for calls whose outcome is not about args). */
export const goodArgs: fc.Arbitrary<Record<string, unknown>> = fc.record({
  n: fc.integer({ min: -100, max: 100 }),
  s: fc.string({ minLength: 1, maxLength: 10 }),
});
