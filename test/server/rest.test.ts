import { expect } from 'chai';
import { eventually, startHub, fakeClient, fakeWorker, http, me, sleep, until, workerGone, type TestHub } from '../helpers/hub.js';
import { forEachDatabase } from '../helpers/backends.js';

forEachDatabase('REST routes', (dbUrl) => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startHub({ db: await dbUrl() });
  });
  afterEach(() => hub.close());

  describe('GET /services_list', () => {
    it('lists only services with a live connection, ordered by id', async () => {
      expect((await http(hub, 'GET', '/services_list')).body).to.deep.equal([]);
      const w1 = await fakeWorker(hub, me('svc_a'));
      const w2 = await fakeWorker(hub, me('svc_b'));
      const list = (await http(hub, 'GET', '/services_list')).body;
      expect(list).to.deep.equal([
        { service_id: w1.welcome.service_id, service_name: 'svc_a' },
        { service_id: w2.welcome.service_id, service_name: 'svc_b' },
      ]);
      await w1.close();
      const left = await eventually(
        async () => (await http(hub, 'GET', '/services_list')).body,
        (l) => l.length === 1,
        'svc_a gone from the list',
      );
      expect(left).to.deep.equal([{ service_id: w2.welcome.service_id, service_name: 'svc_b' }]);
      await w2.close();
    });
  });

  describe('GET /service_info/:id', () => {
    it('answers the arguments in order with their extras', async () => {
      const input = [
        { argument_name: 'image', argument_description: 'The picture', type: 'image', mime: ['image/png'] },
        { argument_name: 'angle', argument_description: 'Degrees', type: 'int', default: 90, min: 0, max: 359, prompt: 'Which angle?' },
      ];
      const w = await fakeWorker(hub, me('info_svc', input), { concurrency: 3 });
      const { status, body } = await http(hub, 'GET', `/service_info/${w.welcome.service_id}`);
      expect(status).to.equal(200);
      expect(body).to.include({ service_id: w.welcome.service_id, service_name: 'info_svc', service_description: 'test service info_svc', connections: 1 });
      expect(body.arguments).to.deep.equal(input);
      await w.close();
    });

    it('still answers a known service with no live connection', async () => {
      const w = await fakeWorker(hub, me('gone_svc'));
      await w.close();
      const { status, body } = await eventually(
        () => http(hub, 'GET', `/service_info/${w.welcome.service_id}`),
        (r) => r.body.connections === 0,
        'no live connection',
      );
      expect(status).to.equal(200);
      expect(body.connections).to.equal(0);
    });

    it('answers 404 service_not_found for an id never seen', async () => {
      const { status, body } = await http(hub, 'GET', '/service_info/9999');
      expect(status).to.equal(404);
      expect(body.error.code).to.equal('service_not_found');
    });

    for (const bad of ['abc', '-1', '1.5', '1e3', '%20', '99999999999999999999']) {
      it(`answers 400 bad_request for the id ${JSON.stringify(bad)}`, async () => {
        const { status, body } = await http(hub, 'GET', `/service_info/${bad}`);
        expect(status).to.equal(400);
        expect(body.error.code).to.equal('bad_request');
      });
    }
  });

  describe('POST /add_task', () => {
    it('waits for the result', async () => {
      const w = await fakeWorker(hub, me('add_ok'));
      w.ws.on('message', () => undefined);
      const call = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [41] });
      const task = await w.nextOf('task');
      expect(task.args).to.deep.equal({ x: 41 });
      expect(task.attempt).to.equal(1);
      w.send({ type: 'result', task_id: task.task_id, result: { y: 42 } });
      const { status, body } = await call;
      expect(status).to.equal(200);
      expect(body).to.deep.equal({ task_id: task.task_id, status: 'succeeded', result: { y: 42 } });
      await w.close();
    });

    it('takes named args and fills defaults', async () => {
      const w = await fakeWorker(
        hub,
        me('add_named', [
          { argument_name: 'a', type: 'str' },
          { argument_name: 'b', type: 'int', default: 7 },
        ]),
      );
      const call = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: { a: 'hi' } });
      const task = await w.nextOf('task');
      expect(task.args).to.deep.equal({ a: 'hi', b: 7 });
      w.send({ type: 'result', task_id: task.task_id, result: null });
      expect((await call).status).to.equal(200);
    });

    it('passes media sent as base64 to the worker as a binary attachment and returns media as base64', async () => {
      const w = await fakeWorker(hub, me('add_media', [{ argument_name: 'img', type: 'image' }]));
      const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
      const call = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [`data:image/png;base64,${png.toString('base64')}`] });
      const task = await w.nextOf('task');
      expect(Buffer.isBuffer(task.args.img.data)).to.equal(true);
      expect(task.args.img.data.equals(png)).to.equal(true);
      expect(task.args.img.mime).to.equal('image/png');
      w.send({ type: 'result', task_id: task.task_id, result: { out: { mime: 'image/png', name: 'o.png', data: Buffer.from('out') } } });
      const { body } = await call;
      expect(body.result.out).to.deep.equal({ mime: 'image/png', name: 'o.png', data: Buffer.from('out').toString('base64') });
    });

    it("serves an ended task's media again from the task store (the ended-task cache keeps no media), over REST and to a late subscriber", async () => {
      const w = await fakeWorker(hub, me('media_again'));
      const c = await fakeClient(hub);
      c.send({ type: 'add_task', service_id: w.welcome.service_id, args: [1] });
      const acc = await c.nextOf('accepted');
      const task = await w.nextOf('task');
      const bytes = Buffer.alloc(300_000);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
      w.send({ type: 'result', task_id: task.task_id, result: { out: { mime: 'application/octet-stream', data: bytes } } });
      expect((await c.nextOf('result')).result.out.data.equals(bytes)).to.equal(true);
      // at once (the row may still wait in the store's buffer), then once written
      for (let i = 0; i < 2; i++) {
        const view = await http(hub, 'GET', `/tasks/${acc.task_id}`);
        expect(view.body.status).to.equal('succeeded');
        expect(Buffer.from(view.body.result.out.data, 'base64').equals(bytes)).to.equal(true);
        const late = await fakeClient(hub);
        late.send({ type: 'subscribe', task_id: acc.task_id });
        const again = await late.nextOf('result');
        expect(again.attachments).to.equal(1);
        expect(again.result.out.data.equals(bytes)).to.equal(true);
        await late.close();
        await sleep(300);
      }
      await c.close();
      await w.close();
    });

    it('answers 202 at once with ?wait=false', async () => {
      const w = await fakeWorker(hub, me('add_nowait'));
      const { status, body } = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] });
      expect(status).to.equal(202);
      expect(body.status).to.equal('queued');
      expect(body.task_id).to.be.a('string');
      const task = await w.nextOf('task');
      expect(task.task_id).to.equal(body.task_id);
    });

    it('answers 400 invalid_args with every problem', async () => {
      const w = await fakeWorker(
        hub,
        me('add_invalid', [
          { argument_name: 'angle', type: 'int' },
          { argument_name: 'name', type: 'str' },
        ]),
      );
      const { status, body } = await http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: ['abc'] });
      expect(status).to.equal(400);
      expect(body.error.code).to.equal('invalid_args');
      const names = body.error.details.map((d: { argument_name: string }) => d.argument_name);
      expect(names).to.include.members(['angle', 'name']);
    });

    const malformed: Array<[string, unknown]> = [
      ['broken JSON', '{"service_id": 1,'],
      ['an array body', '[1,2]'],
      ['args as a string', { service_id: 1, args: 'x' }],
      ['args missing', { service_id: 1 }],
      ['service_id a string', { service_id: '1', args: [] }],
      ['service_id negative', { service_id: -1, args: [] }],
      ['timeout_ms zero', { service_id: 1, args: [], timeout_ms: 0 }],
      ['timeout_ms a float', { service_id: 1, args: [], timeout_ms: 1.5 }],
    ];
    for (const [name, body] of malformed) {
      it(`answers 400 bad_request for ${name}`, async () => {
        const r = await http(hub, 'POST', '/add_task', body);
        expect(r.status).to.equal(400);
        expect(r.body.error.code).to.equal('bad_request');
      });
    }

    it('answers 400 bad_request for a timeout over HUB_MAX_TASK_TIMEOUT_MS', async () => {
      const w = await fakeWorker(hub, me('add_maxt'));
      const r = await http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [1], timeout_ms: 3_600_001 });
      expect(r.status).to.equal(400);
      expect(r.body.error.code).to.equal('bad_request');
    });

    it('answers 404 service_not_found for an unknown service', async () => {
      const r = await http(hub, 'POST', '/add_task', { service_id: 4242, args: [] });
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal('service_not_found');
    });

    it('answers 502 task_failed with the worker error', async () => {
      const w = await fakeWorker(hub, me('add_fail'));
      const call = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [1] });
      const task = await w.nextOf('task');
      w.send({ type: 'failed', task_id: task.task_id, error: { code: 'too_dark', message: 'the picture is too dark' } });
      const r = await call;
      expect(r.status).to.equal(502);
      expect(r.body.error).to.include({ code: 'task_failed', task_id: task.task_id });
      expect(r.body.error.worker_error).to.deep.equal({ code: 'too_dark', message: 'the picture is too dark' });
    });

    it('answers 504 timeout past the run deadline and sends cancel to the worker', async () => {
      const w = await fakeWorker(hub, me('add_timeout'));
      const call = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [1], timeout_ms: 150 });
      const task = await w.nextOf('task');
      const cancel = await w.nextOf('cancel', task.task_id);
      expect(cancel.reason).to.equal('timeout');
      const r = await call;
      expect(r.status).to.equal(504);
      expect(r.body.error).to.include({ code: 'timeout', task_id: task.task_id });
    });

    it('answers 503 no_worker past the queue timeout', async () => {
      const w = await fakeWorker(hub, me('add_noworker'));
      await w.close();
      await workerGone(hub, w.welcome.service_id);
      const r = await http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [1], queue_timeout_ms: 100 });
      expect(r.status).to.equal(503);
      expect(r.body.error.code).to.equal('no_worker');
    });

    it('answers 409 canceled when the task is canceled while the call waits', async () => {
      const w = await fakeWorker(hub, me('add_cancel'));
      const call = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [1] });
      const task = await w.nextOf('task');
      const del = await http(hub, 'DELETE', `/tasks/${task.task_id}`);
      expect(del.status).to.equal(200);
      expect(del.body.status).to.equal('canceled');
      const r = await call;
      expect(r.status).to.equal(409);
      expect(r.body.error.code).to.equal('canceled');
      expect((await w.nextOf('cancel', task.task_id)).reason).to.equal('client');
    });
  });

  describe('queue limits', () => {
    it('answers 503 queue_full past HUB_QUEUE_LIMIT', async () => {
      await hub.close();
      hub = await startHub({ db: await dbUrl(), queueLimit: 1 });
      const w = await fakeWorker(hub, me('ql_svc'));
      const a = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] }); // runs
      const b = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [2] }); // queued
      const c = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [3] });
      expect([a.status, b.status]).to.deep.equal([202, 202]);
      expect(c.status).to.equal(503);
      expect(c.body.error.code).to.equal('queue_full');
    });
  });

  describe('GET and DELETE /tasks/:id', () => {
    it('shows a task queued, running, then ended', async () => {
      const w = await fakeWorker(hub, me('view_svc'));
      const { body } = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] });
      const task = await w.nextOf('task');
      const view = async () => (await http(hub, 'GET', `/tasks/${body.task_id}`)).body;
      w.send({ type: 'progress', task_id: task.task_id, progress: 0.5, message: 'half' });
      let v = await eventually(view, (x) => x.progress === 0.5, 'the progress');
      expect(v).to.include({ task_id: body.task_id, status: 'running', progress: 0.5, message: 'half', finished_at: null });
      expect(v.started_at).to.match(/^\d{4}-\d\d-\d\dT/);
      w.send({ type: 'result', task_id: task.task_id, result: 'done' });
      // The end shows once it is committed (HUB_COMMIT=stored).
      v = await eventually(view, (x) => x.status !== 'running', 'the end');
      expect(v).to.include({ status: 'succeeded', result: 'done' });
      expect(v.finished_at).to.be.a('string');
    });

    it('answers 404 task_not_found for an unknown id', async () => {
      for (const id of ['nope', 'x'.repeat(300)]) {
        const r = await http(hub, 'GET', `/tasks/${id}`);
        expect(r.status).to.equal(404);
        expect(r.body.error.code).to.equal('task_not_found');
        const d = await http(hub, 'DELETE', `/tasks/${id}`);
        expect(d.status).to.equal(404);
        expect(d.body.error.code).to.equal('task_not_found');
      }
    });

    it('cancels a queued task and answers 409 already_finished after', async () => {
      const w = await fakeWorker(hub, me('del_svc'));
      await w.close();
      await workerGone(hub, w.welcome.service_id);
      const { body } = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] });
      const d = await http(hub, 'DELETE', `/tasks/${body.task_id}`);
      expect(d.status).to.equal(200);
      expect(d.body.status).to.equal('canceled');
      const again = await http(hub, 'DELETE', `/tasks/${body.task_id}`);
      expect(again.status).to.equal(409);
      expect(again.body.error).to.include({ code: 'already_finished', task_id: body.task_id });
    });
  });

  describe('route schemas', () => {
    it('refuse bad input with the contract body and a message naming the problem', async () => {
      const w = await fakeWorker(hub, me('schema_msgs'));
      const wait = await http(hub, 'POST', '/add_task?wait=maybe', { service_id: w.welcome.service_id, args: [1] });
      expect(wait).to.deep.equal({ status: 400, body: { error: { code: 'bad_request', message: 'wait must be true, false, 1 or 0' } } });
      const id = await http(hub, 'GET', '/service_info/abc');
      expect(id).to.deep.equal({ status: 400, body: { error: { code: 'bad_request', message: 'id must be a non-negative integer, got "abc"' } } });
      const big = await http(hub, 'GET', '/service_info/9007199254740993');
      expect(big.body.error).to.deep.equal({ code: 'bad_request', message: 'id must be a non-negative integer, got "9007199254740993"' });
      const body = await http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id });
      expect(body).to.deep.equal({ status: 400, body: { error: { code: 'bad_request', message: 'body needs "args"' } } });
      const none = await http(hub, 'POST', '/add_task');
      expect(none.status).to.equal(400);
      expect(none.body.error.code).to.equal('bad_request');
    });

    it('keep unknown fields of a body, and write what the hub holds, every field of it', async () => {
      const w = await fakeWorker(hub, me('schema_out'));
      const queued = await http(hub, 'POST', '/add_task?wait=0', { service_id: w.welcome.service_id, args: [3], trace: { id: 'x' } });
      expect(queued.status).to.equal(202);
      const task = await w.nextOf('task');
      w.send({ type: 'progress', task_id: task.task_id, progress: 0.5, message: 'half' });
      const running = await http(hub, 'GET', `/tasks/${queued.body.task_id}`);
      expect(running.body).to.deep.equal(JSON.parse(JSON.stringify(await hub.app.hub.view(queued.body.task_id))));
      expect(running.body).to.include({ status: 'running', progress: 0.5, message: 'half' });
      w.send({ type: 'result', task_id: task.task_id, result: { n: 6, nested: [null, true, 'x'], extra: { deep: 1 } } });
      const info = await http(hub, 'GET', `/service_info/${w.welcome.service_id}`);
      expect(info.body).to.deep.equal(JSON.parse(JSON.stringify(await hub.app.hub.serviceInfo(w.welcome.service_id))));
      let ended: { status: number; body: any } = running;
      await until(async () => (ended = await http(hub, 'GET', `/tasks/${queued.body.task_id}`)).body.status === 'succeeded', 'the task to succeed');
      expect(ended.body.result).to.deep.equal({ n: 6, nested: [null, true, 'x'], extra: { deep: 1 } });
      expect(ended.body).to.deep.equal(JSON.parse(JSON.stringify(await hub.app.hub.view(queued.body.task_id))));
    });
  });

  describe('other routes', () => {
    it('answers 404 not_found for an unknown route', async () => {
      const r = await http(hub, 'GET', '/nope');
      expect(r.status).to.equal(404);
      expect(r.body.error.code).to.equal('not_found');
    });

    it('answers 400 bad_request to a plain GET of a WebSocket route', async () => {
      for (const path of ['/worker', '/client']) {
        const r = await http(hub, 'GET', path);
        expect(r.status).to.equal(400);
        expect(r.body.error.code).to.equal('bad_request');
      }
    });

    it('answers 415 unsupported_media_type to a body that is not sent as JSON, saying what to send', async () => {
      for (const headers of [{ 'content-type': 'text/plain' }, {} as Record<string, string>, { 'content-type': 'application/x-www-form-urlencoded' }]) {
        const r = await fetch(`${hub.url}/add_task`, { method: 'POST', headers, body: '{"service_id": 1, "args": {}}' });
        const body = (await r.json()) as { error: { code: string; message: string } };
        expect(r.status, JSON.stringify(headers)).to.equal(415);
        expect(body.error.code).to.equal('unsupported_media_type');
        expect(body.error.message).to.include('Content-Type: application/json');
      }
    });

    it('answers 405 method_not_allowed with the Allow header to a known path with another method', async () => {
      const r = await fetch(`${hub.url}/add_task`);
      const body = (await r.json()) as { error: { code: string; message: string } };
      expect(r.status).to.equal(405);
      expect(r.headers.get('allow')).to.equal('POST');
      expect(body.error.code).to.equal('method_not_allowed');
      const d = await fetch(`${hub.url}/services_list`, { method: 'DELETE' });
      expect(d.status).to.equal(405);
      expect(d.headers.get('allow')).to.equal('GET');
      const t = await fetch(`${hub.url}/tasks/abc`, { method: 'POST' });
      expect(t.status).to.equal(405);
      expect(t.headers.get('allow')!.split(', ').sort()).to.deep.equal(['DELETE', 'GET']);
    });

    it('names every accepted value of wait when it refuses one', async () => {
      const r = await http(hub, 'POST', '/add_task?wait=yes', { service_id: 1, args: {} });
      expect(r.status).to.equal(400);
      expect(r.body.error.message).to.include('true').and.to.include('false').and.to.include('1').and.to.include('0');
    });

    it('answers 413 payload_too_large past HUB_MAX_MESSAGE_BYTES', async () => {
      await hub.close();
      hub = await startHub({ db: await dbUrl(), maxMessageBytes: 2048 });
      const r = await http(hub, 'POST', '/add_task', { service_id: 1, args: ['x'.repeat(5000)] });
      expect(r.status).to.equal(413);
      expect(r.body.error.code).to.equal('payload_too_large');
    });
  });
});
