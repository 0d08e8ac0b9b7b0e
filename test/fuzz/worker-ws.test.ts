/**
 * Fuzz: the worker WebSocket (docs/protocol.md 5.1), before and after `welcome`.
 *
 * - Handshake: hellos with wrong, missing and extra fields, broken service descriptions, other
 *   protocols, first messages that are not hellos, frames sent before the welcome, broken UTF-8
 *   and frames over the limit. One connection per case: a refused hello ends its connection
 *   (`error` with the documented code, then close 1008).
 * - After welcome: every worker message type with wrong, missing and extra fields, hostile keys,
 *   deep nesting, attachment counts that lie and answers about unknown tasks, over one
 *   connection until the flood guard would close it; answers come from the model of
 *   support/ws-model.ts.
 * - Frames out of order about live tasks: progress, results and failures after the end, twice,
 *   after a cancel; each task ends exactly once, as its first end said, with events numbered
 *   from 1 without gaps, and GET /tasks agrees.
 *
 * Seeded and sized by FUZZ_SEED and FUZZ_RUNS (see support/settings.ts).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { count, params, runsOf, timeoutFor } from './support/settings.js';
import { startWatchedHub, echoWorker, type EchoWorker, type WatchedHub } from './support/hub-watch.js';
import { RawPeer, type Answer } from './support/raw-peer.js';
import { DecoderModel, about, floodHits, matches, walk, type Expect } from './support/ws-model.js';
import { FUZZ_INPUT, fuzzService } from './support/service.js';
import { RawJson, anyValue, brokenUtf8, deepJson, hostileKey, hostileString, jsonValue, notAMessage, notJson, objectOf, toJson } from './support/values.js';
import { http } from '../helpers/hub.js';

const LIMIT = 64 * 1024;
// Long enough that a loaded machine reads a whole hello before its deadline (a race the cases do not model).
const HELLO_TIMEOUT = 500;

type Field = { absent: true } | { value: unknown; bad?: boolean };
const absent: Field = { absent: true };
const fits = (a: fc.Arbitrary<unknown>) => a.map((value): Field => ({ value }));
const breaks = (a: fc.Arbitrary<unknown>) => a.map((value): Field => ({ value, bad: true }));
const put = (entries: Array<[string, unknown]>, key: string, f: Field) => {
  if (!('absent' in f)) entries.push([key, f.value]);
};
const isBad = (f: Field) => 'bad' in f && f.bad === true;
/** Extra members, never named like a member the hub reads. */
const extraFields = fc.array(
  fc.tuple(
    hostileKey.filter(
      (k) =>
        ![
          'type',
          'ref',
          'task_id',
          'attachments',
          'protocol',
          'me',
          'concurrency',
          'instance',
          'max_message_bytes',
          'progress',
          'message',
          'data',
          'result',
          'error',
        ].includes(k),
    ),
    anyValue,
  ),
  { maxLength: 2 },
);
const taskIdBreaks = breaks(
  fc.oneof(
    fc.constantFrom(5, null, true, [], {}, ''),
    fc.integer({ min: 65, max: 400 }).map((n) => 't'.repeat(n)),
  ),
);
const unknownTaskId = fc.oneof(
  fc.string({ minLength: 1, maxLength: 21 }),
  hostileString.filter((s) => s.length >= 1 && s.length <= 64),
);

// ---- the handshake ----

/** A service description and what the hub makes of it. */
type MePlan = { me: Field; verdict: 'ok' | 'bad_service_description' | 'conflict' | 'same' };

/** Extra members of a description: JSON (a description must hold JSON values only), under names it does not use. */
const meExtra = fc.array(
  fc.tuple(
    hostileKey.filter((k) => !['name', 'description', 'input', 'output'].includes(k)),
    jsonValue,
  ),
  { maxLength: 2 },
);
const arg = (over: Record<string, unknown>) => ({ argument_name: 'a', type: 'int', ...over });
const meBroken: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>('svc', 5, null, [], true),
  fc.constantFrom<Record<string, unknown>>(
    { name: '', description: '', input: [] },
    { name: 'x'.repeat(65), description: '', input: [] },
    { name: 'bad name!', description: '', input: [] },
    { name: 5, description: '', input: [] },
    { description: '', input: [] },
    { name: 'n', input: [] },
    { name: 'n', description: 5, input: [] },
    { name: 'n', description: 'x'.repeat(65_537), input: [] },
    { name: 'n', description: '' },
    { name: 'n', description: '', input: 'x' },
    { name: 'n', description: '', input: [arg({ type: 'complex' })] },
    { name: 'n', description: '', input: [arg({}), arg({ type: 'str' })] },
    { name: 'n', description: '', input: [arg({ default: 'x' })] },
    { name: 'n', description: '', input: [arg({ min: 5, max: 1 })] },
    { name: 'n', description: '', input: [arg({ mime: ['image/png'] })] },
    { name: 'n', description: '', input: [arg({ choices: ['a'] })] },
    { name: 'n', description: '', input: [arg({ type: 'image', mime: ['text/plain'] })] },
    { name: 'n', description: '', input: [arg({ argument_name: 'bad-name' })] },
    { name: 'n', description: '', input: [arg({ argument_name: '' })] },
    { name: 'n', description: '', input: [arg({ required: 'no' })] },
    { name: 'n', description: '', input: [arg({ max_bytes: -1, type: 'file' })] },
    { name: 'n', description: '', input: Array.from({ length: 65 }, (_, i) => arg({ argument_name: `a${i}` })) },
    { name: 'n', description: '', input: [], output: 'x' },
  ),
  fc.integer({ min: 70, max: 20_000 }).map((d) => ({ name: 'n', description: '', input: [], extra: deepJson(d, 'mixed') })),
);

const mePlan: fc.Arbitrary<MePlan> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.tuple(fc.array(fc.constantFrom(...FUZZ_INPUT), { maxLength: 4 }), meExtra, fc.boolean()).map(([input, extra, proto]) => {
      const unique = [...new Map(input.map((a) => [a.argument_name, a])).values()];
      const args = proto ? [...unique, { argument_name: '__proto__', type: 'json', required: false }] : unique;
      return { me: { value: objectOf([['name', 'placeholder'], ['description', 'fuzzed'], ['input', args], ...extra]) }, verdict: 'ok' as const };
    }),
  },
  { weight: 4, arbitrary: meBroken.map((value) => ({ me: { value }, verdict: 'bad_service_description' as const })) },
  { weight: 1, arbitrary: fc.constantFrom('conflict' as const, 'same' as const).map((verdict) => ({ me: absent, verdict })) },
  { weight: 1, arbitrary: fc.constant({ me: { ...absent, bad: true } as unknown as Field, verdict: 'ok' as const }) },
);

type HelloPlan =
  | {
      kind: 'hello';
      protocol: Field;
      concurrency: Field;
      instance: Field;
      maxMessageBytes: Field;
      me: MePlan;
      extra: Array<[string, unknown]>;
      /** Frames sent right after the hello, before its welcome can come. */
      then: 'nothing' | 'text' | 'binary';
      /** The hello announces attachments: how many, and how many follow. */
      attach: null | { n: number; sent: number };
    }
  | { kind: 'first'; text: string }
  | { kind: 'stray' }
  | { kind: 'utf8'; bytes: Buffer }
  | { kind: 'huge'; size: number }
  | { kind: 'silent' };

const helloPlan: fc.Arbitrary<HelloPlan> = fc.oneof(
  {
    weight: 48,
    arbitrary: fc.record({
      kind: fc.constant('hello' as const),
      protocol: fc.oneof(
        { weight: 6, arbitrary: fits(fc.constant(1)) },
        { weight: 1, arbitrary: fits(fc.constantFrom(0, 2, 99)) },
        { weight: 1, arbitrary: breaks(fc.constantFrom<unknown>('1', 1.5, -1, null, true, new RawJson('1e999'))) },
        { weight: 1, arbitrary: fc.constant({ ...absent, bad: true } as unknown as Field) },
      ),
      concurrency: fc.oneof(
        { weight: 4, arbitrary: fc.constant(absent) },
        { weight: 4, arbitrary: fits(fc.integer({ min: 1, max: 1024 })) },
        { weight: 1, arbitrary: breaks(fc.constantFrom<unknown>(0, 1025, -1, 1.5, '4', null, 2 ** 53)) },
      ),
      instance: fc.oneof(
        { weight: 4, arbitrary: fc.constant(absent) },
        { weight: 4, arbitrary: fits(hostileString.filter((s) => s.length <= 256)) },
        { weight: 1, arbitrary: breaks(fc.oneof(fc.constantFrom<unknown>(5, null, [], {}), fc.constant('i'.repeat(257)))) },
      ),
      // At least twice the hub's limit: a fitting hello takes every task the fuzz sends.
      maxMessageBytes: fc.oneof(
        { weight: 4, arbitrary: fc.constant(absent) },
        { weight: 2, arbitrary: fits(fc.integer({ min: 2 * LIMIT, max: 2 ** 40 })) },
        { weight: 1, arbitrary: breaks(fc.constantFrom<unknown>(1023, 0, -1, 1.5, '4096', null, true, new RawJson('1e999'))) },
      ),
      me: mePlan,
      extra: extraFields,
      // biome-ignore lint/suspicious/noThenProperty: a plain record of the case, never awaited
      then: fc.constantFrom('nothing', 'nothing', 'nothing', 'nothing', 'text', 'binary'),
      attach: fc.oneof(
        { weight: 20, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 3 })).map(([n, sent]) => ({ n, sent: Math.min(n, sent) })) },
      ),
    }),
  },
  {
    weight: 12,
    arbitrary: fc
      .oneof(
        notJson,
        notAMessage,
        fc.constantFrom(
          '{"type":"drain"}',
          '{"type":"progress","task_id":"x"}',
          '{"type":"result","task_id":"x","result":1}',
          '{"type":"welcome"}',
          '{"type":"hello2"}',
        ),
      )
      .map((text) => ({ kind: 'first' as const, text })),
  },
  { weight: 4, arbitrary: fc.constant({ kind: 'stray' as const }) },
  { weight: 4, arbitrary: brokenUtf8.map((bytes) => ({ kind: 'utf8' as const, bytes })) },
  { weight: 4, arbitrary: fc.integer({ min: LIMIT + 1, max: 2 * LIMIT }).map((size) => ({ kind: 'huge' as const, size })) },
  // Rare: each waits for the hello deadline.
  { weight: 1, arbitrary: fc.constant({ kind: 'silent' as const }) },
);

// ---- after welcome ----

/** A worker message once welcomed, with what its handler answers if it arrives whole. */
type AfterPlan =
  | { op: 'progress'; taskId: Field; progress: Field; message: Field; data: Field; extra: Array<[string, unknown]> }
  | { op: 'result'; taskId: Field; result: Field; extra: Array<[string, unknown]> }
  | { op: 'failed'; taskId: Field; error: Field; extra: Array<[string, unknown]> }
  | { op: 'drain' | 'hello'; extra: Array<[string, unknown]> }
  | { op: 'attach'; kind: 'progress' | 'result'; taskId: string; announce: unknown; frames: number[]; ref: number }
  | { op: 'deep'; kind: 'progress' | 'result'; taskId: string; depth: number }
  | { op: 'garbage'; text: string }
  | { op: 'stray'; size: number }
  | { op: 'utf8'; bytes: Buffer }
  | { op: 'huge'; size: number };

const taskIdField = fc.oneof(
  { weight: 6, arbitrary: fits(unknownTaskId) },
  { weight: 1, arbitrary: taskIdBreaks },
  { weight: 1, arbitrary: fc.constant({ ...absent, bad: true } as unknown as Field) },
);
const valueField = fc.oneof({ weight: 6, arbitrary: fits(jsonValue) }, { weight: 1, arbitrary: fits(fc.constant(new RawJson('1e999'))) });

const afterPlan: fc.Arbitrary<AfterPlan> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('progress' as const),
      taskId: taskIdField,
      progress: fc.oneof(
        { weight: 3, arbitrary: fc.constant(absent) },
        { weight: 3, arbitrary: fits(fc.double({ min: 0, max: 1, noNaN: true })) },
        { weight: 2, arbitrary: breaks(fc.constantFrom<unknown>(1.5, -0.1, '0.5', null, true, new RawJson('1e999'), new RawJson('-1e999'))) },
      ),
      message: fc.oneof(
        { weight: 3, arbitrary: fc.constant(absent) },
        { weight: 3, arbitrary: fits(hostileString.filter((s) => s.length <= 65_536)) },
        { weight: 1, arbitrary: breaks(fc.constantFrom<unknown>(5, null, ['m'], 'm'.repeat(65_537))) },
      ),
      data: fc.oneof({ weight: 3, arbitrary: fc.constant(absent) }, { weight: 3, arbitrary: valueField }),
      extra: extraFields,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('result' as const),
      taskId: taskIdField,
      result: fc.oneof({ weight: 6, arbitrary: valueField }, { weight: 1, arbitrary: fc.constant({ ...absent, bad: true } as unknown as Field) }),
      extra: extraFields,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('failed' as const),
      taskId: taskIdField,
      error: fc.oneof(
        {
          weight: 4,
          arbitrary: fits(
            fc
              .record({ code: fc.string({ minLength: 1, maxLength: 128 }), message: hostileString.filter((s) => s.length <= 65_536) })
              .chain((e) => extraFields.map((x) => objectOf([...Object.entries(e), ...x]))),
          ),
        },
        {
          weight: 2,
          arbitrary: breaks(
            fc.constantFrom<unknown>(
              null,
              'boom',
              5,
              [],
              {},
              { code: 'x' },
              { message: 'x' },
              { code: '', message: 'x' },
              { code: 'c'.repeat(129), message: 'x' },
              { code: 5, message: 'x' },
              { code: 'x', message: 5 },
              { code: 'x', message: 'm'.repeat(65_537) },
            ),
          ),
        },
        { weight: 1, arbitrary: fc.constant({ ...absent, bad: true } as unknown as Field) },
      ),
      extra: extraFields,
    }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('drain' as const, 'hello' as const), extra: extraFields }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('attach' as const),
      kind: fc.constantFrom('progress' as const, 'result' as const),
      taskId: unknownTaskId,
      announce: fc.oneof(
        { weight: 6, arbitrary: fc.integer({ min: 1, max: 4 }) },
        { weight: 1, arbitrary: fc.constantFrom<unknown>(0, -1, 1.5, '2', null, 16) },
        { weight: 1, arbitrary: fc.integer({ min: 17, max: 30 }) },
      ),
      frames: fc.array(
        fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 1500 }) }, { weight: 1, arbitrary: fc.integer({ min: 20_000, max: LIMIT }) }),
        { maxLength: 6 },
      ),
      ref: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, 16, 99) }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant('deep' as const),
      kind: fc.constantFrom('progress' as const, 'result' as const),
      taskId: unknownTaskId,
      depth: fc.integer({ min: 70, max: 20_000 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        notJson,
        notAMessage,
        fc.constantFrom('{"type":"task"}', '{"type":"welcome"}', '{"type":"cancel","task_id":"x"}', '{"type":"error","code":"x","message":"y"}'),
      )
      .map((text) => ({ op: 'garbage' as const, text })),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 3000 }).map((size) => ({ op: 'stray' as const, size })) },
  { weight: 1, arbitrary: brokenUtf8.map((bytes) => ({ op: 'utf8' as const, bytes })) },
  { weight: 1, arbitrary: fc.integer({ min: LIMIT + 1, max: 2 * LIMIT }).map((size) => ({ op: 'huge' as const, size })) },
);

type Frame = { text: string; reply: Expect[] } | { binary: number } | { closes: number; bytes: Buffer };

/** Frames of one message of a welcomed worker, and what the hub answers if it arrives whole. */
function afterFrames(p: AfterPlan): Frame[] {
  const bad = (msg: object): Expect[] => [{ type: 'error', code: 'bad_message', ...about(msg) }];
  switch (p.op) {
    case 'garbage': {
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(p.text);
      } catch {
        // the model answers text that is not JSON
      }
      return [{ text: p.text, reply: bad(parsed ?? {}) }];
    }
    case 'stray':
      return [{ binary: p.size }];
    case 'utf8':
      return [{ closes: 1007, bytes: p.bytes }];
    case 'huge':
      return [{ closes: 1009, bytes: Buffer.from(`{"type":"result","task_id":"x","result":"${'x'.repeat(p.size)}"}`) }];
    case 'drain':
    case 'hello': {
      const msg = objectOf([
        ['type', p.op],
        ...(p.op === 'hello'
          ? ([
              ['protocol', 1],
              ['me', fuzzService('again')],
            ] as Array<[string, unknown]>)
          : []),
        ...p.extra,
      ]);
      // A drain takes no answer; a second hello is a bad message.
      return [{ text: toJson(msg), reply: p.op === 'hello' ? bad(msg) : [] }];
    }
    case 'deep': {
      const entries: Array<[string, unknown]> = [
        ['type', p.kind],
        ['task_id', p.taskId],
        [p.kind === 'result' ? 'result' : 'data', deepJson(p.depth, 'mixed')],
      ];
      const msg = objectOf(entries);
      // Nesting deeper than 64 levels: a bad message (docs/protocol.md), whatever the task.
      return [{ text: toJson(msg), reply: bad(msg) }];
    }
    case 'attach': {
      const value = { preview: { $attachment: p.ref, mime: 'image/png' } };
      const msg = objectOf([
        ['type', p.kind],
        ['task_id', p.taskId],
        [p.kind === 'result' ? 'result' : 'data', value],
        ['attachments', p.announce],
      ]);
      // About a task not in flight here: dropped without an answer once whole.
      return [{ text: toJson(msg), reply: [] }, ...p.frames.map((size) => ({ binary: size }))];
    }
    default: {
      const entries: Array<[string, unknown]> = [['type', p.op]];
      put(entries, 'task_id', p.taskId);
      let broken = isBad(p.taskId);
      if (p.op === 'progress') {
        put(entries, 'progress', p.progress);
        put(entries, 'message', p.message);
        put(entries, 'data', p.data);
        broken ||= isBad(p.progress) || isBad(p.message);
      } else if (p.op === 'result') {
        put(entries, 'result', p.result);
        broken ||= isBad(p.result);
      } else {
        put(entries, 'error', p.error);
        broken ||= isBad(p.error);
      }
      const msg = objectOf([...p.extra.slice(0, 1), ...entries, ...p.extra.slice(1)]);
      return [{ text: toJson(msg), reply: broken ? bad(msg) : [] }];
    }
  }
}

describe('Fuzz: worker WebSocket', () => {
  let hub: WatchedHub;
  let live: EchoWorker;
  let k = 0;

  before(async () => {
    // No ended task in memory: task ends are read back from the database.
    hub = await startWatchedHub({ maxMessageBytes: LIMIT, helloTimeoutMs: HELLO_TIMEOUT, taskTimeoutMs: 60_000, endedCacheSize: 0 });
    live = await echoWorker(hub, fuzzService('fuzz_worker_live'));
  });
  after(async () => {
    await live?.close();
    await hub?.close();
  });

  it('handshake: welcome, or the documented error and close 1008; 1007 and 1009 for broken and oversized frames; 1008 without a hello in time', async function () {
    const runs = runsOf(100);
    this.timeout(timeoutFor(runs, 100));
    await fc.assert(
      fc.asyncProperty(helloPlan, async (p) => {
        count('worker handshake');
        const peer = await RawPeer.open(`${hub.wsUrl}/worker`);
        try {
          let codes: string[] | null = null; // null: welcome expected
          let close = 1008;
          let what = p.kind;
          switch (p.kind) {
            case 'first':
              peer.text(p.text);
              if (Buffer.byteLength(p.text) > LIMIT) {
                close = 1009;
                codes = [];
              } else codes = ['bad_message'];
              break;
            case 'stray':
              peer.binary(Buffer.from('stray'));
              codes = ['bad_message'];
              break;
            case 'utf8':
              peer.text(p.bytes);
              close = 1007;
              codes = [];
              break;
            case 'huge':
              peer.text(`{"type":"hello","pad":"${'x'.repeat(p.size)}"}`);
              close = 1009;
              codes = [];
              break;
            case 'silent':
              codes = [];
              break;
            case 'hello': {
              const entries: Array<[string, unknown]> = [['type', 'hello']];
              put(entries, 'protocol', p.protocol);
              put(entries, 'concurrency', p.concurrency);
              put(entries, 'instance', p.instance);
              put(entries, 'max_message_bytes', p.maxMessageBytes);
              const name = `fz_hello_${++k}`;
              let me: unknown;
              if (p.me.verdict === 'conflict') me = { ...fuzzService('fuzz_worker_live'), description: 'another description' };
              else if (p.me.verdict === 'same') me = fuzzService('fuzz_worker_live');
              else if ('value' in p.me.me) me = p.me.me.value;
              if (me && typeof me === 'object' && !Array.isArray(me) && (me as { name?: unknown }).name === 'placeholder') (me as { name: string }).name = name;
              if (me !== undefined) entries.push(['me', me]);
              if (p.attach) entries.push(['attachments', p.attach.n]);
              const msg = objectOf([...p.extra, ...entries]);
              const text = toJson(msg);
              what = text.slice(0, 300) as typeof what;
              if (Buffer.byteLength(text) > LIMIT) {
                peer.text(text);
                close = 1009;
                codes = [];
                break;
              }
              // A message with attachments is refused for its nesting or its refs before anything reads it.
              const shape = walk(JSON.parse(text));
              const refsBad = shape.refs.some((r) => typeof r !== 'number' || !Number.isInteger(r) || r < 0 || r >= (p.attach?.n ?? 0));
              const tooDeep = p.attach !== null && (shape.depth > 64 || refsBad);
              const schemaBad = tooDeep || isBad(p.protocol) || isBad(p.concurrency) || isBad(p.instance) || isBad(p.maxMessageBytes) || isBad(p.me.me);
              const verdict = schemaBad
                ? 'bad_message'
                : (p.protocol as { value: unknown }).value !== 1
                  ? 'unsupported_protocol'
                  : p.me.verdict === 'bad_service_description'
                    ? 'bad_service_description'
                    : p.me.verdict === 'conflict'
                      ? 'service_conflict'
                      : null;
              peer.text(text);
              let then = p.then;
              let owed = false;
              if (p.attach) {
                for (let i = 0; i < p.attach.sent; i++) peer.binary(Buffer.from('x'));
                // A binary frame sent next is one of the frames the hello owes.
                const sent = p.attach.sent + (then === 'binary' ? 1 : 0);
                if (then === 'binary' && p.attach.sent < p.attach.n) then = 'nothing';
                owed = sent < p.attach.n;
              }
              if (p.then === 'text') peer.json({ type: 'progress', task_id: 'early' });
              if (p.then === 'binary') peer.binary(Buffer.from('early'));
              if (owed && then === 'nothing') {
                // The hello never arrives whole: no answer, then the hello deadline closes.
                codes = [];
              } else if (owed) {
                // The next frame comes while frames are owed: that breaks the hello.
                codes = ['bad_message'];
              } else if (then !== 'nothing') {
                // Frames before the welcome: refused; which of the two refusals wins is a race.
                codes = verdict ? [verdict, 'bad_message'] : ['bad_message'];
              } else codes = verdict ? [verdict] : null;
              break;
            }
          }
          if (codes === null) {
            // The welcome, and the connection still open after it.
            await peer.until(() => peer.inbox.length > 0 || !peer.open, 5000, `the welcome of ${what}`);
            await peer.sync();
          }
          const closed =
            codes === null ? peer.closeCode : await Promise.race([peer.closed, new Promise<null>((r) => setTimeout(() => r(null), HELLO_TIMEOUT + 5000))]);
          const answers = peer.take().map((a) => a.msg);
          if (codes === null) {
            expect(closed, `${what}: stays open`).to.equal(null);
            expect(answers, what).to.have.length(1);
            expect(answers[0].type, `${what}: ${JSON.stringify(answers)}`).to.equal('welcome');
            expect(answers[0].service_id).to.be.a('number');
            expect(answers[0].connection_id).to.be.a('string');
            expect(answers[0].heartbeat_ms).to.be.a('number');
            return;
          }
          expect(closed, `${what}: closes; got ${JSON.stringify(answers).slice(0, 300)}`).to.equal(close);
          if (codes.length === 0) {
            expect(answers, what).to.deep.equal([]);
            return;
          }
          expect(answers, `${what}: one error`).to.have.length(1);
          expect(answers[0].type, what).to.equal('error');
          expect(codes, `${what}: ${JSON.stringify(answers[0])}`).to.include(answers[0].code);
          expect(answers[0].message).to.be.a('string');
        } finally {
          await peer.close();
        }
      }),
      params(runs),
    );
  });

  it('takes no task on a connection refused during its handshake: a queued task keeps its attempts', async function () {
    this.timeout(30_000);
    const name = 'fz_refused_race';
    const idle = await echoWorker(hub, fuzzService(name));
    await idle.close();
    const queued = await http(hub, 'POST', '/add_task?wait=false', { service_id: idle.welcome.service_id, args: { n: 1 } });
    for (let i = 0; i < 20; i++) {
      count('worker handshake');
      const p = await RawPeer.open(`${hub.wsUrl}/worker`);
      p.json({ type: 'hello', protocol: 1, me: fuzzService(name) });
      p.json({ type: 'progress', task_id: 'too-early' }); // before the welcome: refused
      expect(await p.closed).to.equal(1008);
      expect(p.inbox.map((a) => a.msg.type)).to.deep.equal(['error']);
      const view = await http(hub, 'GET', `/tasks/${queued.body.task_id}`);
      expect(view.body, `after refusal ${i + 1}`).to.include({ status: 'queued', attempts: 0 });
    }
    await http(hub, 'DELETE', `/tasks/${queued.body.task_id}`);
  });

  it('after welcome: answers every generated frame sequence as the contract says, keeping the connection unless it must close', async function () {
    const runs = runsOf(200);
    this.timeout(timeoutFor(runs));
    let peer: RawPeer | null = null;
    let model = new DecoderModel(LIMIT);
    let hits = 0;
    let n = 0;
    const connect = async () => {
      await peer?.close();
      peer = await RawPeer.open(`${hub.wsUrl}/worker`);
      peer.json({ type: 'hello', protocol: 1, me: fuzzService(`fz_after_${++n}`), concurrency: 4 });
      await peer.until(() => peer!.inbox.length > 0, 5000, 'welcome');
      expect(peer.take()[0].msg.type).to.equal('welcome');
      model = new DecoderModel(LIMIT);
      hits = 0;
    };
    await connect();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(afterPlan, { minLength: 1, maxLength: 4 }), async (plans) => {
          for (const p of plans) {
            count('worker messages after welcome');
            if (!peer!.open || hits > 35) await connect();
            const w = peer!;
            const expected: Expect[] = [];
            let closes: number | null = null;
            const frames = afterFrames(p);
            for (const f of frames) {
              if ('text' in f && Buffer.byteLength(f.text) > LIMIT) {
                closes = 1009;
                w.text(f.text);
                break;
              }
              if ('text' in f) {
                expected.push(...model.text(f.text, f.reply));
                w.text(f.text);
              } else if ('binary' in f) {
                expected.push(...model.binary(f.binary));
                w.binary(Buffer.alloc(f.binary, 0x63));
              } else {
                closes = f.closes;
                w.text(f.bytes);
                break;
              }
            }
            hits += floodHits(expected);
            const what = `sent ${JSON.stringify(frames.map((f) => ('text' in f ? f.text.slice(0, 200) : 'binary' in f ? `<binary ${f.binary}>` : `<closes ${f.closes}>`)))}`;
            if (closes !== null) {
              expect(await Promise.race([w.closed, new Promise((r) => setTimeout(() => r('no close'), 5000))]), what).to.equal(closes);
            } else {
              expect(await w.sync(), `${what}: the connection stays open`).to.equal(true);
            }
            const got = w.take().map((a: Answer) => a.msg);
            const left = [...expected];
            const extra = got.filter((m) => {
              const i = left.findIndex((e) => matches(e, m));
              if (i < 0) return true;
              left.splice(i, 1);
              return false;
            });
            expect(left, `${what}: answers missing; got ${JSON.stringify(got).slice(0, 500)}`).to.deep.equal([]);
            expect(extra, `${what}: unexpected answers`).to.deep.equal([]);
            expect(w.garbage).to.deep.equal([]);
          }
        }),
        params(runs),
      );
    } finally {
      await (peer as RawPeer | null)?.close();
    }
  });

  it('frames out of order about live tasks: each task ends once, as its first end said; later answers are dropped', async function () {
    const runs = runsOf(60);
    this.timeout(timeoutFor(runs, 200));
    let worker!: RawPeer;
    let serviceId = 0;
    /** bad_message answers on this worker connection: a new one before the flood guard closes it. */
    let hits = 0;
    const connect = async () => {
      await worker?.close();
      worker = await RawPeer.open(`${hub.wsUrl}/worker`);
      worker.json({ type: 'hello', protocol: 1, me: fuzzService('fz_order'), concurrency: 16 });
      await worker.until(() => worker.inbox.length > 0, 5000, 'welcome');
      serviceId = worker.take()[0].msg.service_id as number;
      hits = 0;
    };
    await connect();
    const client = await RawPeer.open(`${hub.wsUrl}/client`);
    type Action = { a: 'progress' | 'result' | 'failed' | 'cancel' | 'deep' | 'attach-result'; i: number; text: string; value: unknown } | { a: 'foreign' };
    // Hostile messages, results and worker errors go through the task store and back.
    const action: fc.Arbitrary<Action> = fc.oneof(
      fc.record({
        a: fc.constantFrom('progress' as const, 'result' as const, 'failed' as const, 'cancel' as const, 'deep' as const, 'attach-result' as const),
        i: fc.nat(3),
        text: hostileString.filter((t) => t.length >= 1 && t.length <= 128),
        // Attachment refs in a result without attachments are plain data.
        value: fc.oneof(
          { weight: 8, arbitrary: jsonValue.filter((v) => toJson(v).length < 16_000) },
          { weight: 1, arbitrary: fc.constantFrom<unknown>({ $attachment: 0 }, [{ $attachment: 1, mime: 'image/png' }], { a: { $attachment: 0, data: 'x' } }) },
        ),
      }),
      fc.constant({ a: 'foreign' as const }),
    );
    let marker = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(action, { minLength: 1, maxLength: 10 }), async (tasks, actions) => {
          count('worker frames out of order');
          if (hits > 35) await connect();
          client.take();
          worker.take();
          // Submit the tasks; the worker receives each one.
          const ids: string[] = [];
          for (let i = 0; i < tasks; i++) {
            const n = ++marker % 100;
            client.json({ type: 'add_task', ref: `o${marker}`, service_id: serviceId, args: { n, s: `m${marker}` } });
            await client.until(() => client.inbox.some((x) => x.msg.type === 'accepted' && x.msg.ref === `o${marker}`), 5000, 'accepted');
            const id = client.inbox.find((x) => x.msg.type === 'accepted' && x.msg.ref === `o${marker}`)!.msg.task_id as string;
            await worker.until(() => worker.inbox.some((x) => x.msg.type === 'task' && x.msg.task_id === id), 5000, 'the task at the worker');
            ids.push(id);
          }
          // The model: each task is running until its first end.
          const state: string[] = ids.map(() => 'running');
          const progress: number[] = ids.map(() => 0);
          /** The result (as JSON) and last progress message that GET /tasks must show. */
          const results: Array<string | undefined> = ids.map(() => undefined);
          const messages: Array<string | null> = ids.map(() => null);
          const workerError: Array<Record<string, unknown> | undefined> = ids.map(() => undefined);
          const owedCancels = new Set<string>();
          const workerErrors: string[] = [];
          for (const act of actions) {
            if (act.a === 'foreign') {
              worker.json({ type: 'result', task_id: `foreign-${marker}`, result: 1 });
              await worker.sync();
              continue;
            }
            const i = act.i % tasks;
            const id = ids[i];
            const running = state[i] === 'running';
            switch (act.a) {
              case 'progress':
                worker.json({ type: 'progress', task_id: id, progress: 0.5, message: act.text });
                if (running) {
                  progress[i]++;
                  messages[i] = act.text;
                }
                break;
              case 'result': {
                const text = toJson({ type: 'result', task_id: id, result: act.value });
                worker.text(text);
                if (running) {
                  state[i] = 'succeeded';
                  results[i] = JSON.stringify((JSON.parse(text) as { result: unknown }).result);
                }
                break;
              }
              case 'attach-result':
                worker.text(JSON.stringify({ type: 'result', task_id: id, result: { file: { $attachment: 0, mime: 'image/png' } }, attachments: 1 }));
                worker.binary(Buffer.from(`bytes-${i}`));
                if (running) {
                  state[i] = 'succeeded';
                  results[i] = JSON.stringify({ file: { mime: 'image/png', data: Buffer.from(`bytes-${i}`).toString('base64') } });
                }
                break;
              case 'failed':
                worker.json({ type: 'failed', task_id: id, error: { code: act.text, message: act.text, extra: act.value } });
                if (running) {
                  state[i] = 'failed';
                  workerError[i] = { code: act.text, message: act.text };
                }
                break;
              case 'deep':
                worker.text(toJson({ type: 'result', task_id: id, result: deepJson(5000) }));
                workerErrors.push(id);
                hits++;
                break;
              case 'cancel':
                client.json({ type: 'cancel', task_id: id });
                if (running) {
                  state[i] = 'canceled';
                  owedCancels.add(id);
                  await client.until(() => client.inbox.some((x) => x.msg.type === 'canceled' && x.msg.task_id === id), 5000, 'canceled');
                  await worker.until(() => worker.inbox.some((x) => x.msg.type === 'cancel' && x.msg.task_id === id), 5000, 'the cancel at the worker');
                } else {
                  await client.until(() => client.inbox.some((x) => x.msg.type === 'error' && x.msg.task_id === id), 5000, 'already_finished');
                }
                break;
            }
            await worker.sync();
          }
          // End what still runs; answer the cancels late (dropped, but they free the slots).
          for (let i = 0; i < tasks; i++) {
            if (state[i] === 'running') {
              worker.json({ type: 'result', task_id: ids[i], result: { done: i } });
              state[i] = 'succeeded';
              results[i] = JSON.stringify({ done: i });
            }
          }
          for (const id of owedCancels) worker.json({ type: 'failed', task_id: id, error: { code: 'canceled', message: 'late' } });
          await worker.sync();
          // An end reaches the client once it is committed (HUB_COMMIT=stored), after the worker's answer.
          const ended = (id: string) => client.inbox.some((x) => x.msg.task_id === id && ['result', 'failed', 'canceled'].includes(x.msg.type));
          await client.until(() => ids.every(ended), 10_000, 'an end for every task');
          await client.sync();
          // What the worker heard: its tasks, the cancels, and one bad_message per deep result.
          for (const x of worker.take()) {
            const m = x.msg;
            if (m.type === 'task') continue;
            if (m.type === 'cancel') {
              expect(owedCancels.has(m.task_id), JSON.stringify(m)).to.equal(true);
              expect(m.reason).to.equal('client');
              continue;
            }
            expect(m.type, JSON.stringify(m)).to.equal('error');
            expect(m.code, JSON.stringify(m)).to.equal('bad_message');
            const at = workerErrors.indexOf(m.task_id);
            expect(at, `a bad_message about a deep result: ${JSON.stringify(m)}`).to.be.at.least(0);
            workerErrors.splice(at, 1);
          }
          expect(workerErrors, 'every deep result is answered').to.deep.equal([]);
          // What the client heard of each task: seq 1, 2, ... without gaps, one end, the model's.
          const events = client.take().map((x) => x.msg);
          // Read the ends back from the database, not from memory (the hub keeps no ended task in memory here).
          await hub.app.hub.store.flush();
          for (let i = 0; i < tasks; i++) {
            const mineEvents = events.filter((m) => m.task_id === ids[i] && m.seq !== undefined);
            expect(
              mineEvents.map((m) => m.seq),
              `${ids[i]}: ${JSON.stringify(mineEvents)}`,
            ).to.deep.equal(mineEvents.map((_, j) => j + 1));
            expect(mineEvents[0].type).to.equal('started');
            const ends = mineEvents.filter((m) => ['result', 'failed', 'canceled'].includes(m.type));
            expect(ends, `${ids[i]}: one end`).to.have.length(1);
            expect(mineEvents[mineEvents.length - 1]).to.equal(ends[0]);
            const endType = { succeeded: 'result', failed: 'failed', canceled: 'canceled' }[state[i]];
            expect(ends[0].type, `${ids[i]}: ${JSON.stringify(mineEvents)}`).to.equal(endType);
            expect(
              mineEvents.filter((m) => m.type === 'progress'),
              `${ids[i]}: progress events`,
            ).to.have.length(progress[i]);
            const view = await http(hub, 'GET', `/tasks/${ids[i]}`);
            expect(view.status, JSON.stringify(view.body)).to.equal(200);
            expect(view.body.status).to.equal(state[i]);
            if (state[i] === 'failed') {
              expect(view.body.error.code).to.equal('task_failed');
              expect(view.body.error.worker_error).to.deep.equal(workerError[i]);
            }
            if (state[i] === 'succeeded') expect(JSON.stringify(view.body.result), `${ids[i]}: the result as the worker sent it`).to.equal(results[i]);
            // Text that is not well-formed UTF-16 (a lone surrogate) cannot be stored as such.
            const shown = messages[i];
            if (shown === null || (shown as string & { isWellFormed(): boolean }).isWellFormed())
              expect(view.body.message, `${ids[i]}: the last progress message`).to.equal(shown);
          }
        }),
        params(runs),
      );
    } finally {
      await worker.close();
      await client.close();
    }
  });

  it('still serves a normal task after the run, with no fault logged, no warning and no polluted prototype', async function () {
    this.timeout(30_000);
    const res = await http(hub, 'POST', '/add_task', { service_id: live.welcome.service_id, args: { n: 3 } });
    expect(res.status).to.equal(200);
    expect(res.body.result).to.deep.equal({ echo: 3 });
    expect(hub.problems()).to.deep.equal([]);
  });
});
