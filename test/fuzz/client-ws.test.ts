/**
 * Fuzz: the client WebSocket (docs/protocol.md 5.2) under generated frame sequences: garbage text,
 * messages of every client type with wrong, missing and extra fields, hostile keys, deep nesting,
 * attachment counts that lie, stray and oversized binary frames, broken UTF-8, frames over the
 * limit, and requests about tasks that are live, ended or unknown.
 *
 * Each case's expected answers come from a model of the contract (support/ws-model.ts) and from
 * how the case was built; the hub must give exactly those, keep the connection unless the
 * contract closes it (1009 over the frame limit; 1007 for a text frame that is not UTF-8, as
 * RFC 6455 requires), and never crash or hang. Garbage goes over one connection until the
 * flood guard would close it (50 bad messages in 10 s), then over a fresh one.
 *
 * Seeded and sized by FUZZ_SEED and FUZZ_RUNS (see support/settings.ts).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { count, params, runsOf, timeoutFor } from './support/settings.js';
import { startWatchedHub, echoWorker, type EchoWorker, type WatchedHub } from './support/hub-watch.js';
import { RawPeer, type Answer } from './support/raw-peer.js';
import { DecoderModel, about, floodHits, matches, type Expect, type Reply } from './support/ws-model.js';
import { argsCase, fuzzService } from './support/service.js';
import { RawJson, anyValue, brokenUtf8, deepJson, hostileKey, hostileString, notAMessage, notJson, objectOf, toJson } from './support/values.js';

/** The fuzz hub's HUB_MAX_MESSAGE_BYTES. */
const LIMIT = 64 * 1024;
const MAX_TIMEOUT = 600_000;

/** A field of a message: left out, a value that fits, or one that breaks the schema. */
type Field = { absent: true } | { value: unknown; bad?: boolean; over?: boolean };
const absent: Field = { absent: true };
/** Good idempotency keys made so far: each case's is new. */
let idemKeys = 0;
const fits = (a: fc.Arbitrary<unknown>) => a.map((value): Field => ({ value }));
const breaks = (a: fc.Arbitrary<unknown>) => a.map((value): Field => ({ value, bad: true }));

const refField = fc.oneof(
  { weight: 2, arbitrary: fc.constant(absent) },
  {
    weight: 4,
    arbitrary: fits(
      fc.oneof(
        fc.string({ maxLength: 20 }),
        hostileString.filter((s) => s.length <= 256),
      ),
    ),
  },
  {
    weight: 1,
    arbitrary: breaks(
      fc.oneof(
        fc.constantFrom(5, null, true, [], {}),
        fc.integer({ min: 257, max: 2000 }).map((n) => 'r'.repeat(n)),
      ),
    ),
  },
);
const taskIdBreaks = breaks(
  fc.oneof(
    fc.constantFrom(5, null, true, [], {}, ''),
    fc.integer({ min: 65, max: 500 }).map((n) => 't'.repeat(n)),
  ),
);
const serviceIdBreaks = breaks(fc.constantFrom<unknown>(-1, 1.5, '1', null, true, [], 2 ** 53, new RawJson('1e999')));
const extraFields = fc.array(
  fc.tuple(
    hostileKey.filter(
      (k) =>
        ![
          'type',
          'ref',
          'service_id',
          'args',
          'timeout_ms',
          'queue_timeout_ms',
          'attachments',
          'task_id',
          'idempotency_key',
          'webhook',
          'webhook_events',
        ].includes(k),
    ),
    anyValue,
  ),
  { maxLength: 2 },
);

/** A message to build once the hub runs (ids of services and tasks are known then). */
type Plan =
  | {
      op: 'add_task';
      ref: Field;
      service: Field | { svc: 'echo' | 'idle' | 'unknown' };
      args: { value: unknown; problems: string[] | null };
      timeout: Field;
      queueTimeout: Field;
      idem: Field;
      hook: Field;
      extra: Array<[string, unknown]>;
    }
  | { op: 'service_info'; ref: Field; service: Field | { svc: 'echo' | 'idle' | 'unknown' }; extra: Array<[string, unknown]> }
  | { op: 'cancel' | 'subscribe'; target: 'live' | 'ended' | 'unknown' | Field; unknownId: string; extra: Array<[string, unknown]> }
  | { op: 'attach'; announce: unknown; frames: number[]; ref: number; arg: 'doc' | 'img'; deep: number; refText: Field }
  | { op: 'garbage'; text: string }
  | { op: 'stray'; size: number }
  | { op: 'utf8'; bytes: Buffer }
  | { op: 'huge'; size: number };

const serviceField = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('echo', 'idle', 'unknown').map((svc) => ({ svc }) as { svc: 'echo' | 'idle' | 'unknown' }) },
  { weight: 1, arbitrary: serviceIdBreaks },
  { weight: 1, arbitrary: fc.constant(absent).map((a) => ({ ...a, bad: true }) as unknown as Field) },
);

const addTask = fc.record({
  op: fc.constant('add_task' as const),
  ref: refField,
  service: serviceField,
  args: fc.oneof(
    { weight: 6, arbitrary: argsCase.map((a) => ({ value: a.args, problems: a.problems })) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>('x', 5, null, true, undefined).map((value) => ({ value, problems: null })) },
  ),
  timeout: fc.oneof(
    { weight: 4, arbitrary: fc.constant(absent) },
    { weight: 2, arbitrary: fits(fc.integer({ min: 1, max: MAX_TIMEOUT })) },
    { weight: 1, arbitrary: fc.integer({ min: MAX_TIMEOUT + 1, max: Number.MAX_SAFE_INTEGER }).map((value): Field => ({ value, over: true })) },
    { weight: 1, arbitrary: breaks(fc.constantFrom<unknown>(0, -5, 1.5, '5', null, 2 ** 53)) },
  ),
  queueTimeout: fc.oneof(
    { weight: 4, arbitrary: fc.constant(absent) },
    { weight: 2, arbitrary: fits(fc.integer({ min: 0, max: 100_000 })) },
    { weight: 1, arbitrary: breaks(fc.constantFrom<unknown>(-1, 0.5, 'x', null)) },
  ),
  // idempotency_key: a good one is made unique per case when built (a repeat is another test's).
  idem: fc.oneof(
    { weight: 5, arbitrary: fc.constant(absent) },
    { weight: 2, arbitrary: fits(fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 200 })) },
    {
      weight: 1,
      arbitrary: breaks(
        fc.oneof(
          fc.constantFrom<unknown>('', 5, null, true, [], {}, 'é', 'a\nb', '\u0000'),
          fc.integer({ min: 256, max: 600 }).map((n) => 'k'.repeat(n)),
        ),
      ),
    },
  ),
  // webhook: this hub has no HUB_WEBHOOK_SECRET, so a well-formed one is refused bad_request.
  hook: fc.oneof(
    { weight: 8, arbitrary: fc.constant(absent) },
    { weight: 1, arbitrary: fits(fc.constantFrom('https://example.com/hook', 'http://127.0.0.1:9/x', 'HTTP://localhost/')) },
    {
      weight: 1,
      arbitrary: breaks(fc.constantFrom<unknown>('', 'ftp://example.com/', 'example.com', 5, null, true, [], {}, `https://e.com/${'x'.repeat(2100)}`)),
    },
  ),
  extra: extraFields,
});

const serviceInfo = fc.record({ op: fc.constant('service_info' as const), ref: refField, service: serviceField, extra: extraFields });

const aboutTask = fc.record({
  op: fc.constantFrom('cancel' as const, 'subscribe' as const),
  target: fc.oneof(
    { weight: 2, arbitrary: fc.constantFrom('live' as const, 'ended' as const) },
    { weight: 2, arbitrary: fc.constant('unknown' as const) },
    { weight: 1, arbitrary: taskIdBreaks },
    { weight: 1, arbitrary: fc.constant(absent).map((a) => ({ ...a, bad: true }) as unknown as Field) },
  ),
  unknownId: fc.oneof(
    fc.string({ minLength: 1, maxLength: 64 }),
    hostileString.filter((s) => s.length >= 1 && s.length <= 64),
  ),
  extra: extraFields,
});

const attach = fc.record({
  op: fc.constant('attach' as const),
  announce: fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 4 }) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(0, -1, 1.5, '2', null, true, 16) },
    { weight: 1, arbitrary: fc.integer({ min: 17, max: 40 }) },
  ),
  frames: fc.array(fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 0, max: 1500 }) }, { weight: 1, arbitrary: fc.integer({ min: 20_000, max: LIMIT }) }), {
    maxLength: 6,
  }),
  ref: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 3 }) }, { weight: 1, arbitrary: fc.constantFrom(-1, 16, 99) }),
  arg: fc.constantFrom('doc' as const, 'img' as const),
  deep: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 70, max: 3000 }) }),
  refText: refField,
});

const plan: fc.Arbitrary<Plan> = fc.oneof(
  { weight: 5, arbitrary: addTask },
  { weight: 2, arbitrary: serviceInfo },
  { weight: 4, arbitrary: aboutTask },
  { weight: 4, arbitrary: attach },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        notJson,
        notAMessage,
        fc
          .string({ maxLength: 12 })
          .map((t) => JSON.stringify({ type: t }))
          .filter((t) => !['add_task', 'cancel', 'subscribe', 'service_info'].includes(JSON.parse(t).type)),
      )
      .map((text) => ({ op: 'garbage' as const, text })),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 3000 }).map((size) => ({ op: 'stray' as const, size })) },
  { weight: 1, arbitrary: brokenUtf8.map((bytes) => ({ op: 'utf8' as const, bytes })) },
  { weight: 1, arbitrary: fc.integer({ min: LIMIT + 1, max: LIMIT * 2 }).map((size) => ({ op: 'huge' as const, size })) },
);

/** One frame to send, with what the hub owes for it if it is a whole message. */
type Frame = { text: string; reply: Reply } | { binary: number } | { closes: number; bytes: Buffer };

describe('Fuzz: client WebSocket', () => {
  let hub: WatchedHub;
  let echo: EchoWorker;
  let echoId = 0;
  let idleId = 0;
  let peer: RawPeer;
  let model: DecoderModel;
  let hits = 0;
  /** Tasks this test submitted: live (queued on the idle service) and ended. */
  const live: string[] = [];
  const ended = new Set<string>();
  /** Tasks whose later events this connection hears (ignored by the matcher). */
  const mine = new Set<string>();
  let connections = 0;

  const reconnect = async () => {
    await peer?.close();
    peer = await RawPeer.open(`${hub.wsUrl}/client`);
    connections++;
    model = new DecoderModel(LIMIT);
    hits = 0;
  };

  before(async () => {
    hub = await startWatchedHub({ maxMessageBytes: LIMIT, maxTaskTimeoutMs: MAX_TIMEOUT, taskTimeoutMs: 60_000, queueTimeoutMs: 300_000 });
    echo = await echoWorker(hub, fuzzService('fuzz_client'));
    echoId = echo.welcome.service_id;
    const idle = await echoWorker(hub, fuzzService('fuzz_client_idle'));
    idleId = idle.welcome.service_id;
    await idle.close();
    await reconnect();
  });
  after(async () => {
    await peer?.close();
    await echo?.close();
    await hub?.close();
  });

  /** Turns a plan into frames and the answers its handler owes. */
  function build(p: Plan): Frame[] {
    const put = (entries: Array<[string, unknown]>, key: string, f: Field | undefined) => {
      if (f && !('absent' in f)) entries.push([key, f.value]);
    };
    const isBad = (f: Field | undefined) => !!f && 'bad' in f && f.bad === true;
    switch (p.op) {
      case 'garbage': {
        // Whole messages of an unknown type reach the handler's check: bad_message naming them.
        let parsed: unknown = null;
        try {
          parsed = JSON.parse(p.text);
        } catch {
          // the model answers text that is not JSON
        }
        return [{ text: p.text, reply: [{ type: 'error', code: 'bad_message', ...about(parsed) }] }];
      }
      case 'stray':
        return [{ binary: p.size }];
      case 'utf8':
        return [{ closes: 1007, bytes: p.bytes }];
      case 'huge':
        return [{ closes: 1009, bytes: Buffer.from(`{"type":"add_task","pad":"${'x'.repeat(p.size)}"}`) }];
      case 'add_task':
      case 'service_info': {
        const entries: Array<[string, unknown]> = [['type', p.op]];
        put(entries, 'ref', p.ref);
        let unknown = false;
        const svc = p.service as { svc?: string };
        if (svc.svc) {
          entries.push(['service_id', svc.svc === 'echo' ? echoId : svc.svc === 'idle' ? idleId : 10_000 + echoId]);
          unknown = svc.svc === 'unknown';
        } else put(entries, 'service_id', p.service as Field);
        let bad = isBad(p.ref) || (!svc.svc && (isBad(p.service as Field) || 'absent' in (p.service as Field)));
        if (p.op === 'add_task') {
          if (p.args.value !== undefined) entries.push(['args', p.args.value]);
          put(entries, 'timeout_ms', p.timeout);
          put(entries, 'queue_timeout_ms', p.queueTimeout);
          if ('value' in p.idem && !p.idem.bad) entries.push(['idempotency_key', `${String(p.idem.value).slice(0, 40)}#${++idemKeys}`]);
          else put(entries, 'idempotency_key', p.idem);
          put(entries, 'webhook', p.hook);
          bad ||= p.args.problems === null || isBad(p.timeout) || isBad(p.queueTimeout) || isBad(p.idem) || isBad(p.hook);
        }
        const msg = objectOf([...p.extra.slice(0, 1), ...entries, ...p.extra.slice(1)]);
        const ab = about(msg);
        const ref = ab.ref;
        let reply: Expect;
        if (bad) reply = { type: 'error', code: 'bad_message', ...ab };
        else if (p.op === 'add_task' && 'value' in p.hook) reply = { type: 'rejected', code: 'bad_request', ref };
        else if (unknown) reply = { type: 'rejected', code: 'service_not_found', ref };
        else if (p.op === 'service_info') reply = { type: 'service_info', ref, serviceId: svc.svc === 'echo' ? echoId : idleId };
        else if ('over' in p.timeout && p.timeout.over) reply = { type: 'rejected', code: 'bad_request', ref };
        else if (p.args.problems!.length > 0) reply = { type: 'rejected', code: 'invalid_args', ref, problems: p.args.problems! };
        else {
          // A queued task is live for later cases only when its queue timeout cannot pass meanwhile.
          const qto = p.op === 'add_task' ? p.queueTimeout : absent;
          const lasts = svc.svc === 'idle' && ('absent' in qto || (qto.value as number) >= 60_000);
          reply = { type: 'accepted', ref, service: lasts ? 'idle' : svc.svc === 'idle' ? 'idle-short' : svc.svc };
        }
        return [{ text: toJson(msg), reply: [reply] }];
      }
      case 'cancel':
      case 'subscribe': {
        const entries: Array<[string, unknown]> = [['type', p.op]];
        let reply: Expect[];
        if (typeof p.target === 'object') {
          put(entries, 'task_id', p.target);
          const msg = objectOf([...p.extra, ...entries]);
          return [{ text: toJson(msg), reply: [{ type: 'error', code: 'bad_message', ...about(msg) }] }];
        }
        let target = p.target;
        if (target === 'live' && live.length === 0) target = 'unknown';
        if (target === 'ended' && ended.size === 0) target = 'unknown';
        let id = target === 'live' ? live[live.length - 1] : target === 'ended' ? [...ended][ended.size - 1] : p.unknownId;
        if (target === 'unknown' && (mine.has(id) || ended.has(id))) id = `${id}x`.slice(-64);
        entries.push(['task_id', id]);
        if (target === 'unknown') reply = [{ type: 'error', code: 'task_not_found', task_id: id }];
        else if (target === 'ended')
          reply = p.op === 'cancel' ? [{ type: 'error', code: 'already_finished', task_id: id }] : [{ type: 'end', task_id: id, anyEnd: true }];
        else if (p.op === 'cancel') reply = [{ type: 'canceled', task_id: id }];
        else reply = [{ type: 'snapshot', task_id: id, status: 'queued' }];
        const msg = objectOf([...p.extra, ...entries]);
        return [{ text: toJson(msg), reply }];
      }
      case 'attach': {
        const entries: Array<[string, unknown]> = [['type', 'add_task']];
        put(entries, 'ref', p.refText);
        entries.push(['service_id', echoId]);
        const media = { $attachment: p.ref, mime: p.arg === 'img' ? 'image/png' : 'application/pdf', name: 'f.bin' };
        entries.push(['args', { n: 1, [p.arg]: media }]);
        if (p.deep > 0) entries.push(['deep', deepJson(p.deep, 'mixed')]);
        entries.push(['attachments', p.announce]);
        const msg = objectOf(entries);
        const text = toJson(msg);
        const ab = about(JSON.parse(text));
        // The frames the message gets may be others than these (a later case's), so the answer
        // depends on the size of the frame its ref names.
        const reply = (sizes: number[]): Expect[] => {
          if (isBad(p.refText)) return [{ type: 'error', code: 'bad_message', ...ab }];
          if (p.arg === 'img' && sizes[p.ref] > 1024) return [{ type: 'rejected', code: 'invalid_args', ref: ab.ref, problems: ['img'] }];
          return [{ type: 'accepted', ref: ab.ref, service: 'echo' }];
        };
        return [{ text, reply }, ...p.frames.map((size) => ({ binary: size }))];
      }
    }
  }

  /** Sends one case and checks the hub's answers against the model. */
  async function runCase(p: Plan): Promise<void> {
    if (!peer.open || hits > 35) await reconnect();
    const frames = build(p);
    const expected: Expect[] = [];
    let closes: number | null = null;
    for (const f of frames) {
      if ('text' in f && Buffer.byteLength(f.text) > LIMIT) {
        // A frame over the limit closes the connection (1009) before anything reads it.
        closes = 1009;
        peer.text(f.text);
        break;
      }
      if ('text' in f) {
        expected.push(...model.text(f.text, f.reply));
        peer.text(f.text);
      } else if ('binary' in f) {
        expected.push(...model.binary(f.binary));
        peer.binary(Buffer.alloc(f.binary, 0x62));
      } else {
        closes = f.closes;
        peer.text(f.bytes);
        break;
      }
    }
    hits += floodHits(expected);
    const what = () =>
      `sent ${JSON.stringify(frames.map((f) => ('text' in f ? f.text.slice(0, 200) : 'binary' in f ? `<binary ${f.binary}>` : `<closes ${f.closes}>`)))}`;
    if (closes !== null) {
      const code = await Promise.race([peer.closed, new Promise<string>((r) => setTimeout(() => r('no close'), 5000))]);
      expect(code, what()).to.equal(closes);
    } else {
      expect(await peer.sync(), `${what()}: the connection stays open`).to.equal(true);
    }
    // Every expected answer, then nothing else (but the events of this connection's tasks).
    const left = [...expected];
    const extra: Answer[] = [];
    const consume = () => {
      for (const a of peer.take()) {
        const i = left.findIndex((e) => matches(e, a.msg));
        if (i >= 0) {
          const [e] = left.splice(i, 1);
          if (e.type === 'canceled') {
            const at = live.indexOf(a.msg.task_id);
            if (at >= 0) live.splice(at, 1);
            ended.add(a.msg.task_id);
          }
          if (e.type === 'accepted') {
            mine.add(a.msg.task_id);
            if (e.service === 'idle') live.push(a.msg.task_id);
          }
          continue;
        }
        if (a.msg.type === 'services') continue;
        if (mine.has(a.msg.task_id) && ['queued', 'started', 'progress', 'result', 'failed', 'canceled'].includes(a.msg.type)) {
          if (['result', 'failed', 'canceled'].includes(a.msg.type)) {
            ended.add(a.msg.task_id);
            const at = live.indexOf(a.msg.task_id);
            if (at >= 0) live.splice(at, 1);
          }
          continue;
        }
        extra.push(a);
      }
    };
    consume();
    if (left.length > 0 && closes === null) {
      await peer
        .until(
          () => {
            consume();
            return left.length === 0;
          },
          5000,
          `answers ${JSON.stringify(left)} to ${what()}`,
        )
        .catch((err: Error) => {
          throw new Error(`${err.message}; extra: ${JSON.stringify(extra.map((a) => a.msg)).slice(0, 500)}`);
        });
      await peer.sync();
      consume();
    }
    if (closes !== null) consume();
    expect(left, `${what()}: answers missing; got ${JSON.stringify(extra.map((a) => a.msg)).slice(0, 600)}`).to.deep.equal([]);
    expect(
      extra.map((a) => a.msg),
      `${what()}: unexpected answers`,
    ).to.deep.equal([]);
    expect(peer.garbage, 'every frame of the hub is a JSON object').to.deep.equal([]);
  }

  it('answers every generated frame sequence as the contract says, keeping the connection unless it must close', async function () {
    const runs = runsOf(250);
    this.timeout(timeoutFor(runs));
    await fc.assert(
      fc.asyncProperty(fc.array(plan, { minLength: 1, maxLength: 4 }), async (plans) => {
        for (const p of plans) {
          count('client WebSocket frames');
          await runCase(p);
        }
      }),
      params(runs),
    );
  });

  it('still serves a normal task after the run, with no fault logged, no warning and no polluted prototype', async function () {
    this.timeout(30_000);
    await reconnect();
    peer.json({ type: 'add_task', ref: 'after', service_id: echoId, args: { n: 5 } });
    await peer.until(() => peer.inbox.some((a) => a.msg.type === 'result'), 5000, 'the result');
    const result = peer.inbox.find((a) => a.msg.type === 'result')!;
    expect(result.msg.result).to.deep.equal({ echo: 5 });
    expect(hub.problems()).to.deep.equal([]);
    process.stdout.write(`      (${connections} client connections used)\n`);
  });
});
