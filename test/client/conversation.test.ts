import { expect } from 'chai';
import { Conversation, conversation, conversationFromJSON, type ConversationService } from '@utils-hub/client';
import { checkArgs } from '@utils-hub/protocol';

type Arg = ConversationService['arguments'][number];

const service = (...args: Arg[]): ConversationService => ({ service_id: 7, service_name: 'svc', service_description: '', arguments: args });
const one = (arg: Arg) => conversation(service(arg));
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);

/** Answers `reply` and expects a refusal; returns its message. */
function refused(c: Conversation, reply: unknown): string {
  const r = c.answer(reply);
  expect(r.ok, `expected ${JSON.stringify(reply)} to be refused`).to.equal(false);
  return (r as { message: string }).message;
}

describe('conversation', () => {
  describe('#next', () => {
    it('asks the prompt, else the description, else the name, with place and total', () => {
      const c = conversation(
        service(
          { argument_name: 'a', argument_description: 'The a', type: 'int', prompt: 'How many?' },
          { argument_name: 'b', argument_description: 'The b', type: 'str' },
          { argument_name: 'c', type: 'str' },
        ),
      );
      const q = c.next()!;
      expect(q).to.include({ name: 'a', text: 'How many?', description: 'The a', kind: 'integer', type: 'int', optional: false, index: 0, total: 3 });
      expect(c.answer('3').ok).to.equal(true);
      expect(c.next()).to.include({ text: 'The b', kind: 'text', index: 1 });
      expect(c.next()!.description).to.equal(undefined);
      c.answer('x');
      expect(c.next()).to.include({ text: 'c', index: 2 });
      c.answer('y');
      expect(c.next()).to.equal(null);
      expect(c.done).to.equal(true);
      expect(c.serviceId).to.equal(7);
    });

    it('gives the kind of every type', () => {
      const kinds = (['int', 'float', 'str', 'bool', 'json', 'image', 'audio', 'video', 'file'] as const).map(
        (type) => one({ argument_name: 'x', type }).next()!.kind,
      );
      expect(kinds).to.deep.equal(['integer', 'number', 'text', 'yes-no', 'json', 'media', 'media', 'media', 'media']);
    });

    it('shows choices as labels, yes/no as buttons, and the hint', () => {
      expect(one({ argument_name: 'x', type: 'str', choices: ['red', 'green'] }).next()).to.deep.include({
        kind: 'choice',
        choices: ['red', 'green'],
        hint: 'one of: red, green',
      });
      expect(one({ argument_name: 'x', type: 'int', choices: [90, 180] }).next()!.choices).to.deep.equal(['90', '180']);
      expect(one({ argument_name: 'x', type: 'json', choices: [{ a: 1 }, null] }).next()!.choices).to.deep.equal(['{"a":1}', 'null']);
      expect(one({ argument_name: 'x', type: 'bool' }).next()!.choices).to.deep.equal(['yes', 'no']);
      expect(one({ argument_name: 'x', type: 'int', min: 1, max: 10 }).next()).to.include({ hint: 'a whole number from 1 to 10', min: 1, max: 10 });
      expect(one({ argument_name: 'x', type: 'str', max: 5 }).next()!.hint).to.equal('text of at most 5 characters');
      expect(one({ argument_name: 'x', type: 'str', min: 1 }).next()!.hint, 'one character, not "1 characters"').to.equal('text of at least 1 character');
    });

    it('marks defaults and optional arguments', () => {
      expect(one({ argument_name: 'x', type: 'int', default: 90 }).next()).to.include({ optional: true, default: 90 });
      expect(one({ argument_name: 'x', type: 'int', required: false }).next()).to.include({ optional: true });
      expect(one({ argument_name: 'x', type: 'int', required: true }).next()).to.include({ optional: false });
    });

    it('lists the accepted mime types of media', () => {
      expect(one({ argument_name: 'x', type: 'image' }).next()!.mime).to.deep.equal(['image/*']);
      expect(one({ argument_name: 'x', type: 'file' }).next()!.mime).to.deep.equal(['*/*']);
      expect(one({ argument_name: 'x', type: 'image', mime: ['image/png'], max_bytes: 100 }).next()).to.deep.include({
        mime: ['image/png'],
        maxBytes: 100,
        hint: 'an image (image/png)',
      });
    });
  });

  describe('#answer', () => {
    it('reads integers and refuses fractions, words and numbers out of range', () => {
      const arg: Arg = { argument_name: 'n', type: 'int', min: -5, max: 100 };
      for (const [reply, value] of [
        ['12', 12],
        [' -3 ', -3],
        ['+7', 7],
        ['1e1', 10],
        [42, 42],
        ['12.0', 12],
      ] as const) {
        const c = one(arg);
        expect(c.answer(reply)).to.deep.equal({ ok: true });
        expect(c.args()).to.deep.equal({ n: value });
      }
      const c = one(arg);
      expect(refused(c, '1.5')).to.match(/whole number/);
      expect(refused(c, 'twelve')).to.match(/whole number/);
      expect(refused(c, '101')).to.equal('Please send a number from -5 to 100.');
      expect(refused(c, -6)).to.match(/from -5 to 100/);
      expect(refused(c, 'true')).to.match(/whole number/);
      expect(c.next()!.name).to.equal('n');
    });

    it('refuses integers past 2^53 - 1', () => {
      expect(refused(one({ argument_name: 'n', type: 'int' }), '9007199254740993')).to.match(/too large/);
    });

    it('reads floats with a dot or a comma, and keeps min and max', () => {
      const arg: Arg = { argument_name: 'f', type: 'float', min: 0, max: 1 };
      let c = one(arg);
      expect(c.answer('0.25').ok).to.equal(true);
      expect(c.args()).to.deep.equal({ f: 0.25 });
      c = one(arg);
      expect(c.answer('0,5').ok).to.equal(true);
      expect(c.args()).to.deep.equal({ f: 0.5 });
      c = one(arg);
      expect(refused(c, '1.5')).to.equal('Please send a number from 0 to 1.');
      expect(refused(c, 'abc')).to.match(/number, like 1\.5/);
      expect(refused(c, 'Infinity')).to.match(/number/);
    });

    it('reads yes and no in their usual spellings', () => {
      for (const [reply, value] of [
        ['yes', true],
        ['Y', true],
        ['true', true],
        ['no', false],
        ['n', false],
        ['FALSE', false],
        [true, true],
      ] as const) {
        const c = one({ argument_name: 'b', type: 'bool' });
        expect(c.answer(reply).ok, String(reply)).to.equal(true);
        expect(c.args()).to.deep.equal({ b: value });
      }
      expect(refused(one({ argument_name: 'b', type: 'bool' }), 'maybe')).to.equal('Please answer yes or no.');
    });

    it('keeps text as typed and counts its length in characters', () => {
      let c = one({ argument_name: 's', type: 'str', min: 2, max: 3 });
      expect(c.answer('😀😀😀').ok).to.equal(true);
      expect(c.args()).to.deep.equal({ s: '😀😀😀' });
      c = one({ argument_name: 's', type: 'str', min: 2, max: 3 });
      expect(refused(c, 'abcd')).to.equal('Please send text of from 2 to 3 characters (this is 4).');
      expect(refused(c, 'a')).to.match(/from 2 to 3 characters/);
      expect(refused(c, 5)).to.equal('Please send some text.');
      c = one({ argument_name: 's', type: 'str' });
      expect(c.answer(' hello ').ok).to.equal(true);
      expect(c.args()).to.deep.equal({ s: ' hello ' });
    });

    it('takes "skip" as text for a required text argument', () => {
      const c = one({ argument_name: 's', type: 'str' });
      expect(c.answer('skip').ok).to.equal(true);
      expect(c.args()).to.deep.equal({ s: 'skip' });
    });

    it('reads JSON text and refuses text that is not JSON or too deep', () => {
      let c = one({ argument_name: 'j', type: 'json' });
      expect(c.answer('{"a": [1, 2]}').ok).to.equal(true);
      expect(c.args()).to.deep.equal({ j: { a: [1, 2] } });
      c = one({ argument_name: 'j', type: 'json' });
      expect(refused(c, '{a: 1}')).to.match(/valid JSON/);
      expect(refused(c, '['.repeat(40) + ']'.repeat(40))).to.match(/nested at most 32/);
      expect(c.answer('"text"').ok).to.equal(true);
    });

    it('picks a choice by label, by label in another case, by number, or by value', () => {
      const arg: Arg = { argument_name: 'c', type: 'str', choices: ['Red', 'Green', 'Blue'] };
      for (const reply of ['Green', 'green', ' GREEN ', '2']) {
        const c = one(arg);
        expect(c.answer(reply).ok, reply).to.equal(true);
        expect(c.args()).to.deep.equal({ c: 'Green' });
      }
      const c = one(arg);
      expect(refused(c, 'purple')).to.equal('Please pick one of: Red, Green, Blue.');
      expect(refused(c, '4')).to.match(/pick one of/);
    });

    it('prefers a number choice by its value over its place', () => {
      const c = one({ argument_name: 'angle', type: 'int', choices: [90, 180, 270] });
      expect(refused(c, '4')).to.equal('Please pick one of: 90, 180, 270.');
      expect(c.answer('180').ok).to.equal(true);
      expect(c.args()).to.deep.equal({ angle: 180 });
      const d = one({ argument_name: 'angle', type: 'int', choices: [90, 180, 270] });
      expect(d.answer(3).ok).to.equal(false);
      expect(d.answer(270).ok).to.equal(true);
      const e = one({ argument_name: 'angle', type: 'int', choices: [90, 180, 270] });
      expect(e.answer('1').ok).to.equal(true);
      expect(e.args()).to.deep.equal({ angle: 90 });
    });

    it('picks JSON choices by their label and gives a copy', () => {
      const choices = [{ w: 1 }, { w: 2 }];
      const c = one({ argument_name: 'j', type: 'json', choices });
      expect(c.answer('{"w":2}').ok).to.equal(true);
      const args = c.args();
      expect(args).to.deep.equal({ j: { w: 2 } });
      expect(args.j).not.to.equal(choices[1]);
    });

    it('skips optional arguments and arguments with a default, leaving them to the hub', () => {
      const c = conversation(
        service(
          { argument_name: 'a', type: 'int', default: 90 },
          { argument_name: 'b', type: 'str', required: false },
          { argument_name: 'c', type: 'bool', required: false },
          { argument_name: 'd', type: 'image', required: false },
          { argument_name: 'e', type: 'str', required: false, choices: ['x', 'y'] },
        ),
      );
      for (const reply of ['skip', '', '/SKIP', null, '  ']) expect(c.answer(reply).ok, String(reply)).to.equal(true);
      expect(c.done).to.equal(true);
      expect(c.args()).to.deep.equal({});
    });

    it('refuses to skip a required argument', () => {
      const c = one({ argument_name: 'a', type: 'int', min: 1, max: 10 });
      expect(refused(c, 'skip')).to.equal('This one is needed: please send a whole number from 1 to 10.');
      expect(refused(c, '')).to.match(/needed/);
      expect(refused(c, undefined)).to.match(/needed/);
      expect(c.done).to.equal(false);
    });

    it('takes media with bytes, base64 or a data: URL, and keeps the bytes', () => {
      const arg: Arg = { argument_name: 'img', type: 'image', mime: ['image/png', 'image/jpeg'], max_bytes: 10 };
      let c = one(arg);
      expect(c.answer({ mime: 'image/png', name: 'cat.png', data: PNG }).ok).to.equal(true);
      let img = c.args().img as { mime: string; name: string; data: Uint8Array };
      expect(img.mime).to.equal('image/png');
      expect(img.name).to.equal('cat.png');
      expect([...img.data]).to.deep.equal([...PNG]);

      c = one(arg);
      expect(c.answer({ mime: 'image/jpeg', data: Buffer.from(PNG).toString('base64') }).ok).to.equal(true);
      img = c.args().img as typeof img;
      expect(img.data).to.be.instanceOf(Uint8Array);
      expect([...img.data]).to.deep.equal([...PNG]);

      c = one(arg);
      const url = `data:image/png;base64,${Buffer.from(PNG).toString('base64')}`;
      expect(c.answer(url).ok).to.equal(true);
      expect(c.args()).to.deep.equal({ img: url });

      c = one(arg);
      expect(c.answer({ url: 'https://example.com/cat.png', mime: 'image/png' }).ok).to.equal(true);
    });

    it('refuses media of the wrong family, outside the mime list, too large, or typed text', () => {
      const c = one({ argument_name: 'img', type: 'image', mime: ['image/png'], max_bytes: 4 });
      expect(refused(c, { mime: 'audio/mpeg', data: PNG })).to.equal('Please send an image; this is audio/mpeg.');
      expect(refused(c, { mime: 'image/gif', data: PNG })).to.equal('Please send an image of type image/png; this one is image/gif.');
      expect(refused(c, { mime: 'image/png', data: PNG })).to.equal('That is too large (7 bytes); the limit is 4 bytes.');
      expect(refused(c, 'here is my picture')).to.equal('Please send an image.');
      expect(refused(c, { mime: 'image/png', data: '%%%' })).to.match(/could not be read/);
      expect(refused(c, { data: new Uint8Array(2) })).to.match(/with its type/);
    });

    it('accepts any type for a file without a mime list, bytes without a type too', () => {
      let c = one({ argument_name: 'f', type: 'file' });
      expect(c.answer({ mime: 'application/pdf', data: PNG }).ok).to.equal(true);
      c = one({ argument_name: 'f', type: 'file' });
      expect(c.answer({ data: PNG }).ok).to.equal(true);
      c = one({ argument_name: 'f', type: 'audio', mime: ['audio/*'] });
      expect(c.answer({ mime: 'audio/ogg; codecs=opus', data: PNG }).ok).to.equal(true);
    });

    it('says when nothing is left to ask', () => {
      const c = conversation(service());
      expect(c.done).to.equal(true);
      expect(refused(c, '1')).to.equal('Nothing is left to ask.');
      expect(c.args()).to.deep.equal({});
    });
  });

  describe('agreement with the hub', () => {
    it("gives args that the hub's own check accepts, and refuses what it refuses", () => {
      const cases: Array<[Arg, unknown]> = [
        [{ argument_name: 'a', type: 'int', min: 0, max: 10 }, '10'],
        [{ argument_name: 'a', type: 'int', min: 0, max: 10 }, '11'],
        [{ argument_name: 'a', type: 'float', max: 1 }, '1.0001'],
        [{ argument_name: 'a', type: 'str', min: 1, max: 2 }, '😀😀'],
        [{ argument_name: 'a', type: 'str', max: 2 }, 'abc'],
        [{ argument_name: 'a', type: 'str', choices: ['x'] }, 'x'],
        [
          { argument_name: 'a', type: 'image', mime: ['image/png'] },
          { mime: 'image/PNG', data: PNG },
        ],
        [
          { argument_name: 'a', type: 'image', mime: ['image/png'] },
          { mime: 'image/jpeg', data: PNG },
        ],
        [
          { argument_name: 'a', type: 'video' },
          { mime: 'image/png', data: PNG },
        ],
        [
          { argument_name: 'a', type: 'file', max_bytes: 7 },
          { mime: 'text/plain', data: PNG },
        ],
        [
          { argument_name: 'a', type: 'file', max_bytes: 6 },
          { mime: 'text/plain', data: PNG },
        ],
        [{ argument_name: 'a', type: 'file', mime: ['text/plain'] }, { data: PNG }],
        [{ argument_name: 'a', type: 'json' }, '[[[[1]]]]'],
      ];
      for (const [arg, reply] of cases) {
        const c = one(arg);
        const ok = c.answer(reply).ok;
        const value = ok ? c.args().a : typeof reply === 'string' && (arg.type === 'int' || arg.type === 'float') ? Number(reply) : reply;
        const hub = checkArgs([arg as never], { a: typeof reply === 'string' && arg.type === 'str' ? reply : value });
        expect(hub.ok, `${JSON.stringify(arg)} ${JSON.stringify(reply)}`).to.equal(ok);
      }
    });
  });

  describe('#back', () => {
    it('goes back one question and forgets its answer', () => {
      const c = conversation(service({ argument_name: 'a', type: 'int' }, { argument_name: 'b', type: 'int' }));
      expect(c.back()).to.equal(false);
      c.answer('1');
      c.answer('2');
      expect(c.back()).to.equal(true);
      expect(c.next()!.name).to.equal('b');
      expect(() => c.args()).to.throw(/"b" is still to answer/);
      c.answer('3');
      expect(c.args()).to.deep.equal({ a: 1, b: 3 });
    });
  });

  describe('#toJSON / fromJSON', () => {
    const svc = service(
      { argument_name: 'img', type: 'image', mime: ['image/png'] },
      { argument_name: 'angle', type: 'int', choices: [90, 180], default: 90 },
      { argument_name: 'note', type: 'str', required: false },
      { argument_name: 'opts', type: 'json' },
    );

    it('survives a round trip through JSON text mid-way, bytes as base64', () => {
      const c = conversation(svc);
      c.answer({ mime: 'image/png', name: 'a.png', data: PNG });
      c.answer('skip');
      const text = JSON.stringify(c);
      const stored = JSON.parse(text);
      expect(stored.version).to.equal(1);
      expect(stored.index).to.equal(2);
      expect(stored.answers.img).to.deep.equal({ mime: 'image/png', name: 'a.png', data: Buffer.from(PNG).toString('base64') });

      const d = conversationFromJSON(JSON.parse(text));
      expect(d.next()!.name).to.equal('note');
      d.answer('hello');
      d.answer('{"x": true}');
      const args = d.args();
      expect(Object.keys(args)).to.deep.equal(['img', 'note', 'opts']);
      expect((args.img as { data: Uint8Array }).data).to.be.instanceOf(Uint8Array);
      expect([...(args.img as { data: Uint8Array }).data]).to.deep.equal([...PNG]);
      expect(args.note).to.equal('hello');
      expect(args.opts).to.deep.equal({ x: true });
      // Restoring twice gives the same state again.
      expect(JSON.stringify(Conversation.fromJSON(JSON.parse(JSON.stringify(d))))).to.equal(JSON.stringify(d));
    });

    it('round-trips a finished and a fresh conversation', () => {
      const fresh = Conversation.fromJSON(JSON.parse(JSON.stringify(conversation(svc))));
      expect(fresh.next()!.name).to.equal('img');
      const c = conversation(service({ argument_name: 'n', type: 'float' }));
      c.answer('2.5');
      const done = Conversation.fromJSON(JSON.parse(JSON.stringify(c)));
      expect(done.done).to.equal(true);
      expect(done.args()).to.deep.equal({ n: 2.5 });
    });

    it('refuses what is not a saved conversation', () => {
      for (const bad of [
        null,
        {},
        { version: 2, service: svc, index: 0, answers: {} },
        { version: 1, service: svc, index: 9, answers: {} },
        { version: 1, service: svc, index: -1, answers: {} },
      ]) {
        expect(() => Conversation.fromJSON(bad), JSON.stringify(bad)).to.throw(TypeError);
      }
    });
  });

  describe('media held in a Blob', () => {
    it('must be read first', () => {
      const c = one({ argument_name: 'img', type: 'image' });
      expect(() => c.answer({ mime: 'image/png', data: new Blob([PNG]) })).to.throw(TypeError, /mediaFromBlob/);
    });
  });
});
