/**
 * Generators of hostile values for the fuzz suite: JSON with prototype-named keys, deep nesting,
 * huge and broken strings, numbers that JSON cannot carry back, malformed base64 and mimes.
 *
 * Values that JSON.stringify cannot write (nesting thousands deep, `1e999`) travel as `RawJson`
 * pieces, which `toJson` splices into the text as they are.
 */
import fc from 'fast-check';

/** A piece of JSON text to put in a message as it is. */
export class RawJson {
  constructor(readonly text: string) {}
  toString(): string {
    return `RawJson(${this.text.length > 60 ? `${this.text.slice(0, 60)}…` : this.text})`;
  }
}

/** An object that owns `key` even when it is `__proto__` (a plain assignment would set the prototype). */
export function own<T extends object>(o: T, key: string, value: unknown): T {
  Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  return o;
}

/** An object of the given entries, each an own property (the last of duplicate keys wins). */
export function objectOf(entries: ReadonlyArray<readonly [string, unknown]>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of entries) own(o, k, v);
  return o;
}

/** JSON text of `value`, with RawJson pieces spliced in as they are. */
export function toJson(value: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(value, (_k, v: unknown) => {
    if (v instanceof RawJson) {
      raws.push(v.text);
      return `\u0000raw${raws.length - 1}\u0000`;
    }
    return v;
  });
  if (raws.length === 0) return text;
  return text.replace(/"\\u0000raw(\d+)\\u0000"/g, (_m, i: string) => raws[Number(i)]);
}

/** Nesting `depth` levels deep, as text: arrays, objects, or both alternating. */
export function deepJson(depth: number, kind: 'array' | 'object' | 'mixed' = 'array', leaf = '1'): RawJson {
  if (kind === 'array') return new RawJson('['.repeat(depth) + leaf + ']'.repeat(depth));
  if (kind === 'object') return new RawJson('{"a":'.repeat(depth) + leaf + '}'.repeat(depth));
  let open = '';
  let close = '';
  for (let i = 0; i < depth; i++) {
    open += i % 2 ? '[' : '{"__proto__":';
    close = (i % 2 ? ']' : '}') + close;
  }
  return new RawJson(open + leaf + close);
}

/** Keys that name things on Object.prototype, or that the protocol gives a meaning. */
export const HOSTILE_KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  '__defineGetter__',
  'then',
  '$attachment',
  'type',
  'data',
  '',
] as const;

export const hostileKey: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_KEYS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) },
);

/** Strings that are hard on parsers and logs: control characters, lone surrogates, long runs. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '\u0000',
      '\ud800',
      '\udfff',
      'a\ud83d',
      '\u2028\u2029',
      '\r\n\r\nX-Injected: 1',
      '"}',
      '\\',
      '%00',
      '../../etc/passwd',
      '<script>',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a hostile string, not a template
      '${x}',
      '__proto__',
    ),
  },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 70_000 }).map((n) => 'é'.repeat(n)) },
);

/** Finite numbers, including extremes and text that JSON reads back rounded. */
export const finiteNumber: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -1, 2 ** 53, -(2 ** 53), 2 ** 31, 1e308, 5e-324, Number.MAX_SAFE_INTEGER),
  fc.constantFrom(new RawJson('123456789012345678901234567890'), new RawJson('1e-400'), new RawJson('-0')),
);

/** Numbers, including those that JSON reads back as Infinity. */
export const hostileNumber: fc.Arbitrary<unknown> = fc.oneof(finiteNumber, fc.constantFrom(new RawJson('1e999'), new RawJson('-1e999')));

/** Any JSON value (numbers finite once read), a few levels deep, with hostile keys and strings. */
export const jsonValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown; array: unknown[]; object: Record<string, unknown> }>((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, fc.constant(null), fc.boolean(), finiteNumber, hostileString, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.array(fc.tuple(hostileKey, tie('value')), { maxLength: 4 }).map(objectOf),
})).value;

/** A value of the wrong kind for almost any field: every JSON type but the one expected is likely. */
export const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  hostileNumber,
  hostileString,
  fc.constant([]),
  fc.constant({}),
  jsonValue,
);

/** Base64 text that is not well formed. */
export const badBase64: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('a', 'abcde', '@@@@', 'YQ=', 'Y Q==', '=YQ=', 'YQ==YQ==', 'éééé', 'YWJj\n', 'YW-_', 'YQ===', '===='),
  fc.string({ minLength: 1, maxLength: 12 }).map((s) => `${Buffer.from(s).toString('base64')}!`),
);

/** Mime types that are not mime types. */
export const badMime: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('png', '', 'image/', '/png', 'image png', 'image/png\r\nX: y', '*/*x', 'image/png/x'),
  fc.constantFrom(5, null, true, ['image/png'], {}),
);

/** Bytes of a given size range as base64. */
export function base64Of(min: number, max: number): fc.Arbitrary<string> {
  return fc.uint8Array({ minLength: min, maxLength: max }).map((b) => Buffer.from(b).toString('base64'));
}

/** Byte sequences that are not UTF-8: a stray continuation, a broken pair, an encoded surrogate, an overlong or cut sequence. */
export const badUtf8Bytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constantFrom(
    Buffer.from([0xff]),
    Buffer.from([0xc3, 0x28]),
    Buffer.from([0xed, 0xa0, 0x80]),
    Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80]),
    Buffer.from([0xc0, 0xaf]),
    Buffer.from([0xe2, 0x82]),
  ),
  fc.integer({ min: 0x80, max: 0xbf }).map((b) => Buffer.from([b])),
);

/** Frames whose bytes are not UTF-8, to send as text. */
export const brokenUtf8: fc.Arbitrary<Buffer> = fc.oneof(
  badUtf8Bytes,
  fc
    .tuple(fc.string({ maxLength: 20 }), fc.constantFrom(0x80, 0xbf, 0xc0, 0xfe, 0xff))
    .map(([s, b]) => Buffer.concat([Buffer.from(`{"type":"${s}`), Buffer.from([b]), Buffer.from('"}')])),
);

/** Text that JSON.parse refuses. */
export const notJson: fc.Arbitrary<string> = fc
  .oneof(
    fc.string({ maxLength: 40 }),
    fc.constantFrom('', ' ', '{', '}', '{"type":"add_task"', "{'type':'x'}", '{"type":"x",}', 'NaN', 'undefined', '{"a":1}{"b":2}', '\ufeff{"type":"x"}'),
  )
  .filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  });

/** JSON that is not an object with a string `type`. */
export const notAMessage: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    'null',
    '[]',
    '[{"type":"add_task"}]',
    '"add_task"',
    '5',
    'true',
    '{}',
    '{"type":null}',
    '{"type":5}',
    '{"type":["add_task"]}',
    '{"type":{"__proto__":"x"}}',
    '{"Type":"add_task"}',
  ),
  jsonValue.filter((v) => v === null || typeof v !== 'object' || Array.isArray(v) || typeof (v as { type?: unknown }).type !== 'string').map(toJson),
);
