import { expect } from 'chai';
import {
  canonicalJson,
  checkArgs,
  checkServiceDescription,
  HubError,
  MAX_JSON_DEPTH,
  type Argument,
  type ArgProblem,
  type CheckArgsResult,
} from '@utils-hub/protocol';

const PNG_B64 = Buffer.from('\x89PNG\r\n\x1a\nfake').toString('base64');

function arg(argument_name: string, type: Argument['type'], extras: Partial<Argument> = {}): Argument {
  return { argument_name, type, ...extras };
}

function ok(r: CheckArgsResult): Record<string, unknown> {
  if (!r.ok) expect.fail(`expected ok, got ${JSON.stringify(r.problems)}`);
  return r.args;
}

function problems(r: CheckArgsResult): ArgProblem[] {
  if (r.ok) expect.fail('expected problems');
  return r.problems;
}

/** The only problem of checking `value` for one argument `a`. */
function problemOf(a: Argument, value: unknown): string {
  const ps = problems(checkArgs([a], { [a.argument_name]: value }));
  expect(ps).to.have.length(1);
  expect(ps[0].argument_name).to.equal(a.argument_name);
  return ps[0].problem;
}

// biome-ignore lint/suspicious/noShadowRestrictedNames: a module-level helper, not Object.prototype.valueOf
function valueOf(a: Argument, value: unknown): unknown {
  return ok(checkArgs([a], { [a.argument_name]: value }))[a.argument_name];
}

describe('checkArgs', () => {
  const IMAGE_INPUT = [arg('image', 'image'), arg('angle', 'int')];

  describe('shapes', () => {
    it('takes positional args in the order of input', () => {
      const args = ok(checkArgs(IMAGE_INPUT, [{ mime: 'image/png', data: PNG_B64 }, 90]));
      expect(args.angle).to.equal(90);
      expect(Buffer.from((args.image as { data: Uint8Array }).data).toString('base64')).to.equal(PNG_B64);
    });

    it('takes named args in any order', () => {
      const args = ok(checkArgs(IMAGE_INPUT, { angle: 90, image: { mime: 'image/png', data: PNG_B64 } }));
      expect(Object.keys(args)).to.have.members(['image', 'angle']);
    });

    it('gives args with a null prototype', () => {
      const args = ok(checkArgs([arg('a', 'int')], { a: 1 }));
      expect(Object.getPrototypeOf(args)).to.equal(null);
      expect(Object.getPrototypeOf(ok(checkArgs([], [])))).to.equal(null);
    });

    for (const bad of ['x', 5, null, true, undefined, Buffer.from('x')]) {
      it(`rejects args that are ${bad === null ? 'null' : typeof bad === 'object' ? 'bytes' : typeof bad}`, () => {
        const ps = problems(checkArgs(IMAGE_INPUT, bad));
        expect(ps).to.have.length(1);
        expect(ps[0].argument_name).to.equal('args');
        expect(ps[0].problem).to.match(/^must be an array .* or an object keyed by argument name/);
      });
    }

    it('reports positional args beyond the input once', () => {
      const ps = problems(checkArgs([arg('a', 'int')], [1, 2, 3]));
      expect(ps).to.deep.equal([{ argument_name: 'args[1]', problem: 'is one too many: this service takes 1 argument, got 3' }]);
    });

    it('reports each unknown name', () => {
      const ps = problems(checkArgs([arg('a', 'int')], { a: 1, b: 2, c: 3 }));
      expect(ps).to.deep.equal([
        { argument_name: 'b', problem: 'is not an argument of this service' },
        { argument_name: 'c', problem: 'is not an argument of this service' },
      ]);
    });

    it('reports each missing required arg, positional and named', () => {
      const input = [arg('a', 'int'), arg('b', 'str', { required: true }), arg('c', 'bool')];
      const expected = [
        { argument_name: 'b', problem: 'is required' },
        { argument_name: 'c', problem: 'is required' },
      ];
      expect(problems(checkArgs(input, [1]))).to.deep.equal(expected);
      expect(problems(checkArgs(input, { a: 1 }))).to.deep.equal(expected);
    });

    it('returns every problem, not just the first', () => {
      const input = [arg('a', 'int'), arg('b', 'str'), arg('c', 'bool', { required: false }), arg('d', 'float')];
      const ps = problems(checkArgs(input, { a: 'x', b: 2, c: 'no', zz: 1 }));
      expect(ps.map((p) => p.argument_name)).to.deep.equal(['a', 'b', 'c', 'd', 'zz']);
    });

    it('leaves out an optional arg without default', () => {
      const args = ok(checkArgs([arg('a', 'int', { required: false })], {}));
      expect(Object.keys(args)).to.deep.equal([]);
      expect(Object.keys(ok(checkArgs([arg('a', 'int', { required: false })], [])))).to.deep.equal([]);
    });

    it('fills in defaults, positional and named', () => {
      const input = [arg('a', 'int'), arg('b', 'str', { default: 'x' }), arg('c', 'json', { default: { k: [1] } })];
      expect({ ...ok(checkArgs(input, [1])) }).to.deep.equal({ a: 1, b: 'x', c: { k: [1] } });
      expect({ ...ok(checkArgs(input, { a: 1, c: null })) }).to.deep.equal({ a: 1, b: 'x', c: null });
    });

    it('takes a default even beside required: true', () => {
      expect(ok(checkArgs([arg('a', 'int', { required: true, default: 3 })], {})).a).to.equal(3);
    });

    it('gives each call its own copy of an object default', () => {
      const input = [arg('c', 'json', { default: { k: [1] } })];
      const first = ok(checkArgs(input, {})).c as { k: number[] };
      first.k.push(2);
      expect(ok(checkArgs(input, {})).c).to.deep.equal({ k: [1] });
      expect(input[0].default).to.deep.equal({ k: [1] });
    });

    it('decodes a media default', () => {
      const input = [arg('i', 'image', { default: { mime: 'image/png', data: PNG_B64 } })];
      const v = ok(checkArgs(input, {})).i as { mime: string; data: Uint8Array };
      expect(v.data).to.be.instanceOf(Uint8Array);
      expect(Buffer.from(v.data).toString('base64')).to.equal(PNG_B64);
      expect(v.mime).to.equal('image/png');
    });

    it('reads undefined as not given and null as a value', () => {
      const input = [arg('a', 'int', { default: 1 }), arg('b', 'json', { required: false }), arg('c', 'int', { required: false })];
      expect({ ...ok(checkArgs(input, [undefined, null])) }).to.deep.equal({ a: 1, b: null });
      expect(problems(checkArgs(input, { c: null }))).to.deep.equal([{ argument_name: 'c', problem: 'expected int, got null' }]);
    });

    it('does not check a default given explicitly twice', () => {
      // A given value replaces the default and is checked itself.
      expect(problems(checkArgs([arg('a', 'int', { default: 1 })], { a: 'x' }))[0].problem).to.equal('expected int, got "x"');
    });
  });

  describe('types', () => {
    const cases: { type: Argument['type']; good: unknown[]; bad: [unknown, string][] }[] = [
      {
        type: 'int',
        good: [0, -0, 1, -5, 2 ** 53 - 1, -(2 ** 53 - 1), 1.0, 1e3],
        bad: [
          ['abc', 'expected int, got "abc"'],
          ['1', 'expected int, got "1"'],
          [1.5, 'expected int, got 1.5'],
          [true, 'expected int, got true'],
          [null, 'expected int, got null'],
          [[1], 'expected int, got an array'],
          [{}, 'expected int, got an object'],
          [Number.NaN, 'expected int, got NaN'],
          [Infinity, 'expected int, got Infinity'],
          [2 ** 53, 'expected int between -9007199254740991 and 9007199254740991, got 9007199254740992'],
          [-1e300, 'expected int between -9007199254740991 and 9007199254740991, got -1e+300'],
        ],
      },
      {
        type: 'float',
        good: [0, 1, -1.5, 1e300, 2 ** 60, Number.MIN_VALUE],
        bad: [
          ['1.5', 'expected float, got "1.5"'],
          [Number.NaN, 'expected float, got NaN'],
          [-Infinity, 'expected float, got -Infinity'],
          [null, 'expected float, got null'],
          [false, 'expected float, got false'],
        ],
      },
      {
        type: 'str',
        good: ['', 'x', 'héllo 🌍', '\u0000'],
        bad: [
          [5, 'expected str, got 5'],
          [null, 'expected str, got null'],
          [['a'], 'expected str, got an array'],
          [{ toString: 'x' }, 'expected str, got an object'],
        ],
      },
      {
        type: 'bool',
        good: [true, false],
        bad: [
          ['true', 'expected bool, got "true"'],
          [0, 'expected bool, got 0'],
          [null, 'expected bool, got null'],
        ],
      },
      {
        type: 'json',
        good: [null, 0, 'x', true, [], {}, [1, 'a', { b: [null] }], { a: { b: { c: 1 } } }],
        bad: [
          [Number.NaN, 'holds NaN, which JSON cannot carry'],
          [[1, Infinity], 'holds Infinity, which JSON cannot carry'],
          [{ a: 10n }, 'holds a BigInt, which is not JSON'],
          [{ f: () => 1 }, 'holds a function, which is not JSON'],
        ],
      },
    ];
    for (const c of cases) {
      describe(c.type, () => {
        for (const v of c.good) {
          it(`accepts ${JSON.stringify(v)}`, () => {
            expect(valueOf(arg('v', c.type), v)).to.deep.equal(v);
          });
        }
        for (const [v, problem] of c.bad) {
          it(`rejects ${typeof v === 'object' && v !== null ? 'a container' : typeof v === 'string' ? JSON.stringify(v) : String(v)}: ${problem}`, () => {
            expect(problemOf(arg('v', c.type), v)).to.equal(problem);
          });
        }
      });
    }

    describe('json nesting', () => {
      const nest = (n: number): unknown => {
        let v: unknown = 1;
        for (let i = 0; i < n; i++) v = i % 2 ? [v] : { k: v };
        return v;
      };
      it(`accepts ${MAX_JSON_DEPTH} levels`, () => {
        expect(valueOf(arg('j', 'json'), nest(MAX_JSON_DEPTH))).to.deep.equal(nest(MAX_JSON_DEPTH));
      });
      it(`rejects ${MAX_JSON_DEPTH + 1} levels`, () => {
        expect(problemOf(arg('j', 'json'), nest(MAX_JSON_DEPTH + 1))).to.equal(`is nested more than ${MAX_JSON_DEPTH} levels deep`);
      });
      it('rejects 200000 levels without blowing the stack', () => {
        const text = `{"j":${'['.repeat(200_000)}${']'.repeat(200_000)}}`;
        expect(problems(checkArgs([arg('j', 'json')], JSON.parse(text)))[0].problem).to.match(/nested more than/);
      });
      it('rejects a cycle', () => {
        const a: unknown[] = [];
        a.push(a);
        expect(problemOf(arg('j', 'json'), a)).to.match(/nested more than/);
      });
    });
  });

  describe('choices', () => {
    it('accepts a listed value', () => {
      expect(valueOf(arg('m', 'str', { choices: ['a', 'b'] }), 'b')).to.equal('b');
      expect(valueOf(arg('n', 'int', { choices: [1, 2] }), 2)).to.equal(2);
    });
    it('rejects an unlisted value naming the choices', () => {
      expect(problemOf(arg('m', 'str', { choices: ['a', 'b'] }), 'c')).to.equal('must be one of "a", "b"');
      expect(problemOf(arg('n', 'float', { choices: [0.5, 1] }), 2)).to.equal('must be one of 0.5, 1');
    });
    it('checks the type before the choices', () => {
      expect(problemOf(arg('n', 'int', { choices: [1, 2] }), '1')).to.equal('expected int, got "1"');
    });
    it('compares json choices deeply, key order aside', () => {
      const a = arg('j', 'json', { choices: [{ x: 1, y: [1, 2] }, [1], null] });
      expect(valueOf(a, { y: [1, 2], x: 1 })).to.deep.equal({ x: 1, y: [1, 2] });
      expect(valueOf(a, null)).to.equal(null);
      expect(problemOf(a, { x: 1, y: [2, 1] })).to.equal('must be one of an object, an array, null');
      expect(problemOf(a, { x: 1, y: [1, 2], z: 0 })).to.match(/^must be one of/);
      expect(problemOf(a, [1, 2])).to.match(/^must be one of/);
      expect(problemOf(a, { 0: 1 })).to.match(/^must be one of/);
    });
    it('lists at most ten choices', () => {
      const choices = Array.from({ length: 30 }, (_, i) => i);
      expect(problemOf(arg('n', 'int', { choices }), 99)).to.equal('must be one of 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, … (30 in all)');
    });
    it('cuts long choices short', () => {
      const long = 'c'.repeat(500);
      expect(problemOf(arg('s', 'str', { choices: [long] }), 'x').length).to.be.below(80);
    });
  });

  describe('min and max', () => {
    const angle = arg('angle', 'int', { min: 1, max: 359 });
    it('accepts the bounds themselves', () => {
      expect(valueOf(angle, 1)).to.equal(1);
      expect(valueOf(angle, 359)).to.equal(359);
    });
    it('rejects numbers out of bounds', () => {
      expect(problemOf(angle, 0)).to.equal('must be at least 1');
      expect(problemOf(angle, 360)).to.equal('must be at most 359');
      expect(problemOf(arg('f', 'float', { min: -0.5 }), -0.6)).to.equal('must be at least -0.5');
      expect(problemOf(arg('f', 'float', { max: 0.5 }), 0.75)).to.equal('must be at most 0.5');
    });
    it('bounds the length of a str in characters', () => {
      const s = arg('s', 'str', { min: 2, max: 3 });
      expect(problemOf(s, 'a')).to.equal('must be at least 2 characters long');
      expect(problemOf(s, 'abcd')).to.equal('must be at most 3 characters long');
      expect(valueOf(s, '🌍🌍🌍')).to.equal('🌍🌍🌍');
      expect(problemOf(arg('s', 'str', { max: 1 }), '🌍🌍')).to.equal('must be at most 1 characters long');
    });
    it('checks a huge string without trouble', () => {
      expect(problemOf(arg('s', 'str', { max: 10 }), 'x'.repeat(5_000_000))).to.equal('must be at most 10 characters long');
    });
  });

  describe('media', () => {
    const image = arg('image', 'image');

    describe('base64 object', () => {
      it('decodes it to bytes, name kept: a plain Uint8Array by default, a Buffer with a Buffer codec', () => {
        const v = valueOf(image, { mime: 'image/png', data: PNG_B64, name: 'cat.png' }) as { data: Uint8Array };
        expect(v).to.deep.equal({ mime: 'image/png', name: 'cat.png', data: new Uint8Array(Buffer.from(PNG_B64, 'base64')) });
        expect(Buffer.isBuffer(v.data)).to.equal(false);
        const nodeBase64 = { encode: (b: Uint8Array) => Buffer.from(b).toString('base64'), decode: (t: string) => Buffer.from(t, 'base64') };
        const r = ok(checkArgs([image], { [image.argument_name]: { mime: 'image/png', data: PNG_B64 } }, { base64: nodeBase64 }));
        const data = (r[image.argument_name] as { data: Uint8Array }).data;
        expect(Buffer.isBuffer(data)).to.equal(true);
        expect((data as Buffer).toString('base64')).to.equal(PNG_B64);
      });
      it('accepts unpadded base64 and empty data', () => {
        expect(Buffer.from((valueOf(image, { mime: 'image/png', data: 'QUI' }) as { data: Uint8Array }).data).toString()).to.equal('AB');
        expect((valueOf(image, { mime: 'image/png', data: '' }) as { data: Buffer }).data.length).to.equal(0);
      });
      for (const data of ['QQ=', 'Q', 'QQ==QQ==', 'QU I=', 'QUJD\n', 'QUJ-', 'QUJ_', '====', 'é']) {
        it(`rejects malformed base64 ${JSON.stringify(data)}`, () => {
          expect(problemOf(image, { mime: 'image/png', data })).to.equal('has malformed base64 data');
        });
      }
      it('needs a mime', () => {
        expect(problemOf(image, { data: PNG_B64 })).to.equal('needs a "mime" such as image/png');
      });
      it('rejects a name that is not a string', () => {
        expect(problemOf(image, { mime: 'image/png', data: PNG_B64, name: 5 })).to.match(/^has a "name" that is not a string/);
      });
      it('rejects data that is neither text nor bytes', () => {
        expect(problemOf(image, { mime: 'image/png', data: [1, 2] })).to.equal('has "data" that is not base64 text (an array)');
      });
    });

    describe('data: URL', () => {
      it('decodes it', () => {
        expect(valueOf(image, `data:image/png;base64,${PNG_B64}`)).to.deep.equal({ mime: 'image/png', data: Buffer.from(PNG_B64, 'base64') });
      });
      it('keeps mime parameters and reads the scheme in any case', () => {
        const v = valueOf(arg('f', 'file'), 'DATA:text/plain;charset=utf-8;BASE64,aGk=') as { mime: string; data: Uint8Array };
        expect(v.mime).to.equal('text/plain;charset=utf-8');
        expect(Buffer.from(v.data).toString()).to.equal('hi');
      });
      it('reads an empty mime as text/plain', () => {
        expect((valueOf(arg('f', 'file'), 'data:;base64,aGk=') as { mime: string }).mime).to.equal('text/plain');
        expect(problemOf(image, 'data:;base64,aGk=')).to.equal('expected an image (image/*), got text/plain');
      });
      for (const url of [
        'data:image/png,abc',
        'data:image/png;base64',
        'data:image/png;base64,a$b=',
        'data:png;base64,QQ==',
        `data:image/png;base64,${PNG_B64}=`,
      ]) {
        it(`rejects ${url.slice(0, 40)}`, () => {
          expect(problemOf(image, url)).to.equal('is not a well-formed base64 data: URL');
        });
      }
      it('rejects a string that is not a data: URL', () => {
        expect(problemOf(image, 'https://x/cat.png')).to.equal('expected image as {"mime", "data"}, a data: URL or {"url"}, got "https://x/cat.png"');
      });
    });

    describe('url object', () => {
      it('passes it on unchanged', () => {
        const v = { url: 'https://example.com/cat.png', mime: 'image/png', name: 'cat.png', extra: 1 };
        expect(valueOf(image, v)).to.equal(v);
        const bare = { url: 'https://example.com/cat' };
        expect(valueOf(image, bare)).to.equal(bare);
      });
      it('checks its mime when present', () => {
        expect(problemOf(image, { url: 'https://x/a.txt', mime: 'text/plain' })).to.equal('expected an image (image/*), got text/plain');
      });
      it('rejects an empty or non-string url', () => {
        expect(problemOf(image, { url: '' })).to.match(/^has a "url" that is not a string/);
        expect(problemOf(image, { url: 5 })).to.match(/^has a "url" that is not a string/);
        expect(problemOf(image, { url: 'x'.repeat(8193) })).to.match(/^has a "url" that is not a string/);
      });
    });

    describe('bytes from attachments', () => {
      it('accepts a Buffer as it is', () => {
        const data = Buffer.from('png bytes');
        const v = valueOf(image, { mime: 'image/png', name: 'a.png', data }) as { data: Buffer };
        expect(v).to.deep.equal({ mime: 'image/png', name: 'a.png', data });
        expect(v.data).to.equal(data);
      });
      it('keeps bytes as they are, not copied (a Buffer from ws stays a Buffer)', () => {
        const u = new Uint8Array([1, 2, 3]);
        const v = valueOf(arg('f', 'file'), { mime: 'application/x-thing', data: u }) as { data: Uint8Array };
        expect(v.data).to.equal(u);
        expect([...v.data]).to.deep.equal([1, 2, 3]);
      });
      it('applies the mime rules', () => {
        expect(problemOf(image, { mime: 'audio/mpeg', data: Buffer.from('x') })).to.equal('expected an image (image/*), got audio/mpeg');
        expect(problemOf(image, { data: Buffer.from('x') })).to.equal('needs a "mime" such as image/png');
      });
      it('gives a file without mime application/octet-stream', () => {
        expect((valueOf(arg('f', 'file'), { data: Buffer.from('x') }) as { mime: string }).mime).to.equal('application/octet-stream');
      });
      it('rejects an unresolved attachment ref', () => {
        expect(problemOf(image, { $attachment: 0, mime: 'image/png' })).to.equal('refers to an attachment, which only a WebSocket message can carry');
      });
    });

    describe('mime', () => {
      const families: [Argument['type'], string, string][] = [
        ['image', 'image/jpeg', 'expected an image (image/*), got video/mp4'],
        ['audio', 'audio/ogg', 'expected audio (audio/*), got video/mp4'],
        ['video', 'video/webm', 'expected a video (video/*), got image/png'],
      ];
      for (const [type, good, problem] of families) {
        it(`needs ${type}/* for ${type}`, () => {
          const a = arg('m', type);
          expect(valueOf(a, { mime: good, data: 'QQ==' })).to.have.property('mime', good);
          const wrong = type === 'video' ? 'image/png' : 'video/mp4';
          expect(problemOf(a, { mime: wrong, data: 'QQ==' })).to.equal(problem);
        });
      }
      it('takes any mime type for file', () => {
        for (const mime of ['application/pdf', 'text/plain', 'image/png', 'x-custom/thing']) {
          expect(valueOf(arg('f', 'file'), { mime, data: 'QQ==' })).to.have.property('mime', mime);
        }
      });
      it('rejects a malformed mime type', () => {
        expect(problemOf(arg('f', 'file'), { mime: 'png', data: 'QQ==' })).to.equal('has a malformed mime type "png"');
        expect(problemOf(arg('f', 'file'), { mime: 5, data: 'QQ==' })).to.equal('has a malformed mime type 5');
        expect(problemOf(arg('f', 'file'), { mime: 'a/b'.repeat(200), data: 'QQ==' })).to.match(/^has a malformed mime type "a\/ba\/b/);
      });
      it('narrows by the mime list, case and parameters aside', () => {
        const a = arg('i', 'image', { mime: ['image/png', 'image/jpeg'] });
        expect(valueOf(a, { mime: 'IMAGE/PNG', data: 'QQ==' })).to.have.property('mime', 'IMAGE/PNG');
        expect(valueOf(a, { mime: 'image/jpeg; q=1', data: 'QQ==' })).to.have.property('mime', 'image/jpeg; q=1');
        expect(problemOf(a, { mime: 'image/gif', data: 'QQ==' })).to.equal('has type image/gif, but must be one of image/png, image/jpeg');
      });
      it('takes wildcards in the mime list', () => {
        const a = arg('f', 'file', { mime: ['text/*', 'application/json'] });
        expect(valueOf(a, { mime: 'text/csv', data: 'QQ==' })).to.have.property('mime', 'text/csv');
        expect(problemOf(a, { mime: 'image/png', data: 'QQ==' })).to.match(/^has type image\/png, but must be one of text\/\*/);
      });
      it('asks a mime list for the mime of bytes', () => {
        expect(problemOf(arg('f', 'file', { mime: ['text/plain'] }), { data: Buffer.from('x') })).to.equal('needs a "mime" such as application/pdf');
      });
    });

    describe('sizes', () => {
      it('bounds the decoded bytes with max_bytes', () => {
        const a = arg('f', 'file', { max_bytes: 3 });
        expect(valueOf(a, { mime: 'text/plain', data: 'QUJD' })).to.have.property('mime');
        expect(problemOf(a, { mime: 'text/plain', data: 'QUJDRA==' })).to.equal('is 4 bytes, over the limit of 3');
        expect(problemOf(a, 'data:text/plain;base64,QUJDRA')).to.equal('is 4 bytes, over the limit of 3');
        expect(problemOf(a, { mime: 'text/plain', data: Buffer.alloc(4) })).to.equal('is 4 bytes, over the limit of 3');
      });
      it('bounds all media together with maxTotalBytes', () => {
        const input = [arg('a', 'file'), arg('b', 'file'), arg('c', 'file')];
        const four = { mime: 'text/plain', data: 'QUJDRA==' };
        expect(checkArgs(input, [four, four, four], { maxTotalBytes: 12 }).ok).to.equal(true);
        const ps = problems(checkArgs(input, [four, four, { mime: 'text/plain', data: Buffer.alloc(5) }], { maxTotalBytes: 12 }));
        expect(ps).to.deep.equal([{ argument_name: 'c', problem: 'brings the media of this call to 13 bytes, over the limit of 12' }]);
      });
      it('does not count url media', () => {
        expect(checkArgs([arg('a', 'file')], [{ url: 'https://x' }], { maxTotalBytes: 0 }).ok).to.equal(true);
      });
    });

    it('rejects other shapes', () => {
      expect(problemOf(image, 5)).to.equal('expected image as {"mime", "data"}, a data: URL or {"url"}, got 5');
      expect(problemOf(image, [])).to.equal('expected image as {"mime", "data"}, a data: URL or {"url"}, got an array');
      expect(problemOf(image, null)).to.equal('expected image as {"mime", "data"}, a data: URL or {"url"}, got null');
      expect(problemOf(image, { mime: 'image/png' })).to.equal(
        'expected image as {"mime", "data"}, a data: URL or {"url"}, got an object without "data" or "url"',
      );
      expect(problemOf(image, Buffer.from('x'))).to.equal('expected image as {"mime", "data"}, a data: URL or {"url"}, got bytes');
    });
  });

  describe('hostile input', () => {
    it('cuts echoed strings short', () => {
      const p = problemOf(arg('n', 'int'), 'x'.repeat(1_000_000));
      expect(p).to.equal(`expected int, got "${'x'.repeat(40)}…"`);
    });

    it('does not split a surrogate pair when cutting', () => {
      const p = problemOf(arg('n', 'int'), `${'x'.repeat(39)}🌍🌍`);
      expect(p).to.equal(`expected int, got "${'x'.repeat(39)}…"`);
    });

    it('cuts unknown names short', () => {
      const ps = problems(checkArgs([], { ['k'.repeat(10_000)]: 1 }));
      expect(ps[0].argument_name).to.have.length(65);
    });

    it('reads __proto__, constructor and friends as unknown names', () => {
      const args = JSON.parse(
        '{"a": 1, "__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}, "toString": 1, "hasOwnProperty": 2}',
      ) as object;
      const ps = problems(checkArgs([arg('a', 'int')], args));
      expect(ps.map((p) => p.argument_name)).to.deep.equal(['__proto__', 'constructor', 'toString', 'hasOwnProperty']);
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    });

    it('does not take an inherited property for a given arg', () => {
      const args = Object.create({ a: 1 }) as object;
      expect(problems(checkArgs([arg('a', 'int')], args))).to.deep.equal([{ argument_name: 'a', problem: 'is required' }]);
    });

    it('takes arguments named __proto__ and constructor as own properties', () => {
      const input = [arg('__proto__', 'json'), arg('constructor', 'str', { default: 'c' })];
      const args = ok(checkArgs(input, JSON.parse('{"__proto__": {"polluted": true}}')));
      expect(Object.getPrototypeOf(args)).to.equal(null);
      expect(Object.keys(args)).to.deep.equal(['__proto__', 'constructor']);
      // biome-ignore lint/suspicious/noProto: the test is about an own key named __proto__
      expect(args.__proto__).to.deep.equal({ polluted: true });
      expect(args.constructor).to.equal('c');
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
      const positional = ok(checkArgs(input, [{ x: 1 }]));
      expect(Object.keys(positional)).to.deep.equal(['__proto__', 'constructor']);
      expect(JSON.parse(JSON.stringify(positional))).to.deep.equal(JSON.parse('{"__proto__": {"x": 1}, "constructor": "c"}'));
    });

    it('never throws on a throwing getter or a proxy', () => {
      const getter = Object.defineProperty({}, 'a', {
        enumerable: true,
        get() {
          throw new Error('boom');
        },
      });
      expect(problems(checkArgs([arg('a', 'int')], getter))).to.deep.equal([{ argument_name: 'args', problem: 'could not be read' }]);
      const proxy = new Proxy(
        {},
        {
          ownKeys() {
            throw new Error('boom');
          },
        },
      );
      expect(checkArgs([arg('a', 'int', { required: false })], proxy).ok).to.equal(false);
    });

    it('survives a million positional args and a thousand unknown names', () => {
      expect(problems(checkArgs([arg('a', 'int')], new Array(1_000_000).fill(1)))).to.have.length(1);
      const named = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i]));
      expect(problems(checkArgs([], named))).to.have.length(1000);
    });

    it('never throws on anything', () => {
      const values: unknown[] = [
        undefined,
        null,
        0,
        '',
        [],
        {},
        Symbol('s'),
        () => 1,
        10n,
        new Map(),
        new Date(),
        Buffer.alloc(3),
        [Symbol('x')],
        { a: Symbol('y') },
      ];
      const input = (['int', 'float', 'str', 'bool', 'json', 'image', 'audio', 'video', 'file'] as const).map((t) => arg(`a_${t}`, t));
      for (const v of values) {
        expect(() => checkArgs(input, v)).not.to.throw();
        expect(() =>
          checkArgs(
            input,
            input.map(() => v),
          ),
        ).not.to.throw();
        expect(() => checkArgs(input, Object.fromEntries(input.map((a) => [a.argument_name, v])))).not.to.throw();
      }
    });
  });
});

describe('checkServiceDescription', () => {
  const ME = {
    name: 'image_transform_service',
    description: 'Rotates or resizes a picture',
    input: [
      { argument_name: 'image', argument_description: 'The picture', type: 'image' },
      { argument_name: 'angle', argument_description: 'Degrees', type: 'int' },
    ],
    output: [{ argument_name: 'image', argument_description: 'Result', type: 'image' }],
  };
  const withInput = (...input: unknown[]) => ({ name: 's', description: '', input });

  function refusal(me: unknown): string {
    try {
      checkServiceDescription(me);
    } catch (err) {
      expect(err).to.be.instanceOf(HubError);
      expect((err as HubError).code).to.equal('bad_service_description');
      return (err as HubError).message;
    }
    return expect.fail('expected bad_service_description');
  }

  it('accepts the /me example of section 3 and returns it', () => {
    expect(checkServiceDescription(ME)).to.equal(ME);
  });

  it('accepts every extra where it belongs', () => {
    const me = withInput(
      { argument_name: 'n', type: 'int', required: false, default: 2, choices: [1, 2, 3], min: 1, max: 3, prompt: 'How many?' },
      { argument_name: 'f', type: 'float', min: -1.5, max: 1.5, default: 0.25 },
      { argument_name: 's', type: 'str', min: 0, max: 10, choices: ['a', 'bb'], default: 'bb' },
      { argument_name: 'b', type: 'bool', default: false, choices: [true, false] },
      { argument_name: 'j', type: 'json', default: { a: [1] }, choices: [{ a: [1] }, null] },
      { argument_name: 'i', type: 'image', mime: ['image/png', 'image/*'], max_bytes: 1000, default: { url: 'https://x/a.png' } },
      { argument_name: 'a', type: 'audio', mime: ['audio/mpeg'], default: 'data:audio/mpeg;base64,QQ==' },
      { argument_name: 'v', type: 'video', mime: ['video/mp4'] },
      { argument_name: 'x', type: 'file', mime: ['*/*', 'text/*', 'application/pdf'], default: { mime: 'text/plain', data: 'aGk=' } },
    );
    expect(checkServiceDescription(me)).to.equal(me);
  });

  it('allows a name in both input and output', () => {
    expect(() => checkServiceDescription(ME)).not.to.throw();
  });

  const REFUSED: [string, unknown, string | RegExp][] = [
    ['a non-object', 5, 'service description: must be object'],
    ['no name', {}, 'name: is required'],
    ['a bad name', { name: 'image transform', description: '', input: [] }, /^name: must match pattern/],
    ['a long name', { name: 'a'.repeat(65), description: '', input: [] }, /^name: must match pattern/],
    ['no description', { name: 's', input: [] }, 'description: is required'],
    ['no input', { name: 's', description: '' }, 'input: is required'],
    [
      'too many arguments',
      withInput(...Array.from({ length: 65 }, (_, i) => ({ argument_name: `a${i}`, type: 'int' }))),
      /^input: must NOT have more than 64 items/,
    ],
    ['an argument without name', withInput({ type: 'int' }), 'input[0].argument_name: is required'],
    ['a bad argument name', withInput({ argument_name: 'a-b', type: 'int' }), /^input\[0\]\.argument_name: must match pattern/],
    [
      'an unknown type',
      withInput({ argument_name: 'a', type: 'integer' }),
      'input[0].type: must be one of int, float, str, bool, json, image, audio, video, file, got "integer"',
    ],
    ['a type that is no string', withInput({ argument_name: 'a', type: 5 }), /^input\[0\]\.type: must be one of .*, got 5$/],
    [
      'a duplicate name',
      withInput({ argument_name: 'angle', type: 'int' }, { argument_name: 'angle', type: 'str' }),
      'input[1].argument_name: duplicate "angle"',
    ],
    [
      'a duplicate output name',
      {
        ...ME,
        output: [
          { argument_name: 'o', type: 'int' },
          { argument_name: 'p', type: 'int' },
          { argument_name: 'o', type: 'int' },
        ],
      },
      'output[2].argument_name: duplicate "o"',
    ],
    [
      'a default of another type',
      withInput({ argument_name: 'a', type: 'int' }, { argument_name: 'b', type: 'int', default: 'x' }),
      'input[1].default: expected int, got "x"',
    ],
    ['a float default of an int', withInput({ argument_name: 'a', type: 'int', default: 1.5 }), 'input[0].default: expected int, got 1.5'],
    ['a default outside choices', withInput({ argument_name: 'a', type: 'int', default: 3, choices: [1, 2] }), 'input[0].default: must be one of 1, 2'],
    ['a default below min', withInput({ argument_name: 'a', type: 'float', default: 0, min: 1 }), 'input[0].default: must be at least 1'],
    [
      'a default string too long',
      withInput({ argument_name: 'a', type: 'str', default: 'abc', max: 2 }),
      'input[0].default: must be at most 2 characters long',
    ],
    [
      'a media default with broken base64',
      withInput({ argument_name: 'a', type: 'image', default: { mime: 'image/png', data: '!!' } }),
      'input[0].default: has malformed base64 data',
    ],
    [
      'a media default of the wrong family',
      withInput({ argument_name: 'a', type: 'image', default: 'data:text/plain;base64,QQ==' }),
      'input[0].default: expected an image (image/*), got text/plain',
    ],
    [
      'a media default over max_bytes',
      withInput({ argument_name: 'a', type: 'file', max_bytes: 1, default: { mime: 'a/b', data: 'QUI=' } }),
      'input[0].default: is 2 bytes, over the limit of 1',
    ],
    [
      'an attachment ref as default',
      withInput({ argument_name: 'a', type: 'file', default: { $attachment: 0 } }),
      'input[0].default: refers to an attachment, which only a WebSocket message can carry',
    ],
    [
      'a json default nested too deep',
      withInput({ argument_name: 'a', type: 'json', default: JSON.parse('['.repeat(40) + ']'.repeat(40)) }),
      'input[0].default: is nested more than 32 levels deep',
    ],
    ['a choice of another type', withInput({ argument_name: 'a', type: 'int', choices: [1, 'b'] }), 'input[0].choices[1]: expected int, got "b"'],
    ['a choice out of bounds', withInput({ argument_name: 'a', type: 'int', choices: [1, 20], max: 10 }), 'input[0].choices[1]: must be at most 10'],
    ['choices on media', withInput({ argument_name: 'a', type: 'image', choices: [{ url: 'u' }] }), 'input[0].choices: media arguments take no choices'],
    ['min over max', withInput({ argument_name: 'a', type: 'int', min: 5, max: 1 }), 'input[0].max: must not be less than min (5), got 1'],
    ['min on bool', withInput({ argument_name: 'a', type: 'bool', min: 0 }), 'input[0].min: only int, float and str arguments take min and max'],
    ['max on image', withInput({ argument_name: 'a', type: 'image', max: 10 }), 'input[0].max: only int, float and str arguments take min and max'],
    [
      'a negative length bound',
      withInput({ argument_name: 'a', type: 'str', min: -1 }),
      'input[0].min: a length bound must be a whole number of 0 or more, got -1',
    ],
    [
      'a fractional length bound',
      withInput({ argument_name: 'a', type: 'str', max: 2.5 }),
      'input[0].max: a length bound must be a whole number of 0 or more, got 2.5',
    ],
    [
      'mime on int',
      withInput({ argument_name: 'a', type: 'int', mime: ['image/png'] }),
      'input[0].mime: only media arguments (image, audio, video, file) take mime',
    ],
    [
      'max_bytes on str',
      withInput({ argument_name: 'a', type: 'str', max_bytes: 10 }),
      'input[0].max_bytes: only media arguments (image, audio, video, file) take max_bytes',
    ],
    [
      'a text mime on image',
      withInput({ argument_name: 'a', type: 'image', mime: ['image/png', 'text/plain'] }),
      'input[0].mime[1]: expected an image type (image/*), got "text/plain"',
    ],
    [
      'an image mime on audio',
      withInput({ argument_name: 'a', type: 'audio', mime: ['image/png'] }),
      'input[0].mime[0]: expected audio type (audio/*), got "image/png"',
    ],
    ['*/* on video', withInput({ argument_name: 'a', type: 'video', mime: ['*/*'] }), 'input[0].mime[0]: expected a video type (video/*), got "*/*"'],
    [
      'a malformed mime entry',
      withInput({ argument_name: 'a', type: 'file', mime: ['png'] }),
      /^input\[0\]\.mime\[0\]: is not a mime type such as application\/pdf/,
    ],
    ['a bad output argument', { ...ME, output: [{ argument_name: 'o', type: 'int', default: 'x' }] }, 'output[0].default: expected int, got "x"'],
    [
      'an extra field nested too deep',
      { ...ME, extra: JSON.parse('['.repeat(100) + ']'.repeat(100)) },
      'extra: nests the description more than 64 levels deep',
    ],
  ];
  for (const [what, me, message] of REFUSED) {
    it(`refuses ${what}`, () => {
      const m = refusal(me);
      if (typeof message === 'string') expect(m).to.equal(message);
      else expect(m).to.match(message);
    });
  }

  it('refuses a description nested 100000 levels without blowing the stack', () => {
    const me = JSON.parse(`{"name":"s","description":"","input":[],"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`) as unknown;
    expect(refusal(me)).to.equal('x: nests the description more than 64 levels deep');
  });

  it('takes __proto__ keys as data', () => {
    const me = JSON.parse('{"name":"s","description":"","input":[{"argument_name":"__proto__","type":"int","__proto__":{"x":1}}]}') as unknown;
    expect(checkServiceDescription(me)).to.equal(me);
    expect(({} as Record<string, unknown>).x).to.equal(undefined);
  });
});

describe('canonicalJson', () => {
  it('sorts keys at every level and keeps array order', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).to.equal('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
  });

  it('gives equal text for equal values written in another order', () => {
    const a = { name: 's', input: [{ type: 'int', argument_name: 'a' }], description: '' };
    const b = JSON.parse('{"description":"","input":[{"argument_name":"a","type":"int"}],"name":"s"}') as unknown;
    expect(canonicalJson(a)).to.equal(canonicalJson(b));
    expect(canonicalJson(a)).to.equal(canonicalJson(JSON.parse(canonicalJson(a))));
  });

  it('tells different values apart', () => {
    expect(canonicalJson({ a: [1, 2] })).not.to.equal(canonicalJson({ a: [2, 1] }));
    expect(canonicalJson({ a: '1' })).not.to.equal(canonicalJson({ a: 1 }));
  });

  it('writes scalars as JSON does, undefined as null', () => {
    expect(canonicalJson('x"y')).to.equal('"x\\"y"');
    expect(canonicalJson(1.5)).to.equal('1.5');
    expect(canonicalJson(null)).to.equal('null');
    expect(canonicalJson(undefined)).to.equal('null');
    expect(canonicalJson({ a: undefined, b: 1 })).to.equal('{"b":1}');
  });

  it('keeps a __proto__ key as data', () => {
    expect(canonicalJson(JSON.parse('{"b":1,"__proto__":{"x":1}}'))).to.equal('{"__proto__":{"x":1},"b":1}');
  });
});
