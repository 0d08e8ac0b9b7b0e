import { expect } from 'chai';
import {
  decodeDataUrl,
  encodeMessage,
  FrameDecoder,
  HubError,
  inlineMedia,
  isBase64,
  MAX_MESSAGE_DEPTH,
  parseMessage,
  type FrameDecoderOptions,
} from '@utils-hub/protocol';

type Msg = Record<string, unknown>;

/** A decoder that records what it hands on. */
function recorder(options: Partial<FrameDecoderOptions> = {}) {
  const messages: { message: Msg; raw: string }[] = [];
  const errors: HubError[] = [];
  const decoder = new FrameDecoder({
    onMessage: (message, raw) => messages.push({ message, raw }),
    onError: (error) => errors.push(error),
    ...options,
  });
  const send = (text: string, binaries: Uint8Array[] = []) => {
    decoder.push(text, false);
    for (const b of binaries) decoder.push(b, true);
  };
  return { decoder, messages, errors, send };
}

/**
 * A message whose `result` is a chain of `levels` objects: the root is level 1, the deepest
 * object of the chain is level `levels + 1` and `leaf` sits at level `levels + 2`.
 */
function nested(levels: number, leaf: unknown, extra: Msg = {}): Msg {
  let v: unknown = leaf;
  for (let i = 0; i < levels; i++) v = { a: v };
  return { type: 'result', task_id: 't', ...extra, result: v };
}

describe('encodeMessage', () => {
  it('leaves a message without bytes as JSON and sets no attachments', () => {
    const msg = { type: 'result', task_id: 't', result: { a: [1, 'x', null] } };
    const enc = encodeMessage(msg);
    expect(enc.text).to.equal(JSON.stringify(msg));
    expect(enc.binaries).to.deep.equal([]);
  });

  it('turns media objects into refs, $attachment first, in document order', () => {
    const png = Buffer.from('png');
    const jpg = Buffer.from('jpg');
    const enc = encodeMessage({
      type: 'task',
      task_id: 't',
      timeout_ms: 1,
      attempt: 1,
      args: { first: { mime: 'image/png', name: 'a.png', data: png }, list: [{ mime: 'image/jpeg', data: jpg }] },
    });
    expect(JSON.parse(enc.text)).to.deep.equal({
      type: 'task',
      task_id: 't',
      timeout_ms: 1,
      attempt: 1,
      args: { first: { $attachment: 0, mime: 'image/png', name: 'a.png' }, list: [{ $attachment: 1, mime: 'image/jpeg' }] },
      attachments: 2,
    });
    expect(enc.text).to.contain('{"$attachment":0,"mime":"image/png","name":"a.png"}');
    expect(enc.binaries).to.have.length(2);
    expect(enc.binaries[0]).to.equal(png);
    expect(enc.binaries[1]).to.equal(jpg);
  });

  it('turns bare bytes into bare refs, sending Buffers and Uint8Arrays as they are, not copied', () => {
    const b = Buffer.from('a');
    const u = new Uint8Array([1, 2, 3]);
    const enc = encodeMessage({ type: 'result', task_id: 't', result: [b, u] });
    expect(JSON.parse(enc.text).result).to.deep.equal([{ $attachment: 0 }, { $attachment: 1 }]);
    expect(enc.binaries[0]).to.equal(b);
    expect(enc.binaries[1]).to.equal(u);
  });

  it('makes bytes in the root `data` a bare ref, not the message a media object', () => {
    const enc = encodeMessage({ type: 'progress', task_id: 't', progress: 0.5, data: Buffer.from('preview') });
    expect(JSON.parse(enc.text)).to.deep.equal({ type: 'progress', task_id: 't', progress: 0.5, data: { $attachment: 0 }, attachments: 1 });
  });

  it('does not mutate its input', () => {
    const data = Buffer.from('x');
    const msg = { type: 'result', task_id: 't', result: { image: { mime: 'image/png', data }, keep: { a: 1 } }, attachments: 7 };
    const before = structuredClone(msg);
    encodeMessage(msg);
    expect(msg).to.deep.equal(before);
    expect(msg.result.image.data).to.equal(data);
  });

  it('replaces a stale attachments count, or drops it when there are no bytes', () => {
    expect(JSON.parse(encodeMessage({ type: 'result', task_id: 't', result: Buffer.from('a'), attachments: 5 }).text).attachments).to.equal(1);
    const text = encodeMessage({ type: 'result', task_id: 't', result: 1, attachments: 5 }).text;
    expect(JSON.parse(text)).to.not.have.property('attachments');
  });

  it('takes 16 attachments and refuses 17 with payload_too_large', () => {
    const sixteen = Array.from({ length: 16 }, (_, i) => Buffer.from([i]));
    expect(encodeMessage({ type: 'result', task_id: 't', result: sixteen }).binaries).to.have.length(16);
    try {
      encodeMessage({ type: 'result', task_id: 't', result: [...sixteen, Buffer.from('x')] });
      expect.fail('expected payload_too_large');
    } catch (err) {
      expect(err).to.be.instanceOf(HubError);
      expect((err as HubError).code).to.equal('payload_too_large');
    }
  });

  it('refuses what JSON cannot write with bad_message', () => {
    const cyclic: Msg = { type: 'result', task_id: 't' };
    cyclic.result = cyclic;
    for (const msg of [cyclic, { type: 'result', task_id: 't', result: 1n }]) {
      try {
        encodeMessage(msg);
        expect.fail('expected bad_message');
      } catch (err) {
        expect((err as HubError).code).to.equal('bad_message');
      }
    }
  });

  it('keeps a __proto__ key as data', () => {
    const msg = JSON.parse('{"type":"result","task_id":"t","result":{"__proto__":{"x":1},"b":"b"}}') as Msg;
    (msg.result as Msg).b = Buffer.from('b');
    const enc = encodeMessage(msg);
    expect(enc.text).to.equal('{"type":"result","task_id":"t","result":{"__proto__":{"x":1},"b":{"$attachment":0}},"attachments":1}');
    expect(({} as Msg).x).to.equal(undefined);
  });
});

describe('FrameDecoder', () => {
  describe('round trips', () => {
    it('gives back the message with Buffers in place of refs', () => {
      const png = Buffer.from('png bytes');
      const wav = Buffer.alloc(1000, 7);
      const original = {
        type: 'add_task',
        ref: 'c-1',
        service_id: 1,
        args: { image: { mime: 'image/png', name: 'cat.png', data: png }, sound: { mime: 'audio/wav', data: wav }, angle: 90 },
      };
      const enc = encodeMessage(original);
      const r = recorder();
      r.send(enc.text, enc.binaries);
      expect(r.errors).to.deep.equal([]);
      expect(r.messages).to.have.length(1);
      const got = r.messages[0].message;
      expect(got).to.deep.equal({ ...original, attachments: 2 });
      expect(Buffer.isBuffer((got.args as { image: { data: unknown } }).image.data)).to.equal(true);
      expect(r.messages[0].raw).to.equal(enc.text);
      expect(() => parseMessage('clientToHub', got)).not.to.throw();
    });

    it('gives back bare bytes as {data}', () => {
      const enc = encodeMessage({ type: 'progress', task_id: 't', data: Buffer.from('p') });
      const r = recorder();
      r.send(enc.text, enc.binaries);
      expect(r.messages[0].message).to.deep.equal({ type: 'progress', task_id: 't', data: { data: Buffer.from('p') }, attachments: 1 });
    });

    it('round-trips 16 attachments in arrays and objects', () => {
      const original = {
        type: 'result',
        task_id: 't',
        result: Array.from({ length: 16 }, (_, i) =>
          i % 2 ? { mime: 'image/png', data: Buffer.from([i]) } : { nested: [{ mime: 'a/b', data: Buffer.from([i, i]) }] },
        ),
      };
      const enc = encodeMessage(original);
      const r = recorder();
      r.send(enc.text, enc.binaries);
      expect(r.messages[0].message).to.deep.equal({ ...original, attachments: 16 });
    });

    it(`round-trips a media object nested ${MAX_MESSAGE_DEPTH + 1} levels deep`, () => {
      const original = nested(MAX_MESSAGE_DEPTH - 1, { mime: 'a/b', data: Buffer.from('deep') });
      const enc = encodeMessage(original);
      expect(enc.binaries).to.have.length(1);
      const r = recorder();
      r.send(enc.text, enc.binaries);
      expect(r.errors).to.deep.equal([]);
      expect(r.messages[0].message).to.deep.equal({ ...original, attachments: 1 });
    });

    it('round-trips many messages in a row on one decoder', () => {
      const r = recorder();
      for (let i = 0; i < 50; i++) {
        const enc = encodeMessage({ type: 'result', task_id: `t${i}`, result: i % 3 ? { mime: 'a/b', data: Buffer.from([i]) } : i });
        r.send(enc.text, enc.binaries);
      }
      expect(r.errors).to.deep.equal([]);
      expect(r.messages.map((m) => m.message.task_id)).to.deep.equal(Array.from({ length: 50 }, (_, i) => `t${i}`));
    });

    it('takes frames as ws hands them: Buffer text, ArrayBuffer and Buffer[] binaries', () => {
      const enc = encodeMessage({ type: 'result', task_id: 't', result: [Buffer.from('ab'), Buffer.from('cd')] });
      const r = recorder();
      r.decoder.push(Buffer.from(enc.text), false);
      const ab = new ArrayBuffer(2);
      new Uint8Array(ab).set([97, 98]);
      r.decoder.push(ab, true);
      r.decoder.push([Buffer.from('c'), Buffer.from('d')], true);
      expect(r.errors).to.deep.equal([]);
      expect(r.messages[0].message.result).to.deep.equal([{ data: Buffer.from('ab') }, { data: Buffer.from('cd') }]);
    });
  });

  describe('plain messages', () => {
    it('hands on a message without attachments as parsed, unwalked', () => {
      const r = recorder();
      const text = '{"type":"result","task_id":"t","result":{"$attachment":0}}';
      r.send(text);
      expect(r.messages).to.deep.equal([{ message: JSON.parse(text), raw: text }]);
    });

    it('parses each text frame once', () => {
      const parse = JSON.parse;
      let calls = 0;
      JSON.parse = ((...a: Parameters<typeof parse>) => {
        calls++;
        return parse(...a);
      }) as typeof JSON.parse;
      try {
        const r = recorder();
        r.send('{"type":"drain"}');
        const enc = encodeMessage({ type: 'result', task_id: 't', result: Buffer.from('x') });
        r.send(enc.text, enc.binaries);
        expect(r.messages).to.have.length(2);
      } finally {
        JSON.parse = parse;
      }
      expect(calls).to.equal(2);
    });

    it('hands on a deeply nested message without attachments', () => {
      const r = recorder();
      r.send(`{"type":"result","task_id":"t","result":${'['.repeat(10_000)}${']'.repeat(10_000)}}`);
      expect(r.errors).to.deep.equal([]);
      expect(r.messages).to.have.length(1);
    });
  });

  describe('broken frames', () => {
    const BROKEN_TEXT: [string, string][] = [
      ['not JSON', 'a text frame must hold valid JSON'],
      ['', 'a text frame must hold valid JSON'],
      ['{"type":', 'a text frame must hold valid JSON'],
      ['[{"type":"drain"}]', 'a message must be a JSON object with a string "type"'],
      ['null', 'a message must be a JSON object with a string "type"'],
      ['"drain"', 'a message must be a JSON object with a string "type"'],
      ['{}', 'a message must be a JSON object with a string "type"'],
      ['{"type":5}', 'a message must be a JSON object with a string "type"'],
    ];
    for (const [text, message] of BROKEN_TEXT) {
      it(`answers ${JSON.stringify(text)} with bad_message and keeps working`, () => {
        const r = recorder();
        r.send(text);
        r.send('{"type":"drain"}');
        expect(r.errors.map((e) => [e.code, e.message])).to.deep.equal([['bad_message', message]]);
        expect(r.messages.map((m) => m.message)).to.deep.equal([{ type: 'drain' }]);
      });
    }

    for (const count of ['0', '-1', '1.5', '"2"', 'null', '17', '1e9']) {
      it(`refuses "attachments": ${count} with bad_message`, () => {
        const r = recorder();
        r.send(`{"type":"result","task_id":"t","result":1,"attachments":${count}}`);
        expect(r.errors).to.have.length(1);
        expect(r.errors[0].code).to.equal('bad_message');
        expect(r.errors[0].message).to.match(/^"attachments" must be a whole number from 1 to 16/);
        expect(r.errors[0].details).to.deep.equal({ task_id: 't' });
        expect(r.decoder.pending).to.equal(0);
      });
    }

    it('swallows the frames of a count over the maximum, then reads on', () => {
      const r = recorder();
      r.send(
        '{"type":"result","task_id":"t","result":1,"attachments":20}',
        Array.from({ length: 20 }, () => Buffer.from('x')),
      );
      r.send('{"type":"drain"}');
      expect(r.errors).to.have.length(1);
      expect(r.messages.map((m) => m.message)).to.deep.equal([{ type: 'drain' }]);
    });

    it('honours a smaller maxAttachments', () => {
      const r = recorder({ maxAttachments: 1 });
      const enc = encodeMessage({ type: 'result', task_id: 't', result: [Buffer.from('a'), Buffer.from('b')] });
      r.send(enc.text, enc.binaries);
      expect(r.errors.map((e) => e.message)).to.deep.equal(['"attachments" must be a whole number from 1 to 1, got 2']);
      expect(r.messages).to.deep.equal([]);
    });

    it('answers a binary frame that nobody announced', () => {
      const r = recorder();
      r.decoder.push(Buffer.from('stray'), true);
      r.send('{"type":"drain"}');
      expect(r.errors.map((e) => [e.code, e.message])).to.deep.equal([['bad_message', 'a binary frame must follow a message that announces it']]);
      expect(r.messages).to.have.length(1);
    });

    it('answers each binary frame beyond the count', () => {
      const enc = encodeMessage({ type: 'result', task_id: 't', result: Buffer.from('a') });
      const r = recorder();
      r.send(enc.text, [...enc.binaries, Buffer.from('extra'), Buffer.from('extra')]);
      expect(r.messages).to.have.length(1);
      expect(r.errors.map((e) => e.code)).to.deep.equal(['bad_message', 'bad_message']);
    });

    it('drops a message whose frames are missing when the next message comes, and reads that one', () => {
      const r = recorder();
      r.send('{"type":"add_task","ref":"c-7","service_id":1,"args":[{"$attachment":1}],"attachments":2}', [Buffer.from('only one')]);
      expect(r.decoder.pending).to.equal(1);
      r.send('{"type":"subscribe","task_id":"t"}');
      expect(r.errors).to.have.length(1);
      expect(r.errors[0].code).to.equal('bad_message');
      expect(r.errors[0].message).to.equal('a "add_task" message announced 2 attachment(s), but the next message came after 1');
      expect(r.errors[0].details).to.deep.equal({ ref: 'c-7' });
      expect(r.errors[0].toJSON()).to.deep.equal({ code: 'bad_message', message: r.errors[0].message, ref: 'c-7' });
      expect(r.messages.map((m) => m.message)).to.deep.equal([{ type: 'subscribe', task_id: 't' }]);
      expect(r.decoder.pending).to.equal(0);
    });

    for (const ref of ['2', '-1', '0.5', '"0"', 'null', '[0]']) {
      it(`refuses "$attachment": ${ref} in a message with 2 attachments`, () => {
        const r = recorder();
        r.send(`{"type":"result","task_id":"t","result":{"$attachment":${ref}},"attachments":2}`, [Buffer.from('a'), Buffer.from('b')]);
        expect(r.messages).to.deep.equal([]);
        expect(r.errors).to.have.length(1);
        expect(r.errors[0].code).to.equal('bad_message');
        expect(r.errors[0].message).to.match(/^"\$attachment" .* does not name one of the 2 attachment\(s\) of this message$/);
      });
    }

    it('refuses bytes over maxAttachmentBytes with payload_too_large, swallowing the rest', () => {
      const r = recorder({ maxAttachmentBytes: 10 });
      const enc = encodeMessage({ type: 'result', task_id: 't', result: [Buffer.alloc(6), Buffer.alloc(6), Buffer.alloc(6)] });
      r.send(enc.text, enc.binaries);
      r.send('{"type":"drain"}');
      expect(r.errors.map((e) => [e.code, e.details])).to.deep.equal([['payload_too_large', { task_id: 't' }]]);
      expect(r.errors[0].status).to.equal(413);
      expect(r.messages.map((m) => m.message)).to.deep.equal([{ type: 'drain' }]);
    });

    it('takes bytes up to maxAttachmentBytes exactly', () => {
      const r = recorder({ maxAttachmentBytes: 12 });
      const enc = encodeMessage({ type: 'result', task_id: 't', result: [Buffer.alloc(6), Buffer.alloc(6)] });
      r.send(enc.text, enc.binaries);
      expect(r.errors).to.deep.equal([]);
      expect(r.messages).to.have.length(1);
    });

    it(`walks ${MAX_MESSAGE_DEPTH} levels of containers (a ref may sit in the last) and refuses one more`, () => {
      const ok = recorder();
      ok.send(JSON.stringify(nested(MAX_MESSAGE_DEPTH - 1, { $attachment: 0 }, { attachments: 1 })), [Buffer.from('x')]);
      expect(ok.errors).to.deep.equal([]);
      expect(ok.messages).to.have.length(1);

      const deep = recorder();
      deep.send(JSON.stringify(nested(MAX_MESSAGE_DEPTH, { $attachment: 0 }, { attachments: 1 })), [Buffer.from('x')]);
      expect(deep.messages).to.deep.equal([]);
      expect(deep.errors.map((e) => [e.code, e.message])).to.deep.equal([
        ['bad_message', `a message with attachments may nest at most ${MAX_MESSAGE_DEPTH} levels deep`],
      ]);
    });

    it('refuses a message with attachments nested 200000 levels without blowing the stack', () => {
      const r = recorder();
      r.send(`{"type":"result","task_id":"t","attachments":1,"result":${'['.repeat(200_000)}${']'.repeat(200_000)}}`, [Buffer.from('x')]);
      expect(r.errors.map((e) => e.code)).to.deep.equal(['bad_message']);
      r.send('{"type":"drain"}');
      expect(r.messages).to.have.length(1);
    });
  });

  describe('hostile keys', () => {
    it('replaces a ref under an own __proto__ key without touching prototypes', () => {
      const r = recorder();
      r.send('{"type":"result","task_id":"t","attachments":1,"result":{"__proto__":{"$attachment":0,"mime":"a/b"}}}', [Buffer.from('x')]);
      expect(r.errors).to.deep.equal([]);
      const result = r.messages[0].message.result as Msg;
      expect(Object.getPrototypeOf(result)).to.equal(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(result, '__proto__')?.value).to.deep.equal({ mime: 'a/b', data: Buffer.from('x') });
      expect(({} as Msg).mime).to.equal(undefined);
    });

    it('keeps a __proto__ key inside a ref as data', () => {
      const r = recorder();
      r.send('{"type":"result","task_id":"t","attachments":1,"result":{"$attachment":0,"__proto__":{"polluted":1}}}', [Buffer.from('x')]);
      const result = r.messages[0].message.result as Msg;
      expect(Object.keys(result).sort()).to.deep.equal(['__proto__', 'data']);
      expect(({} as Msg).polluted).to.equal(undefined);
    });

    it('ignores inherited $attachment and keys', () => {
      const proto = Object.prototype as Msg;
      proto.$attachment = 0;
      try {
        const r = recorder();
        r.send('{"type":"result","task_id":"t","attachments":1,"result":{"plain":{"x":1},"ref":{"$attachment":0}}}', [Buffer.from('x')]);
        expect(r.errors).to.deep.equal([]);
        const result = r.messages[0].message.result as Msg;
        expect(Object.keys(result.plain as Msg)).to.deep.equal(['x']);
        expect(result.ref).to.deep.equal({ data: Buffer.from('x') });
      } finally {
        delete proto.$attachment;
      }
    });

    it('lets one frame be referred to twice and drops frames never referred to', () => {
      const r = recorder();
      r.send('{"type":"result","task_id":"t","attachments":3,"result":[{"$attachment":1},{"$attachment":1}]}', [
        Buffer.from('a'),
        Buffer.from('b'),
        Buffer.from('c'),
      ]);
      expect(r.messages[0].message.result).to.deep.equal([{ data: Buffer.from('b') }, { data: Buffer.from('b') }]);
    });
  });

  describe('callbacks', () => {
    it('passes a HubError thrown by onMessage to onError', () => {
      const errors: HubError[] = [];
      const d = new FrameDecoder({
        onMessage: (m) => parseMessage('clientToHub', m),
        onError: (e) => errors.push(e),
      });
      d.push('{"type":"nope"}', false);
      expect(errors.map((e) => e.code)).to.deep.equal(['bad_message']);
    });

    it('passes anything else thrown by onMessage as internal', () => {
      const errors: HubError[] = [];
      const d = new FrameDecoder({
        onMessage: () => {
          throw new Error('boom');
        },
        onError: (e) => errors.push(e),
      });
      d.push('{"type":"drain"}', false);
      expect(errors.map((e) => e.code)).to.deep.equal(['internal']);
    });

    it('never lets a throwing onError escape push', () => {
      let seen = 0;
      const d = new FrameDecoder({
        onMessage: () => {
          seen++;
        },
        onError: () => {
          throw new Error('handler bug');
        },
      });
      expect(() => d.push('nope', false)).not.to.throw();
      expect(() => d.push(Buffer.from('x'), true)).not.to.throw();
      d.push('{"type":"drain"}', false);
      expect(seen).to.equal(1);
    });

    it('counts pending frames', () => {
      const r = recorder();
      expect(r.decoder.pending).to.equal(0);
      r.decoder.push('{"type":"result","task_id":"t","result":[{"$attachment":0},{"$attachment":1}],"attachments":2}', false);
      expect(r.decoder.pending).to.equal(2);
      r.decoder.push(Buffer.from('a'), true);
      expect(r.decoder.pending).to.equal(1);
      r.decoder.push(Buffer.from('b'), true);
      expect(r.decoder.pending).to.equal(0);
      expect(r.messages).to.have.length(1);
    });
  });
});

describe('inlineMedia', () => {
  it('turns media bytes into base64', () => {
    const out = inlineMedia({ image: { mime: 'image/png', name: 'a.png', data: Buffer.from('png') }, n: 1 });
    expect(out).to.deep.equal({ image: { mime: 'image/png', name: 'a.png', data: Buffer.from('png').toString('base64') }, n: 1 });
  });

  it('gives bare bytes and media without mime application/octet-stream', () => {
    expect(inlineMedia(Buffer.from('x'))).to.deep.equal({ mime: 'application/octet-stream', data: 'eA==' });
    expect(inlineMedia([new Uint8Array([120])])).to.deep.equal([{ mime: 'application/octet-stream', data: 'eA==' }]);
    expect(inlineMedia({ data: Buffer.from('x') })).to.deep.equal({ mime: 'application/octet-stream', data: 'eA==' });
  });

  it('does not mutate its input and shares what it does not change', () => {
    const keep = { a: [1, 2] };
    const input = { keep, list: [{ mime: 'a/b', data: Buffer.from('x') }] };
    const out = inlineMedia(input) as typeof input;
    expect(Buffer.isBuffer(input.list[0].data)).to.equal(true);
    expect(out.keep).to.equal(keep);
    expect(out).to.not.equal(input);
    const plain = { a: { b: [1] } };
    expect(inlineMedia(plain)).to.equal(plain);
  });

  it('passes scalars through', () => {
    for (const v of [null, 1, 'x', true, undefined]) expect(inlineMedia(v)).to.equal(v);
  });

  it('keeps __proto__ keys as data', () => {
    const input = JSON.parse('{"__proto__":{"x":1},"m":{"mime":"a/b"}}') as Msg;
    (input.m as Msg).data = Buffer.from('x');
    const out = inlineMedia(input) as Msg;
    expect(Object.getOwnPropertyDescriptor(out, '__proto__')?.value).to.deep.equal({ x: 1 });
    expect(({} as Msg).x).to.equal(undefined);
  });

  it('does not blow the stack on deep values', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    expect(inlineMedia(deep)).to.equal(deep);
  });
});

describe('isBase64', () => {
  const GOOD = ['', 'QQ==', 'QUI=', 'QUJD', 'QQ', 'QUI', 'QUJDRA==', 'ab+/', Buffer.from([0, 255, 254, 1]).toString('base64')];
  const BAD = ['Q', 'QQ=', 'Q===', '====', '=', 'QQ==QQ==', 'QU=I', 'QUJ-', 'QUJ_', 'QU JD', 'QUJD\n', 'é', 'QUJDR'];
  for (const s of GOOD) it(`accepts ${JSON.stringify(s)}`, () => expect(isBase64(s)).to.equal(true));
  for (const s of BAD) it(`rejects ${JSON.stringify(s)}`, () => expect(isBase64(s)).to.equal(false));
  it('rejects what is not a string', () => expect(isBase64(5 as unknown as string)).to.equal(false));
  it('checks 40 MB quickly', () => {
    const s = Buffer.alloc(30_000_000, 1).toString('base64');
    const t = performance.now();
    expect(isBase64(s)).to.equal(true);
    expect(isBase64(`${s}!`)).to.equal(false);
    expect(performance.now() - t).to.be.below(5000);
  });
});

describe('decodeDataUrl', () => {
  it('decodes a base64 data URL', () => {
    expect(decodeDataUrl('data:image/png;base64,iVBORw==')).to.deep.equal({ mime: 'image/png', data: Buffer.from('iVBORw==', 'base64') });
  });
  it('keeps parameters and defaults an empty mime to text/plain', () => {
    expect(decodeDataUrl('data:text/plain;charset=utf-8;base64,aGk=')?.mime).to.equal('text/plain;charset=utf-8');
    expect(decodeDataUrl('data:;base64,aGk=')).to.deep.equal({ mime: 'text/plain', data: Buffer.from('hi') });
  });
  for (const url of [
    '',
    'data:',
    'data:image/png,hi',
    'data:image/png;base64',
    'data:image/png;base64,Q',
    'data:image/png;base64,iVBOR...',
    'http://x',
    'data:image;base64,QQ==',
    'data:image/png;base64;x=1,QQ==',
  ]) {
    it(`returns null for ${JSON.stringify(url)}`, () => expect(decodeDataUrl(url)).to.equal(null));
  }
});
