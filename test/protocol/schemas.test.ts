import { expect } from 'chai';
import { ERROR_CODES, ERROR_STATUS, HubError, isErrorCode, parseMessage, validate, type Validator } from '@utils-hub/protocol';

type Direction = 'workerToHub' | 'hubToWorker' | 'clientToHub' | 'hubToClient';

/** Throws unless `fn` throws a HubError with `code`; returns it. */
function hubErrorOf(fn: () => unknown, code: string): HubError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(HubError);
    expect((err as HubError).code).to.equal(code);
    return err as HubError;
  }
  expect.fail(`expected a HubError ${code}`);
}

const ME_EXAMPLE = `{
  "name": "image_transform_service",
  "description": "Rotates or resizes a picture",
  "input": [
    {"argument_name": "image", "argument_description": "The picture", "type": "image"},
    {"argument_name": "angle", "argument_description": "Degrees", "type": "int"}
  ],
  "output": [{"argument_name": "image", "argument_description": "Result", "type": "image"}]
}`;

const SERVICE_INFO_EXAMPLE = `{
  "service_id": 1,
  "service_name": "image_transform_service",
  "service_description": "Rotates or resizes a picture",
  "arguments": [
    {"argument_name": "image", "argument_description": "The picture", "type": "image"},
    {"argument_name": "angle", "argument_description": "Degrees, clockwise", "type": "int"}
  ]
}`;

/**
 * Every example of PROTOCOL.md. `verbatim` ones are copied character for character; the others
 * hold a placeholder there (`[...]`, `<value>`, `any`, `{section 3}`, or a list of field names
 * only), which is filled with the smallest value that the text allows.
 */
const MESSAGE_EXAMPLES: { direction: Direction; verbatim: boolean; text: string }[] = [
  // 5. generic error answer
  { direction: 'hubToWorker', verbatim: true, text: '{"type": "error", "code": "bad_message", "message": "..."}' },
  { direction: 'hubToClient', verbatim: true, text: '{"type": "error", "code": "bad_message", "message": "..."}' },
  // 5.1 handshake
  { direction: 'workerToHub', verbatim: false, text: `{"type": "hello", "protocol": 1, "me": ${ME_EXAMPLE}, "concurrency": 4, "instance": "host-1"}` },
  { direction: 'hubToWorker', verbatim: true, text: '{"type": "welcome", "service_id": 1, "connection_id": "...", "heartbeat_ms": 15000}' },
  { direction: 'hubToWorker', verbatim: true, text: '{"type": "error", "code": "...", "message": "..."}' },
  // 5.1 hub to worker
  { direction: 'hubToWorker', verbatim: false, text: '{"type": "task", "task_id": "...", "args": {"<argument_name>": 1}, "timeout_ms": 60000, "attempt": 1}' },
  { direction: 'hubToWorker', verbatim: false, text: '{"type": "cancel", "task_id": "...", "reason": "client"}' },
  { direction: 'hubToWorker', verbatim: false, text: '{"type": "cancel", "task_id": "...", "reason": "timeout"}' },
  { direction: 'hubToWorker', verbatim: false, text: '{"type": "cancel", "task_id": "...", "reason": "shutdown"}' },
  // 5.1 worker to hub
  {
    direction: 'workerToHub',
    verbatim: false,
    text: '{"type": "progress", "task_id": "...", "progress": 0.4, "message": "resizing", "data": {"any": [1, "x", null]}}',
  },
  { direction: 'workerToHub', verbatim: false, text: '{"type": "result", "task_id": "...", "result": {"any": true}}' },
  { direction: 'workerToHub', verbatim: true, text: '{"type": "failed", "task_id": "...", "error": {"code": "...", "message": "..."}}' },
  { direction: 'workerToHub', verbatim: true, text: '{"type": "drain"}' },
  // 5.2 hub to client, first message
  { direction: 'hubToClient', verbatim: true, text: '{"type": "services", "services": [{"service_id": 1, "service_name": "..."}]}' },
  // 5.2 client to hub
  {
    direction: 'clientToHub',
    verbatim: false,
    text: '{"type": "add_task", "ref": "c-1", "service_id": 1, "args": [], "timeout_ms": 60000, "queue_timeout_ms": 30000}',
  },
  {
    direction: 'clientToHub',
    verbatim: false,
    text: '{"type": "add_task", "ref": "c-1", "service_id": 1, "args": {}, "timeout_ms": 60000, "queue_timeout_ms": 30000}',
  },
  { direction: 'clientToHub', verbatim: true, text: '{"type": "cancel", "task_id": "..."}' },
  { direction: 'clientToHub', verbatim: true, text: '{"type": "subscribe", "task_id": "..."}' },
  { direction: 'clientToHub', verbatim: true, text: '{"type": "service_info", "ref": "...", "service_id": 1}' },
  { direction: 'hubToClient', verbatim: false, text: `{"type": "service_info", "ref": "...", "service": ${SERVICE_INFO_EXAMPLE}}` },
  // 5.2 hub to client, task events
  { direction: 'hubToClient', verbatim: true, text: '{"type": "accepted", "ref": "c-1", "task_id": "...", "position": 0}' },
  { direction: 'hubToClient', verbatim: true, text: '{"type": "rejected", "ref": "c-1", "error": {"code": "...", "message": "..."}}' },
  { direction: 'hubToClient', verbatim: false, text: '{"type": "queued", "task_id": "t", "seq": 2, "position": 0}' },
  { direction: 'hubToClient', verbatim: false, text: '{"type": "started", "task_id": "t", "seq": 1, "attempt": 1}' },
  { direction: 'hubToClient', verbatim: false, text: '{"type": "progress", "task_id": "t", "seq": 2, "progress": 0.4, "message": "resizing", "data": null}' },
  { direction: 'hubToClient', verbatim: false, text: '{"type": "result", "task_id": "t", "seq": 3, "result": 42}' },
  {
    direction: 'hubToClient',
    verbatim: false,
    text: '{"type": "failed", "task_id": "t", "seq": 3, "error": {"code": "task_failed", "message": "m", "worker_error": {"code": "x", "message": "y"}}}',
  },
  { direction: 'hubToClient', verbatim: false, text: '{"type": "canceled", "task_id": "t", "seq": 2}' },
  {
    direction: 'hubToClient',
    verbatim: false,
    text: '{"type": "snapshot", "task_id": "t", "seq": 1, "status": "running", "progress": 0.5, "message": "half", "position": null}',
  },
  { direction: 'hubToClient', verbatim: false, text: '{"type": "error", "code": "task_not_found", "message": "no such task", "task_id": "t", "ref": "c-1"}' },
];

describe('schemas', () => {
  describe('PROTOCOL.md examples', () => {
    for (const ex of MESSAGE_EXAMPLES) {
      it(`accepts ${ex.verbatim ? 'verbatim' : 'filled-in'} ${ex.direction} ${ex.text.slice(0, 60)}`, () => {
        const msg = JSON.parse(ex.text) as unknown;
        expect(parseMessage(ex.direction, msg)).to.equal(msg);
      });
    }

    it('accepts the /me example verbatim', () => {
      expect(validate.serviceDescription(JSON.parse(ME_EXAMPLE))).to.equal(true);
    });

    it('accepts the GET /services_list example verbatim', () => {
      expect(validate.servicesList(JSON.parse('[{"service_id": 1, "service_name": "image_transform_service"}]'))).to.equal(true);
    });

    it('accepts the GET /service_info example verbatim', () => {
      expect(validate.serviceInfo(JSON.parse(SERVICE_INFO_EXAMPLE))).to.equal(true);
    });

    it('accepts the POST /add_task body with args of either shape', () => {
      for (const args of ['[]', '{}', '[{"mime": "image/png", "data": "QQ=="}, 90]', '{"angle": 90}']) {
        const body = JSON.parse(`{"service_id": 1, "args": ${args}}`) as unknown;
        expect(validate.addTaskBody.check(body)).to.equal(body);
      }
    });

    it('accepts the POST /add_task answers', () => {
      expect(validate.addTaskSucceeded(JSON.parse('{"task_id": "...", "status": "succeeded", "result": {"v": 1}}'))).to.equal(true);
      expect(validate.addTaskQueued(JSON.parse('{"task_id": "...", "status": "queued"}'))).to.equal(true);
    });

    it('accepts the invalid_args error body of section 2', () => {
      const body = JSON.parse(
        '{"error": {"code": "invalid_args", "message": "bad args", "details": [{"argument_name": "angle", "problem": "expected int, got \\"abc\\""}]}}',
      ) as unknown;
      expect(validate.errorBody(body)).to.equal(true);
    });

    it('accepts the values of section 4', () => {
      expect(validate.mediaBase64(JSON.parse('{"mime": "image/png", "data": "<base64>", "name": "cat.png"}'))).to.equal(true);
      expect(validate.mediaUrl(JSON.parse('{"url": "https://...", "mime": "image/png"}'))).to.equal(true);
      expect(validate.attachmentRef(JSON.parse('{"$attachment": 0, "mime": "image/png", "name": "cat.png"}'))).to.equal(true);
    });
  });

  describe('REST bodies', () => {
    const TASK = {
      task_id: 'V1StGXR8_Z5jdHi6B-myT',
      service_id: 1,
      status: 'running',
      progress: 0.5,
      message: 'half',
      created_at: '2024-01-01T00:00:00.000Z',
      started_at: '2024-01-01T00:00:01.000Z',
      finished_at: null,
    };
    const tables: { name: string; v: Validator<unknown>; valid: unknown[]; invalid: unknown[] }[] = [
      {
        name: 'servicesList',
        v: validate.servicesList,
        valid: [
          [],
          [
            { service_id: 0, service_name: 'a' },
            { service_id: 2, service_name: 'b.c-d_e', extra: 1 },
          ],
        ],
        invalid: [
          {},
          [{ service_id: -1, service_name: 'a' }],
          [{ service_id: 1 }],
          [{ service_id: 1, service_name: 'a b' }],
          [{ service_id: 1.5, service_name: 'a' }],
        ],
      },
      {
        name: 'serviceInfo',
        v: validate.serviceInfo,
        valid: [
          { service_id: 1, service_name: 's', service_description: '', arguments: [] },
          { service_id: 1, service_name: 's', service_description: '', arguments: [], output: [], connections: 0, in_flight: 0, queued: 3 },
        ],
        invalid: [
          { service_id: 1, service_name: 's', service_description: '' },
          { service_id: 1, service_name: 's', service_description: '', arguments: [], connections: -1 },
          { service_id: '1', service_name: 's', service_description: '', arguments: [] },
          { service_id: 1, service_name: 's', service_description: '', arguments: [{ argument_name: 'a', type: 'number' }] },
        ],
      },
      {
        name: 'addTaskBody',
        v: validate.addTaskBody,
        valid: [
          { service_id: 1, args: [] },
          { service_id: 1, args: {}, timeout_ms: 1, queue_timeout_ms: 0 },
          { service_id: 0, args: { a: 1 }, extra: 'ignored' },
        ],
        invalid: [
          {},
          [],
          null,
          'x',
          { args: [] },
          { service_id: 1 },
          { service_id: 1, args: 'x' },
          { service_id: 1, args: null },
          { service_id: 1, args: 5 },
          { service_id: -1, args: [] },
          { service_id: 1.5, args: [] },
          { service_id: 2 ** 53, args: [] },
          { service_id: 1, args: [], timeout_ms: 0 },
          { service_id: 1, args: [], timeout_ms: 1.5 },
          { service_id: 1, args: [], queue_timeout_ms: -1 },
        ],
      },
      {
        name: 'addTaskSucceeded',
        v: validate.addTaskSucceeded,
        valid: [{ task_id: 't', status: 'succeeded', result: null }],
        invalid: [
          { task_id: 't', status: 'queued', result: 1 },
          { task_id: '', status: 'succeeded', result: 1 },
          { status: 'succeeded', result: 1 },
        ],
      },
      {
        name: 'addTaskQueued',
        v: validate.addTaskQueued,
        valid: [{ task_id: 't', status: 'queued' }],
        invalid: [
          { task_id: 't', status: 'running' },
          { task_id: 'x'.repeat(65), status: 'queued' },
        ],
      },
      {
        name: 'taskView',
        v: validate.taskView,
        valid: [
          TASK,
          { ...TASK, status: 'queued', progress: null, message: null, started_at: null },
          { ...TASK, status: 'succeeded', result: { x: 1 }, finished_at: '2024-01-01T00:00:02.000Z', attempts: 1 },
          { ...TASK, status: 'failed', error: { code: 'timeout', message: 'too slow' } },
          { ...TASK, status: 'canceled' },
        ],
        invalid: [
          { ...TASK, status: 'done' },
          { ...TASK, created_at: undefined },
          { ...TASK, progress: '0.5' },
          { ...TASK, service_id: -1 },
        ],
      },
      {
        name: 'errorBody',
        v: validate.errorBody,
        valid: [
          { error: { code: 'timeout', message: 'm' } },
          { error: { code: 'task_failed', message: 'm', task_id: 't', worker_error: { code: 'x', message: 'y' } } },
        ],
        invalid: [{}, { error: 'timeout' }, { error: { code: 'timeout' } }, { error: { message: 'm' } }],
      },
      {
        name: 'serviceDescription',
        v: validate.serviceDescription,
        valid: [
          { name: 's', description: '', input: [] },
          {
            name: 'a'.repeat(64),
            description: 'd',
            input: [{ argument_name: 'x', type: 'str', required: false, default: 'y', choices: ['y', 'z'], min: 0, max: 3, prompt: 'Which?' }],
          },
          { name: 's', description: '', input: [{ argument_name: 'p', type: 'image', mime: ['image/png'], max_bytes: 10 }], output: [] },
        ],
        invalid: [
          { description: '', input: [] },
          { name: '', description: '', input: [] },
          { name: 'a'.repeat(65), description: '', input: [] },
          { name: 'a/b', description: '', input: [] },
          { name: 's', input: [] },
          { name: 's', description: 5, input: [] },
          { name: 's', description: '' },
          { name: 's', description: '', input: {} },
          { name: 's', description: '', input: [{ argument_name: 'x' }] },
          { name: 's', description: '', input: [{ argument_name: 'x-y', type: 'int' }] },
          { name: 's', description: '', input: [{ argument_name: 'x', type: 'integer' }] },
          { name: 's', description: '', input: [{ argument_name: 'x', type: 'int', required: 'no' }] },
          { name: 's', description: '', input: [{ argument_name: 'x', type: 'int', choices: [] }] },
          { name: 's', description: '', input: [{ argument_name: 'x', type: 'image', mime: [] }] },
          { name: 's', description: '', input: [{ argument_name: 'x', type: 'image', max_bytes: -1 }] },
          { name: 's', description: '', input: Array.from({ length: 65 }, (_, i) => ({ argument_name: `a${i}`, type: 'int' })) },
        ],
      },
      {
        name: 'argument',
        v: validate.argument,
        valid: ['int', 'float', 'str', 'bool', 'json', 'image', 'audio', 'video', 'file'].map((type) => ({ argument_name: 'a', type })),
        invalid: [{ argument_name: 'a' }, { type: 'int' }, { argument_name: '', type: 'int' }, { argument_name: 'a'.repeat(65), type: 'int' }],
      },
      {
        name: 'mediaBase64',
        v: validate.mediaBase64,
        valid: [
          { mime: 'image/png', data: '' },
          { mime: 'x/y', data: 'QQ==', name: 'a.png' },
        ],
        invalid: [{ data: 'QQ==' }, { mime: '', data: 'QQ==' }, { mime: 'image/png' }, { mime: 'image/png', data: 5 }],
      },
      {
        name: 'mediaUrl',
        v: validate.mediaUrl,
        valid: [{ url: 'https://x/y.png' }, { url: 'u', mime: 'image/png', name: 'n' }],
        invalid: [{}, { url: '' }, { url: 'x'.repeat(8193) }, { url: 'u', mime: 5 }],
      },
      {
        name: 'attachmentRef',
        v: validate.attachmentRef,
        valid: [{ $attachment: 0 }, { $attachment: 15, mime: 'image/png' }],
        invalid: [{ $attachment: -1 }, { $attachment: 16 }, { $attachment: '0' }, { $attachment: 0.5 }],
      },
    ];
    for (const t of tables) {
      describe(t.name, () => {
        t.valid.forEach((value, i) => {
          it(`accepts valid example ${i}`, () => {
            expect(t.v(value), t.v.problem()).to.equal(true);
            expect(t.v.check(value)).to.equal(value);
          });
        });
        t.invalid.forEach((value, i) => {
          it(`rejects invalid example ${i} with bad_request`, () => {
            expect(t.v(value)).to.equal(false);
            expect(t.v.problem()).to.be.a('string').and.not.equal('');
            hubErrorOf(() => t.v.check(value), 'bad_request');
          });
        });
      });
    }

    it('check() takes the code to throw with', () => {
      hubErrorOf(() => validate.addTaskBody.check({}, 'bad_message'), 'bad_message');
    });

    it('names the field in its message', () => {
      const err = hubErrorOf(() => validate.addTaskBody.check({ service_id: 'x', args: [] }), 'bad_request');
      expect(err.message).to.contain('/service_id');
      const missing = hubErrorOf(() => validate.addTaskBody.check({ args: [] }), 'bad_request');
      expect(missing.message).to.contain('service_id');
    });
  });

  describe('parseMessage', () => {
    const VALID: Record<Direction, Record<string, unknown>[]> = {
      workerToHub: [
        { type: 'hello', protocol: 1, me: {} },
        { type: 'hello', protocol: 1, me: null, concurrency: 1024, instance: '' },
        { type: 'progress', task_id: 't' },
        { type: 'progress', task_id: 't', progress: 0, attachments: 1 },
        { type: 'progress', task_id: 't', progress: 1, message: '', data: [1] },
        { type: 'result', task_id: 't', result: null },
        { type: 'result', task_id: 't', result: { image: { $attachment: 0 } }, attachments: 16 },
        { type: 'failed', task_id: 't', error: { code: 'x', message: '' } },
        { type: 'drain', extra: 'ignored' },
      ],
      hubToWorker: [
        { type: 'welcome', service_id: 0, connection_id: 'c', heartbeat_ms: 1 },
        { type: 'task', task_id: 't', args: {}, timeout_ms: 1, attempt: 1 },
        { type: 'task', task_id: 't', args: { a: { $attachment: 0, mime: 'image/png' } }, timeout_ms: 1000, attempt: 2, attachments: 1 },
        { type: 'cancel', task_id: 't', reason: 'client' },
        { type: 'error', code: 'bad_message', message: 'm', task_id: 't' },
      ],
      clientToHub: [
        { type: 'add_task', service_id: 1, args: [] },
        { type: 'add_task', service_id: 1, args: { a: { $attachment: 0 } }, attachments: 1, ref: '' },
        { type: 'cancel', task_id: 't' },
        { type: 'subscribe', task_id: 't' },
        { type: 'service_info', service_id: 1 },
      ],
      hubToClient: [
        { type: 'services', services: [] },
        { type: 'accepted', task_id: 't', position: 3 },
        { type: 'rejected', error: { code: 'queue_full', message: 'full' } },
        { type: 'queued', task_id: 't', seq: 1, position: 0 },
        { type: 'started', task_id: 't', seq: 1, attempt: 2 },
        { type: 'progress', task_id: 't', seq: 1 },
        { type: 'progress', task_id: 't', seq: 1, progress: 0.1, attachments: 2 },
        { type: 'result', task_id: 't', seq: 1, result: 'x' },
        { type: 'failed', task_id: 't', seq: 1, error: { code: 'timeout', message: 'm' } },
        { type: 'canceled', task_id: 't', seq: 9 },
        { type: 'snapshot', task_id: 't', seq: 0, status: 'queued', progress: null, message: null, position: 2 },
        { type: 'service_info', service: { service_id: 1, service_name: 's', service_description: '', arguments: [] } },
        { type: 'error', code: 'bad_message', message: 'm' },
      ],
    };
    const INVALID: Record<Direction, Record<string, unknown>[]> = {
      workerToHub: [
        { type: 'hello', me: {} },
        { type: 'hello', protocol: '1', me: {} },
        { type: 'hello', protocol: 1 },
        { type: 'hello', protocol: 1, me: {}, concurrency: 0 },
        { type: 'hello', protocol: 1, me: {}, concurrency: 1025 },
        { type: 'hello', protocol: 1, me: {}, concurrency: 1.5 },
        { type: 'hello', protocol: 1, me: {}, instance: 5 },
        { type: 'progress' },
        { type: 'progress', task_id: '' },
        { type: 'progress', task_id: 't', progress: 1.5 },
        { type: 'progress', task_id: 't', progress: -0.1 },
        { type: 'progress', task_id: 't', message: 5 },
        { type: 'progress', task_id: 't', attachments: 0 },
        { type: 'progress', task_id: 't', attachments: 17 },
        { type: 'result', task_id: 't' },
        { type: 'result', result: 1 },
        { type: 'result', task_id: 't', result: 1, attachments: 'one' },
        { type: 'failed', task_id: 't' },
        { type: 'failed', task_id: 't', error: { code: 'x' } },
        { type: 'failed', task_id: 't', error: 'boom' },
        { type: 'task', task_id: 't', args: {}, timeout_ms: 1, attempt: 1 },
        { type: 'welcome', service_id: 1, connection_id: 'c', heartbeat_ms: 1 },
      ],
      hubToWorker: [
        { type: 'welcome', service_id: 1, connection_id: 'c' },
        { type: 'welcome', service_id: -1, connection_id: 'c', heartbeat_ms: 1 },
        { type: 'welcome', service_id: 1, connection_id: 'c', heartbeat_ms: 0 },
        { type: 'task', task_id: 't', args: [], timeout_ms: 1, attempt: 1 },
        { type: 'task', task_id: 't', args: {}, attempt: 1 },
        { type: 'task', task_id: 't', args: {}, timeout_ms: 1, attempt: 0 },
        { type: 'task', task_id: 't', args: {}, timeout_ms: 0, attempt: 1 },
        { type: 'cancel', task_id: 't' },
        { type: 'cancel', task_id: 't', reason: 'bored' },
        { type: 'error', code: 'x' },
        { type: 'error', message: 'm' },
        { type: 'drain' },
        { type: 'hello', protocol: 1, me: {} },
      ],
      clientToHub: [
        { type: 'add_task', args: [] },
        { type: 'add_task', service_id: 1 },
        { type: 'add_task', service_id: 1, args: 'x' },
        { type: 'add_task', service_id: 1, args: null },
        { type: 'add_task', service_id: 1, args: [], ref: 5 },
        { type: 'add_task', service_id: 1, args: [], ref: 'r'.repeat(257) },
        { type: 'add_task', service_id: 1, args: [], timeout_ms: 0 },
        { type: 'add_task', service_id: 1, args: [], queue_timeout_ms: -5 },
        { type: 'add_task', service_id: 1, args: [], attachments: 0 },
        { type: 'add_task', service_id: '1', args: [] },
        { type: 'cancel' },
        { type: 'cancel', task_id: 5 },
        { type: 'subscribe' },
        { type: 'subscribe', task_id: '' },
        { type: 'service_info' },
        { type: 'service_info', service_id: -1 },
        { type: 'result', task_id: 't', result: 1 },
        { type: 'hello', protocol: 1, me: {} },
      ],
      hubToClient: [
        { type: 'services' },
        { type: 'services', services: [{ service_id: 1 }] },
        { type: 'accepted', task_id: 't' },
        { type: 'accepted', task_id: 't', position: -1 },
        { type: 'rejected' },
        { type: 'rejected', error: { message: 'm' } },
        { type: 'queued', task_id: 't', seq: 0, position: 0 },
        { type: 'queued', task_id: 't', seq: 1 },
        { type: 'started', task_id: 't', seq: 1 },
        { type: 'started', task_id: 't', attempt: 1 },
        { type: 'progress', task_id: 't' },
        { type: 'progress', task_id: 't', seq: 1, progress: 2 },
        { type: 'result', task_id: 't', seq: 1 },
        { type: 'failed', task_id: 't', seq: 1 },
        { type: 'canceled', task_id: 't' },
        { type: 'snapshot', task_id: 't', seq: 1, status: 'paused', progress: null, message: null, position: null },
        { type: 'snapshot', task_id: 't', seq: 1, status: 'queued' },
        { type: 'service_info', service: {} },
        { type: 'error', code: 'x' },
        { type: 'task', task_id: 't', args: {}, timeout_ms: 1, attempt: 1 },
      ],
    };

    for (const direction of Object.keys(VALID) as Direction[]) {
      describe(direction, () => {
        for (const msg of VALID[direction]) {
          it(`accepts ${JSON.stringify(msg).slice(0, 90)}`, () => {
            expect(parseMessage(direction, msg)).to.equal(msg);
          });
        }
        for (const msg of INVALID[direction]) {
          it(`rejects ${JSON.stringify(msg).slice(0, 90)} with bad_message`, () => {
            const err = hubErrorOf(() => parseMessage(direction, msg), 'bad_message');
            expect(err.message).to.be.a('string').and.not.equal('');
          });
        }
      });
    }

    it('covers every message type of every direction', () => {
      const covered = (d: Direction) => new Set(VALID[d].map((m) => m.type));
      expect([...covered('workerToHub')].sort()).to.deep.equal(Object.keys(validate.workerToHub).sort());
      expect([...covered('hubToWorker')].sort()).to.deep.equal(Object.keys(validate.hubToWorker).sort());
      expect([...covered('clientToHub')].sort()).to.deep.equal(Object.keys(validate.clientToHub).sort());
      expect([...covered('hubToClient')].sort()).to.deep.equal(Object.keys(validate.hubToClient).sort());
    });

    it('rejects what is not an object', () => {
      for (const msg of [null, undefined, 5, 'hello', [], [{ type: 'drain' }], true]) {
        hubErrorOf(() => parseMessage('workerToHub', msg), 'bad_message');
      }
    });

    it('rejects a missing or non-string type', () => {
      for (const msg of [{}, { type: 5 }, { type: null }, { type: ['drain'] }]) {
        const err = hubErrorOf(() => parseMessage('workerToHub', msg), 'bad_message');
        expect(err.message).to.contain('type');
      }
    });

    it('rejects unknown types, inherited names included', () => {
      for (const type of ['nope', '__proto__', 'constructor', 'toString', 'hasOwnProperty', '']) {
        const err = hubErrorOf(() => parseMessage('clientToHub', JSON.parse(JSON.stringify({ type }))), 'bad_message');
        expect(err.message).to.contain('unknown message type');
      }
    });

    it('cuts a huge unknown type short in its message', () => {
      const err = hubErrorOf(() => parseMessage('clientToHub', { type: 'x'.repeat(100_000) }), 'bad_message');
      expect(err.message.length).to.be.below(200);
    });

    it('names every alternative of a union in its message', () => {
      const cases: [Direction, unknown, string][] = [
        ['hubToWorker', { type: 'cancel', task_id: 't', reason: 'bored' }, '/reason must be one of "client", "timeout", "shutdown"'],
        [
          'hubToClient',
          { type: 'snapshot', task_id: 't', seq: 1, status: 'paused', progress: null, message: null, position: null },
          '/status must be one of "queued", "running", "succeeded", "failed", "canceled"',
        ],
        [
          'hubToClient',
          { type: 'snapshot', task_id: 't', seq: 1, status: 'queued', progress: 'x', message: null, position: null },
          '/progress must be number or null',
        ],
        ['clientToHub', { type: 'add_task', service_id: 1, args: 'x' }, '/args must be array or object'],
      ];
      for (const [direction, msg, message] of cases) {
        expect(hubErrorOf(() => parseMessage(direction, msg), 'bad_message').message).to.equal(message);
      }
      expect(hubErrorOf(() => validate.addTaskBody.check({ service_id: 1, args: 5 }), 'bad_request').message).to.equal('/args must be array or object');
    });

    it('names the failing bound inside a union branch', () => {
      const msg = { type: 'snapshot', task_id: 't', seq: 1, status: 'queued', progress: null, message: null, position: -1 };
      expect(hubErrorOf(() => parseMessage('hubToClient', msg), 'bad_message').message).to.equal('/position must be >= 0');
    });

    it('takes a message with a __proto__ key as data', () => {
      const msg = JSON.parse('{"type": "drain", "__proto__": {"polluted": true}}') as object;
      expect(parseMessage('workerToHub', msg)).to.equal(msg);
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    });

    it('does not walk deeply nested free-form values', () => {
      const msg = JSON.parse(
        `${JSON.stringify({ type: 'result', task_id: 't' }).slice(0, -1)},"result":${'['.repeat(100_000)}1${']'.repeat(100_000)}}`,
      ) as object;
      expect(parseMessage('workerToHub', msg)).to.equal(msg);
    });
  });
});

describe('errors', () => {
  describe('ERROR_STATUS', () => {
    it('gives each code of section 6 its status', () => {
      const table: Record<string, number> = {
        bad_request: 400,
        invalid_args: 400,
        unauthorized: 401,
        forbidden: 403,
        service_not_found: 404,
        task_not_found: 404,
        not_found: 404,
        already_finished: 409,
        canceled: 409,
        payload_too_large: 413,
        rate_limited: 429,
        task_failed: 502,
        worker_lost: 502,
        no_worker: 503,
        queue_full: 503,
        shutting_down: 503,
        interrupted: 503,
        timeout: 504,
        internal: 500,
      };
      for (const [code, status] of Object.entries(table)) expect(ERROR_STATUS[code as keyof typeof ERROR_STATUS], code).to.equal(status);
      for (const code of ['bad_message', 'bad_service_description', 'service_conflict', 'unsupported_protocol']) {
        expect(ERROR_CODES).to.include(code);
      }
    });
  });

  describe('isErrorCode', () => {
    it('knows the catalogue and nothing inherited', () => {
      expect(isErrorCode('timeout')).to.equal(true);
      expect(isErrorCode('constructor')).to.equal(false);
      expect(isErrorCode('__proto__')).to.equal(false);
      expect(isErrorCode(5)).to.equal(false);
    });
  });

  describe('HubError', () => {
    it('carries the status of its code', () => {
      const e = new HubError('queue_full', 'full');
      expect(e.status).to.equal(ERROR_STATUS.queue_full);
      expect(e.toBody()).to.deep.equal({ error: { code: 'queue_full', message: 'full' } });
    });

    it('puts details beside code and message, never over them', () => {
      const e = new HubError('invalid_args', 'bad', { details: [{ argument_name: 'a', problem: 'p' }], code: 'x' });
      expect(e.toJSON()).to.deep.equal({ details: [{ argument_name: 'a', problem: 'p' }], code: 'invalid_args', message: 'bad' });
    });

    it('rebuilds itself from a wire error, unknown codes as internal', () => {
      const e = HubError.from({ code: 'task_failed', message: 'm', worker_error: { code: 'x', message: 'y' } });
      expect(e.code).to.equal('task_failed');
      expect(e.details).to.deep.equal({ worker_error: { code: 'x', message: 'y' } });
      expect(HubError.from({ code: 'nope', message: 'm' }).code).to.equal('internal');
      expect(HubError.from(new Error('x')).code).to.equal('internal');
      expect(HubError.from(null).code).to.equal('internal');
    });
  });
});
