/**
 * Fuzz: the REST routes (docs/protocol.md section 2) under generated bad input.
 *
 * Every case is checked against the status and `error.code` that the contract gives it (section
 * 6), worked out by the test from how the case was built, never from the hub's code. One hub
 * serves the whole file; after the run it must still serve a normal task, with no fault in its
 * error log, no process warning and Object.prototype untouched.
 *
 * Seeded and sized by FUZZ_SEED and FUZZ_RUNS (see support/settings.ts).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { count, params, runsOf, timeoutFor } from './support/settings.js';
import { startWatchedHub, echoWorker, type EchoWorker, type WatchedHub } from './support/hub-watch.js';
import { fuzzService, argsCase, goodArgs } from './support/service.js';
import { RawJson, anyValue, badUtf8Bytes, brokenUtf8, deepJson, hostileKey, hostileString, jsonValue, notJson, objectOf, toJson } from './support/values.js';
import { http } from '../helpers/hub.js';

/** The fuzz hub's HUB_MAX_MESSAGE_BYTES: small, so that bodies over it are cheap to make. */
const LIMIT = 256 * 1024;
/** The fuzz hub's HUB_MAX_TASK_TIMEOUT_MS. */
const MAX_TIMEOUT = 600_000;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** Section 6: the HTTP status of each code. */
const STATUS: Record<string, number> = {
  bad_request: 400,
  invalid_args: 400,
  service_not_found: 404,
  task_not_found: 404,
  not_found: 404,
  method_not_allowed: 405,
  already_finished: 409,
  canceled: 409,
  idempotency_mismatch: 422,
  payload_too_large: 413,
  unsupported_media_type: 415,
  task_failed: 502,
  no_worker: 503,
  timeout: 504,
};

interface Res {
  status: number;
  body: any;
  text: string;
}

async function send(hub: WatchedHub, method: string, path: string, body?: string | Buffer, contentType?: string): Promise<Res> {
  const headers: Record<string, string> = {};
  if (contentType !== undefined) headers['content-type'] = contentType;
  const res = await fetch(`${hub.url}${path}`, { method, headers, body });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, body: parsed, text };
}

/** The answer is the error of `code`, in the contract's shape. */
function isError(res: Res, code: string, what: string): void {
  const shown = `${what.slice(0, 300)} -> ${res.status} ${res.text.slice(0, 300)}`;
  expect(res.status, shown).to.equal(STATUS[code]);
  expect(res.body?.error?.code, shown).to.equal(code);
  expect(res.body.error.message, shown).to.be.a('string');
}

/** The path segment for an id: encoded, unless it is raw on purpose. */
const segment = (id: { raw: string } | string) => (typeof id === 'string' ? encodeURIComponent(id) : id.raw);
const encodable = (s: string) => {
  try {
    encodeURIComponent(s);
    return s !== '.' && s !== '..'; // URL parsers resolve dot segments before the hub sees them
  } catch {
    return false;
  }
};

/** Paths whose percent-encoding is broken, or whose parameter is over the router's limit. */
const brokenSegment = fc.oneof(
  fc.constantFrom('%', '%zz', '%C3%28', '%ED%A0%80', '%FF', 'a%2', '%E2%82').map((raw) => ({ raw })),
  fc.integer({ min: 513, max: 3000 }).map((n) => ({ raw: 'a'.repeat(n) })),
);

describe('Fuzz: REST routes', () => {
  let hub: WatchedHub;
  let echo: EchoWorker;
  let echoId = 0;
  let idleId = 0;
  /** Tasks of the idle service (no live connection): they wait in its queue. */
  const queued = new Set<string>();
  /** Tasks that ended, with their status. */
  const ended = new Map<string, string>();

  before(async () => {
    hub = await startWatchedHub({ maxMessageBytes: LIMIT, maxTaskTimeoutMs: MAX_TIMEOUT, taskTimeoutMs: 60_000, queueTimeoutMs: 120_000 });
    echo = await echoWorker(hub, fuzzService('fuzz_rest'));
    echoId = echo.welcome.service_id;
    const idle = await echoWorker(hub, fuzzService('fuzz_idle'));
    idleId = idle.welcome.service_id;
    await idle.close();
    for (let i = 0; i < 5; i++) {
      const q = await http(hub, 'POST', '/add_task?wait=false', { service_id: idleId, args: { n: i } });
      queued.add(q.body.task_id);
      const e = await http(hub, 'POST', '/add_task', { service_id: echoId, args: { n: i } });
      ended.set(e.body.task_id, 'succeeded');
    }
  });
  after(async () => {
    await echo?.close();
    await hub?.close();
  });

  it('GET /service_info/{id}: 200 for a known id, 404 service_not_found for an unknown one, 400 bad_request otherwise', async function () {
    const runs = runsOf(50);
    this.timeout(timeoutFor(runs));
    const id = fc.oneof(
      fc.constantFrom('known-echo', 'known-idle').map((k) => ({ kind: k, text: '' })),
      fc.integer({ min: 1000, max: MAX_SAFE }).map((n) => ({ kind: 'unknown', text: String(n) })),
      fc.integer({ min: 0, max: 5 }).map((z) => ({ kind: 'zeros', text: '0'.repeat(z) })),
      fc
        .oneof(
          fc.constantFrom(
            '-1',
            '1.0',
            '1e3',
            ' 1',
            '1 ',
            '+1',
            '0x1',
            '١',
            '1_0',
            'NaN',
            'Infinity',
            '9007199254740993',
            '99999999999999999999',
            'null',
            '[1]',
            '%2F1',
          ),
          hostileString.filter((s) => encodable(s) && encodeURIComponent(s).length <= 4000 && !/^\d+$/.test(s)),
        )
        .map((text) => ({ kind: 'bad', text })),
      brokenSegment.map((raw) => ({ kind: 'broken', text: raw.raw })),
    );
    await fc.assert(
      fc.asyncProperty(id, async ({ kind, text }) => {
        count('GET /service_info/{id}');
        let path: string;
        if (kind === 'known-echo' || kind === 'known-idle') path = String(kind === 'known-echo' ? echoId : idleId);
        else if (kind === 'zeros') path = `${text}${echoId}`;
        else if (kind === 'broken') path = text;
        else path = encodeURIComponent(text);
        const res = await send(hub, 'GET', `/service_info/${path}`);
        if (kind === 'unknown') return isError(res, 'service_not_found', path);
        if (kind === 'bad' || kind === 'broken') return isError(res, 'bad_request', path);
        expect(res.status, res.text).to.equal(200);
        expect(res.body.service_id).to.equal(kind === 'known-idle' ? idleId : echoId);
        expect(res.body.arguments).to.have.length(8);
        expect(res.body.connections).to.equal(kind === 'known-idle' ? 0 : 1);
      }),
      params(runs),
    );
  });

  it('GET and DELETE /tasks/{id}: the task, 404 task_not_found, 409 already_finished, 400 bad_request for a broken path', async function () {
    const runs = runsOf(60);
    this.timeout(timeoutFor(runs));
    const target = fc.oneof(
      { weight: 2, arbitrary: fc.constant({ kind: 'queued' as const }) },
      { weight: 2, arbitrary: fc.constant({ kind: 'ended' as const }) },
      {
        weight: 4,
        arbitrary: hostileString.filter((s) => encodable(s) && encodeURIComponent(s).length <= 500).map((id) => ({ kind: 'unknown' as const, id })),
      },
      { weight: 1, arbitrary: fc.string({ minLength: 21, maxLength: 21 }).map((id) => ({ kind: 'unknown' as const, id: id.replace(/[^A-Za-z0-9_-]/g, '_') })) },
      { weight: 1, arbitrary: brokenSegment.map((raw) => ({ kind: 'broken' as const, raw })) },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'DELETE'), target, async (method, t) => {
        count('GET/DELETE /tasks/{id}');
        if (t.kind === 'broken') return isError(await send(hub, method, `/tasks/${t.raw.raw}`), 'bad_request', t.raw.raw);
        if (t.kind === 'unknown') {
          if (queued.has(t.id) || ended.has(t.id)) return;
          const res = await send(hub, method, `/tasks/${segment(t.id)}`);
          return isError(res, 'task_not_found', JSON.stringify(t.id));
        }
        if (t.kind === 'queued' && queued.size < 3) {
          const q = await http(hub, 'POST', '/add_task?wait=false', { service_id: idleId, args: { n: 1 } });
          queued.add(q.body.task_id);
        }
        const pool = t.kind === 'queued' ? [...queued] : [...ended.keys()];
        const id = pool[pool.length - 1];
        const res = await send(hub, method, `/tasks/${id}`);
        if (t.kind === 'ended' && method === 'DELETE') return isError(res, 'already_finished', id);
        expect(res.status, res.text).to.equal(200);
        expect(res.body.task_id).to.equal(id);
        if (t.kind === 'queued') {
          expect(res.body.status).to.equal(method === 'DELETE' ? 'canceled' : 'queued');
          if (method === 'DELETE') {
            queued.delete(id);
            ended.set(id, 'canceled');
          }
        } else {
          expect(res.body.status).to.equal(ended.get(id));
        }
      }),
      params(runs),
    );
  });

  it('POST /add_task: bad_request for a body that breaks its schema, service_not_found, invalid_args naming every problem, else 202', async function () {
    const runs = runsOf(200);
    this.timeout(timeoutFor(runs));
    type Part = { value: unknown; absent?: boolean; bad?: boolean; over?: boolean; unknown?: boolean };
    const absent: Part = { value: undefined, absent: true };
    const service = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('echo', 'idle').map((value): Part => ({ value })) },
      { weight: 1, arbitrary: fc.integer({ min: 10_000, max: MAX_SAFE }).map((value): Part => ({ value, unknown: true })) },
      {
        weight: 2,
        arbitrary: fc
          .constantFrom<unknown>(-1, 1.5, '1', null, true, [1], {}, 2 ** 53, new RawJson('1e999'), new RawJson('1.0e0'))
          .map((value): Part => ({ value, bad: !(value instanceof RawJson && value.text === '1.0e0') })),
      },
      { weight: 1, arbitrary: fc.constant(absent).map((p): Part => ({ ...p, bad: true })) },
    );
    const args = fc.oneof(
      { weight: 8, arbitrary: argsCase.map((a) => ({ value: a.args, problems: a.problems })) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>('x', 5, null, true, undefined, new RawJson('1e999')).map((value) => ({ value, problems: null })) },
    );
    const timeout = fc.oneof(
      { weight: 4, arbitrary: fc.constant(absent) },
      { weight: 3, arbitrary: fc.integer({ min: 1, max: MAX_TIMEOUT }).map((value): Part => ({ value })) },
      { weight: 1, arbitrary: fc.integer({ min: MAX_TIMEOUT + 1, max: MAX_SAFE }).map((value): Part => ({ value, over: true })) },
      {
        weight: 2,
        arbitrary: fc.constantFrom<unknown>(0, -5, 1.5, '5', null, true, 2 ** 53, new RawJson('1e999')).map((value): Part => ({ value, bad: true })),
      },
    );
    const queueTimeout = fc.oneof(
      { weight: 4, arbitrary: fc.constant(absent) },
      { weight: 3, arbitrary: fc.integer({ min: 0, max: 100_000 }).map((value): Part => ({ value })) },
      // Past HUB_MAX_QUEUE_TIMEOUT_MS (default 3,600,000): bad_request, as a timeout_ms past its maximum.
      { weight: 1, arbitrary: fc.constantFrom(3_600_001, 2 ** 31, 2 ** 40, MAX_SAFE).map((value): Part => ({ value, over: true })) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>(-1, 0.5, 'x', null, [], 2 ** 53).map((value): Part => ({ value, bad: true })) },
    );
    const extra = fc.array(
      fc.tuple(
        hostileKey.filter((k) => !['service_id', 'args', 'timeout_ms', 'queue_timeout_ms', 'webhook', 'webhook_events'].includes(k)),
        anyValue,
      ),
      { maxLength: 3 },
    );
    const wait = fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom('wait=false', 'wait=0', 'wait=false&x=1') },
      {
        weight: 1,
        arbitrary: fc.constantFrom('wait=', 'wait=no', 'wait=FALSE', 'wait=2', 'wait=false&wait=true', 'wait=%00', 'wait=false%20').map((q) => `${q}#bad`),
      },
    );
    await fc.assert(
      fc.asyncProperty(service, args, timeout, queueTimeout, extra, wait, async (svc, a, to, qto, more, query) => {
        count('POST /add_task (typed bodies)');
        const entries: Array<[string, unknown]> = [];
        const serviceId = svc.value === 'echo' ? echoId : svc.value === 'idle' ? idleId : svc.value;
        if (!svc.absent) entries.push(['service_id', serviceId]);
        if (a.value !== undefined) entries.push(['args', a.value]);
        if (!to.absent) entries.push(['timeout_ms', to.value]);
        if (!qto.absent) entries.push(['queue_timeout_ms', qto.value]);
        // Extra members first and last: every party ignores what it does not know.
        const body = objectOf([...more.slice(0, 1), ...entries, ...more.slice(1)]);
        const text = toJson(body);
        const badWait = query.endsWith('#bad');
        const res = await send(hub, 'POST', `/add_task?${query.replace('#bad', '')}`, text, 'application/json');
        const what = `${query} ${text.slice(0, 400)}`;
        if (Buffer.byteLength(text) > LIMIT) return isError(res, 'payload_too_large', what);
        if (badWait || svc.bad || a.problems === null || to.bad || qto.bad) return isError(res, 'bad_request', what);
        if (svc.unknown) return isError(res, 'service_not_found', what);
        if (to.over || qto.over) return isError(res, 'bad_request', what);
        if (a.problems.length > 0) {
          isError(res, 'invalid_args', what);
          const named = (res.body.error.details as Array<{ argument_name: string; problem: string }>).map((d) => d.argument_name);
          expect(new Set(named), what).to.deep.equal(new Set(a.problems));
          for (const d of res.body.error.details) expect(d.problem, what).to.be.a('string');
          return;
        }
        expect(res.status, `${what} -> ${res.text.slice(0, 300)}`).to.equal(202);
        expect(res.body.status).to.equal('queued');
        expect(res.body.task_id).to.be.a('string');
        if (svc.value === 'idle') queued.add(res.body.task_id);
      }),
      params(runs),
    );
  });

  it('POST /add_task with Idempotency-Key: 400 bad_request for a malformed key; else one task per key, 422 idempotency_mismatch for other args', async function () {
    const runs = runsOf(120);
    this.timeout(timeoutFor(runs));
    const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 255 });
    type Case = { header: string; key: string | null; what: string };
    const quote = (k: string) => `"${k.replace(/[\\"]/g, '\\$&')}"`;
    const header: fc.Arbitrary<Case> = fc.oneof(
      { weight: 4, arbitrary: printable.map((k) => ({ header: quote(k), key: k, what: 'a quoted key' })) },
      { weight: 3, arbitrary: printable.filter((k) => !k.startsWith('"') && k.trim() === k).map((k) => ({ header: k, key: k, what: 'a bare key' })) },
      { weight: 1, arbitrary: fc.integer({ min: 256, max: 2000 }).map((n) => ({ header: 'k'.repeat(n), key: null, what: 'a key over 255 characters' })) },
      {
        weight: 1,
        arbitrary: fc
          .constantFrom('""', '"open', '"a"b"', '"a\\"', '"tab\there"', '"é"', 'é', '"\\x"')
          .map((h) => ({ header: h, key: null, what: 'a malformed key' })),
      },
    );
    /** Each key sent so far, with the task it made and the args it made it with. */
    const made = new Map<string, { taskId: string; n: number }>();
    await fc.assert(
      fc.asyncProperty(header, fc.integer({ min: 0, max: 3 }), async (c, n) => {
        count('POST /add_task (Idempotency-Key)');
        const res = await fetch(`${hub.url}/add_task?wait=false`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': c.header },
          body: JSON.stringify({ service_id: idleId, args: { n } }),
        });
        const text = await res.text();
        const r: Res = { status: res.status, body: JSON.parse(text), text };
        const what = `${c.what}: ${JSON.stringify(c.header).slice(0, 200)} n=${n}`;
        if (c.key === null) return isError(r, 'bad_request', what);
        const before = made.get(c.key);
        if (!before) {
          expect(r.status, `${what} -> ${text}`).to.equal(202);
          expect(r.body).to.not.have.property('duplicate');
          made.set(c.key, { taskId: r.body.task_id, n });
          queued.add(r.body.task_id);
        } else if (before.n === n) {
          expect(r.status, `${what} -> ${text}`).to.equal(202);
          expect(r.body, what).to.deep.equal({ task_id: before.taskId, status: 'queued', duplicate: true });
        } else {
          expect(r.status, `${what} -> ${text}`).to.equal(422);
          expect(r.body.error, what).to.include({ code: 'idempotency_mismatch', task_id: before.taskId });
        }
      }),
      params(runs),
    );
  });

  it('GET /tasks/{id}/events: the end event of an ended task (204 when Last-Event-ID saw it), 404 task_not_found, 400 for a malformed Last-Event-ID', async function () {
    const runs = runsOf(60);
    this.timeout(timeoutFor(runs));
    type LastId = { value?: string; n?: number; bad?: boolean };
    const lastId = fc.oneof(
      { weight: 2, arbitrary: fc.constant<LastId>({}) },
      { weight: 3, arbitrary: fc.integer({ min: 0, max: 10 }).map((n): LastId => ({ value: String(n), n })) },
      {
        weight: 2,
        arbitrary: fc
          .oneof(
            fc.constantFrom('-1', '1.5', 'abc', '1e3', '0x10', '9'.repeat(20)),
            hostileString.filter((h) => h.trim() !== '' && !/^\d{1,15}$/.test(h.trim()) && /^[\x20-\x7e]*$/.test(h)),
          )
          .map((value): LastId => ({ value, bad: true })),
      },
    );
    const target = fc.oneof(fc.constant('ended' as const), fc.string({ minLength: 1, maxLength: 40 }).filter(encodable));
    await fc.assert(
      fc.asyncProperty(target, lastId, async (which, last) => {
        count('GET /tasks/{id}/events');
        const endedIds = [...ended.keys()];
        const id = which === 'ended' ? endedIds[endedIds.length - 1] : `unknown-${which}`;
        const headers: Record<string, string> = last.value === undefined ? {} : { 'last-event-id': last.value };
        const res = await fetch(`${hub.url}/tasks/${encodeURIComponent(id)}/events`, { headers });
        const text = await res.text();
        const what = `${id} Last-Event-ID ${JSON.stringify(last.value)}`;
        const r: Res = { status: res.status, body: res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : undefined, text };
        if (last.bad) return isError(r, 'bad_request', what);
        if (which !== 'ended') return isError(r, 'task_not_found', what);
        const view = await http(hub, 'GET', `/tasks/${id}`);
        expect(view.status).to.equal(200);
        const endSeq = Number(/^id: (\d+)$/m.exec(await (await fetch(`${hub.url}/tasks/${id}/events`)).text())?.[1]);
        if (last.n !== undefined && last.n >= endSeq) {
          expect(res.status, what).to.equal(204);
          return;
        }
        expect(res.status, what).to.equal(200);
        expect(text, what).to.match(new RegExp(`^id: ${endSeq}\nevent: (result|failed|canceled)\ndata: `));
      }),
      params(runs),
    );
  });

  it('POST /add_task with webhook: 400 bad_request for a malformed URL or events, or a host on a refused address (no packet leaves loopback)', async function () {
    const runs = runsOf(80);
    this.timeout(timeoutFor(runs));
    // A second hub with a webhook secret and private addresses refused: every case here is refused
    // before any request is made, so the fuzz sends nothing anywhere.
    const hooked = await startWatchedHub({ webhookSecret: `whsec_${Buffer.alloc(24, 7).toString('base64')}` });
    const svc = await echoWorker(hooked, fuzzService('fuzz_hook'));
    try {
      const octet = fc.integer({ min: 0, max: 255 });
      const refusedIp = fc.oneof(
        fc.tuple(octet, octet, octet).map(([a, b, c]) => `127.${a}.${b}.${c}`),
        fc.tuple(octet, octet, octet).map(([a, b, c]) => `10.${a}.${b}.${c}`),
        fc.tuple(fc.integer({ min: 16, max: 31 }), octet, octet).map(([a, b, c]) => `172.${a}.${b}.${c}`),
        fc.tuple(octet, octet).map(([a, b]) => `192.168.${a}.${b}`),
        fc.tuple(octet, octet).map(([a, b]) => `169.254.${a}.${b}`),
        fc.tuple(octet, octet, octet).map(([a, b, c]) => `0.${a}.${b}.${c}`),
        fc.constantFrom('[::1]', '[::]', '[fe80::1]', '[fd00::5]', '[::ffff:10.0.0.1]', '[::ffff:127.0.0.1]', 'localhost', 'LOCALHOST'),
      );
      const path = fc.oneof(
        fc.constant(''),
        fc.string({ maxLength: 30 }).map((p) => `/${encodeURIComponent(p)}`),
      );
      type Hook = { webhook?: unknown; events?: unknown; what: string };
      const hook: fc.Arbitrary<Hook> = fc.oneof(
        fc
          .tuple(fc.constantFrom('http', 'https', 'HTTP'), refusedIp, fc.option(fc.integer({ min: 1, max: 65535 })), path)
          .map(([scheme, host, port, p]) => ({ webhook: `${scheme}://${host}${port === null ? '' : `:${port}`}${p}`, what: 'a refused host' })),
        fc
          .constantFrom<unknown>(
            '',
            'ftp://10.0.0.1/',
            'javascript:alert(1)',
            '//127.0.0.1/',
            'http://',
            5,
            null,
            true,
            [],
            {},
            `http://127.0.0.1/${'x'.repeat(2100)}`,
            'http://u:p@127.0.0.1/',
          )
          .map((webhook) => ({ webhook, what: 'a malformed webhook' })),
        fc
          .tuple(
            refusedIp,
            fc.constantFrom<unknown>([], ['done'], ['completed', 'completed'], 'completed', null, [1], ['started', 'progress', 'completed', 'started']),
          )
          .map(([host, events]) => ({ webhook: `http://${host}/`, events, what: 'malformed webhook_events' })),
        fc.constantFrom<unknown>(['completed'], ['progress'], 'x').map((events) => ({ events, what: 'webhook_events without webhook' })),
      );
      await fc.assert(
        fc.asyncProperty(hook, async (h) => {
          count('POST /add_task (webhook)');
          const body: Record<string, unknown> = { service_id: svc.welcome.service_id, args: { n: 1 } };
          if (h.webhook !== undefined) body.webhook = h.webhook;
          if (h.events !== undefined) body.webhook_events = h.events;
          const res = await send(hooked, 'POST', '/add_task?wait=false', JSON.stringify(body), 'application/json');
          isError(res, 'bad_request', `${h.what}: ${JSON.stringify(body).slice(0, 300)}`);
        }),
        params(runs),
      );
      expect(svc.tasks.size).to.equal(0);
      expect(hooked.problems()).to.deep.equal([]);
    } finally {
      await svc.close();
      await hooked.close();
    }
  });

  it('POST /add_task: raw bodies (not JSON, not an object, other content types, over the limit, broken UTF-8, prototype keys, deep nesting)', async function () {
    const runs = runsOf(80);
    this.timeout(timeoutFor(runs));
    const json = 'application/json';
    type Raw = { body: string | Buffer; type?: string; code?: string; status?: number; what: string };
    const raw: fc.Arbitrary<Raw> = fc.oneof(
      notJson.map((body) => ({ body, type: json, code: 'bad_request', what: 'not JSON' })),
      fc
        .oneof(
          fc.constantFrom('null', '[]', '"x"', '5', 'true', '[{"service_id":1,"args":[1]}]'),
          jsonValue.filter((v) => v === null || typeof v !== 'object' || Array.isArray(v)).map(toJson),
        )
        .map((body) => ({ body, type: json, code: 'bad_request', what: 'JSON that is not an object' })),
      fc
        .tuple(
          fc.constantFrom(
            'text/plain',
            'application/x-www-form-urlencoded',
            'multipart/form-data; boundary=x',
            'application/xml',
            'image/png',
            'application/jsonx',
            '',
          ),
          goodArgs,
        )
        .map(([type, args]) => ({
          body: JSON.stringify({ service_id: echoId, args }),
          type: type === '' ? undefined : type,
          code: 'unsupported_media_type',
          what: `content type ${type}`,
        })),
      fc.tuple(fc.integer({ min: LIMIT + 1, max: LIMIT * 3 }), fc.constantFrom('args', 'pad')).map(([n, where]) => ({
        body: where === 'args' ? `{"service_id":$ECHO,"args":{"n":1,"s":"${'x'.repeat(n)}"}}` : `{"service_id":$ECHO,"args":[1],"pad":"${'é'.repeat(n / 2)}"}`,
        type: json,
        code: 'payload_too_large',
        what: `a body of more than ${LIMIT} bytes`,
      })),
      // Broken UTF-8 inside a JSON string reads as U+FFFD: the body stays valid and the args fit.
      badUtf8Bytes.map((bytes) => ({
        body: Buffer.concat([Buffer.from(`{"service_id":$ECHO,"args":{"n":1,"s":"`), bytes, Buffer.from('"}}')]),
        type: json,
        status: 202,
        what: 'broken UTF-8 inside a string',
      })),
      // Broken UTF-8 where JSON needs structure: not JSON.
      brokenUtf8.map((bytes) => ({
        body: Buffer.concat([Buffer.from(`{"service_id":$ECHO,`), bytes, Buffer.from('"args":[1]}')]),
        type: json,
        code: 'bad_request',
        what: 'broken UTF-8 between members',
      })),
      // Prototype-named keys are plain names: at the top they are ignored, in args they are not arguments.
      fc.constantFrom('__proto__', 'constructor', 'prototype').map((key) => ({
        body: `{"service_id":$ECHO,"args":{"n":1},"${key}":{"timeout_ms":-1,"prototype":{"polluted":true}}}`,
        type: json,
        status: 202,
        what: `a top-level ${key}`,
      })),
      fc.constantFrom('__proto__', 'constructor').map((key) => ({
        body: `{"service_id":$ECHO,"args":{"n":1,"${key}":{"prototype":{"polluted":true}}}}`,
        type: json,
        code: 'invalid_args',
        what: `an argument named ${key}`,
      })),
      fc.constant<Raw>({ body: `{"__proto__":{"service_id":$ECHO,"args":[1]}}`, type: json, code: 'bad_request', what: 'the members inside __proto__' }),
      // Deep nesting: ignored where nothing reads it, a problem in a json argument, never a stack overflow.
      fc.tuple(fc.integer({ min: 1000, max: 60_000 }), fc.constantFrom('array', 'object', 'mixed')).map(([d, k]) => ({
        body: toJson({ service_id: echoId, args: { n: 1 }, deep: deepJson(d, k as 'array') }),
        type: json,
        status: 202,
        what: `an ignored member nested ${d} deep`,
      })),
      fc.tuple(fc.integer({ min: 1000, max: 60_000 }), fc.constantFrom('array', 'object', 'mixed')).map(([d, k]) => ({
        body: toJson({ service_id: echoId, args: { n: 1, j: deepJson(d, k as 'array') } }),
        type: json,
        code: 'invalid_args',
        what: `a json argument nested ${d} deep`,
      })),
      fc
        .integer({ min: 1000, max: 60_000 })
        .map((d) => ({ body: toJson({ service_id: echoId, args: deepJson(d) }), type: json, code: 'invalid_args', what: `args nested ${d} deep` })),
      fc.integer({ min: 1000, max: 60_000 }).map((d) => ({ body: '['.repeat(d), type: json, code: 'bad_request', what: `${d} unclosed brackets` })),
      // The last of duplicate members wins, as JSON.parse reads them.
      fc.constant<Raw>({ body: `{"service_id":"x","args":"y","service_id":$ECHO,"args":{"n":2}}`, type: json, status: 202, what: 'duplicate members' }),
    );
    await fc.assert(
      fc.asyncProperty(raw, async (c) => {
        count('POST /add_task (raw bodies)');
        // `$ECHO` stands for the echo service's id (known only once the hub runs).
        const body =
          typeof c.body === 'string'
            ? c.body.replaceAll('$ECHO', String(echoId))
            : Buffer.from(c.body.toString('latin1').replaceAll('$ECHO', String(echoId)), 'latin1');
        const res = await send(hub, 'POST', '/add_task?wait=false', body, c.type);
        const what = `${c.what}: ${String(body).slice(0, 200)}`;
        // A body over the limit is refused before anything reads it.
        if (Buffer.byteLength(body) > LIMIT) return isError(res, 'payload_too_large', what);
        if (c.code) return isError(res, c.code, what);
        expect(res.status, `${what} -> ${res.text.slice(0, 300)}`).to.equal(c.status);
      }),
      params(runs),
    );
  });

  it('POST /add_task waiting: 200 with the result, 502 task_failed, 504 timeout, 409 canceled, 503 no_worker; GET /tasks agrees', async function () {
    const runs = runsOf(25);
    this.timeout(timeoutFor(runs, 300));
    const outcome = fc.oneof(
      fc.tuple(fc.constant('ok' as const), fc.integer({ min: -100, max: 100 })),
      fc.tuple(fc.constant('fail' as const), fc.integer({ min: -100, max: 100 })),
      fc.tuple(fc.constant('timeout' as const), fc.integer({ min: 20, max: 80 })),
      fc.tuple(fc.constant('cancel' as const), fc.integer({ min: 0, max: 100 })),
      fc.tuple(fc.constant('no_worker' as const), fc.integer({ min: 0, max: 60 })),
    );
    let k = 0;
    await fc.assert(
      fc.asyncProperty(outcome, fc.constantFrom('', '?wait=true', '?wait=1'), async ([kind, n], query) => {
        count('POST /add_task (waiting)');
        const marker = `hang-${++k}`;
        const body =
          kind === 'ok'
            ? { service_id: echoId, args: { n } }
            : kind === 'fail'
              ? { service_id: echoId, args: { n, s: 'fail' } }
              : kind === 'timeout'
                ? { service_id: echoId, args: { n: 0, s: marker }, timeout_ms: n }
                : kind === 'cancel'
                  ? { service_id: echoId, args: { n: 0, s: marker } }
                  : { service_id: idleId, args: { n: 0 }, queue_timeout_ms: n };
        const call = send(hub, 'POST', `/add_task${query}`, JSON.stringify(body), 'application/json');
        if (kind === 'cancel') {
          const deadline = Date.now() + 5000;
          let id: string | undefined;
          while (!id && Date.now() < deadline) {
            id = [...echo.tasks].find(([, a]) => a.s === marker)?.[0];
            if (!id) await new Promise((r) => setTimeout(r, 2));
          }
          expect(id, 'the worker got the task').to.be.a('string');
          const del = await send(hub, 'DELETE', `/tasks/${id}`);
          expect(del.status, del.text).to.equal(200);
          expect(del.body.status).to.equal('canceled');
        }
        const res = await call;
        const what = `${kind} ${JSON.stringify(body)}`;
        let status: string;
        if (kind === 'ok') {
          expect(res.status, res.text).to.equal(200);
          expect(res.body).to.deep.include({ status: 'succeeded', result: { echo: n } });
          status = 'succeeded';
        } else {
          const code = { fail: 'task_failed', timeout: 'timeout', cancel: 'canceled', no_worker: 'no_worker' }[kind];
          isError(res, code, what);
          if (kind === 'fail') expect(res.body.error.worker_error).to.deep.equal({ code: 'boom', message: 'failed on purpose' });
          status = kind === 'cancel' ? 'canceled' : 'failed';
        }
        const taskId = res.body.task_id ?? res.body.error.task_id;
        expect(taskId, `${what}: the answer names its task`).to.be.a('string');
        const view = await send(hub, 'GET', `/tasks/${taskId}`);
        expect(view.status).to.equal(200);
        expect(view.body.status, what).to.equal(status);
        ended.set(taskId, status);
        // A hanging task's worker answers late: dropped, never a second end.
        if (kind === 'timeout' || kind === 'cancel') {
          echo.ws.send(JSON.stringify({ type: 'result', task_id: taskId, result: 'late' }));
          echo.hanging.delete(taskId);
        }
      }),
      params(runs),
    );
  });

  it('other methods and paths: 404 not_found, or 405 method_not_allowed on a known path, in the contract shape', async function () {
    const runs = runsOf(15);
    this.timeout(timeoutFor(runs));
    const method = fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS');
    const path = fc.oneof(
      fc.constantFrom(
        '/services_list/',
        '/add_task/',
        '/tasks',
        '/service_info',
        '/service_info/1/x',
        '/nope',
        '/Services_list',
        '/add_task/../services_list2',
      ),
      fc
        .string({ minLength: 1, maxLength: 30 })
        .filter(encodable)
        .map((s) => `/x/${encodeURIComponent(s)}`),
    );
    await fc.assert(
      fc.asyncProperty(method, path, async (m, p) => {
        count('other routes');
        const res = await send(hub, m, p, m === 'GET' || m === 'OPTIONS' ? undefined : '{}', m === 'GET' || m === 'OPTIONS' ? undefined : 'application/json');
        isError(res, 'not_found', `${m} ${p}`);
      }),
      params(runs),
    );
    // The routes that exist answer their own methods only, and name them.
    for (const [m, p, allow] of [
      ['POST', '/services_list', 'GET'],
      ['GET', '/add_task', 'POST'],
      ['PUT', '/tasks/x', 'GET, DELETE'],
      ['POST', `/service_info/${echoId}`, 'GET'],
    ]) {
      const res = await send(hub, m, p, m === 'GET' ? undefined : '{}', m === 'GET' ? undefined : 'application/json');
      isError(res, 'method_not_allowed', `${m} ${p}`);
      expect((res.body as { error: { allow: string[] } }).error.allow.join(', '), `${m} ${p}`).to.equal(allow);
    }
  });

  it('still serves a normal task after the run, with no fault logged, no warning and no polluted prototype', async function () {
    this.timeout(30_000);
    const list = await http(hub, 'GET', '/services_list');
    expect(list.status).to.equal(200);
    expect(list.body).to.deep.equal([{ service_id: echoId, service_name: 'fuzz_rest' }]);
    const res = await http(hub, 'POST', '/add_task', { service_id: echoId, args: { n: 7 } });
    expect(res.status).to.equal(200);
    expect(res.body.result).to.deep.equal({ echo: 7 });
    expect(hub.problems()).to.deep.equal([]);
  });
});
