import { expect } from 'chai';
import { WsPeer } from '../helpers/ws-peer.js';
import { eventually, startHub, fakeWorker, fakeClient, http, me, sleep, type TestHub } from '../helpers/hub.js';
import { forEachDatabase } from '../helpers/backends.js';

forEachDatabase('Client endpoint /client', (dbUrl) => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startHub({ db: await dbUrl() });
  });
  afterEach(() => hub.close());

  it('pushes services first and whenever the live list changes', async () => {
    const c = await WsPeer.open(`${hub.wsUrl}/client`);
    expect((await c.nextOf('services')).services).to.deep.equal([]);
    const w = await fakeWorker(hub, me('push_svc'));
    expect((await c.nextOf('services')).services).to.deep.equal([{ service_id: w.welcome.service_id, service_name: 'push_svc' }]);
    await w.close();
    expect((await c.nextOf('services')).services).to.deep.equal([]);
  });

  it('runs a task: accepted, started, progress, result with attachments and seq from 1', async () => {
    const w = await fakeWorker(hub, me('run_svc', [{ argument_name: 'img', type: 'image' }]));
    const c = await fakeClient(hub);
    const pic = Buffer.from('picture-bytes');
    c.send({ type: 'add_task', ref: 'c-1', service_id: w.welcome.service_id, args: [{ mime: 'image/png', name: 'p.png', data: pic }] });
    const acc = await c.nextOf('accepted');
    expect(acc).to.include({ ref: 'c-1', position: 0 });
    expect(acc).to.not.have.property('seq');
    const task = await w.nextOf('task');
    expect(task.args.img.data.equals(pic)).to.equal(true);
    expect(task.args.img).to.include({ mime: 'image/png', name: 'p.png' });
    w.send({ type: 'progress', task_id: task.task_id, progress: 0.5, message: 'half', data: { preview: { mime: 'image/png', data: Buffer.from('pv') } } });
    w.send({ type: 'result', task_id: task.task_id, result: { image: { mime: 'image/png', data: Buffer.from('result') } } });
    const started = await c.nextOf('started', acc.task_id);
    const progress = await c.nextOf('progress', acc.task_id);
    const result = await c.nextOf('result', acc.task_id);
    expect([started.seq, progress.seq, result.seq]).to.deep.equal([1, 2, 3]);
    expect(progress).to.include({ progress: 0.5, message: 'half' });
    expect(progress.data.preview.data.toString()).to.equal('pv');
    expect(result.result.image.data.toString()).to.equal('result');
  });

  it('rejects a task for an unknown service or bad args, with the ref', async () => {
    const w = await fakeWorker(hub, me('rej_svc'));
    const c = await fakeClient(hub);
    c.send({ type: 'add_task', ref: 'a', service_id: 9999, args: [] });
    expect((await c.nextOf('rejected')).error.code).to.equal('service_not_found');
    c.send({ type: 'add_task', ref: 'b', service_id: w.welcome.service_id, args: ['x'] });
    const r = await c.nextOf('rejected');
    expect(r.ref).to.equal('b');
    expect(r.error.code).to.equal('invalid_args');
    expect(r.error.details[0].argument_name).to.equal('x');
  });

  it('cancels a running task, then answers already_finished, and task_not_found for unknown ids', async () => {
    const w = await fakeWorker(hub, me('cancel_svc'));
    const c = await fakeClient(hub);
    c.send({ type: 'add_task', ref: 'a', service_id: w.welcome.service_id, args: [1] });
    const acc = await c.nextOf('accepted');
    await w.nextOf('task');
    c.send({ type: 'cancel', task_id: acc.task_id });
    expect((await c.nextOf('canceled', acc.task_id)).seq).to.equal(2);
    expect((await w.nextOf('cancel', acc.task_id)).reason).to.equal('client');
    c.send({ type: 'cancel', task_id: acc.task_id });
    expect(await c.nextOf('error')).to.include({ code: 'already_finished', task_id: acc.task_id });
    c.send({ type: 'cancel', task_id: 'unknown' });
    expect(await c.nextOf('error')).to.include({ code: 'task_not_found', task_id: 'unknown' });
    // the worker's late answer is dropped
    w.send({ type: 'result', task_id: acc.task_id, result: 'late' });
    await sleep(100);
    expect(c.received.filter((m) => m.type === 'result')).to.have.length(0);
  });

  it('lets another connection subscribe: a snapshot, later events, then the end again with its seq', async () => {
    const w = await fakeWorker(hub, me('sub_svc'));
    const c1 = await fakeClient(hub);
    c1.send({ type: 'add_task', service_id: w.welcome.service_id, args: [1] });
    const acc = await c1.nextOf('accepted');
    const task = await w.nextOf('task');
    w.send({ type: 'progress', task_id: task.task_id, progress: 0.25, message: 'quarter' });
    await c1.nextOf('progress');
    await c1.close();
    const c2 = await fakeClient(hub);
    c2.send({ type: 'subscribe', task_id: acc.task_id });
    const snap = await c2.nextOf('snapshot', acc.task_id);
    expect(snap).to.include({ status: 'running', seq: 2, progress: 0.25, message: 'quarter' });
    w.send({ type: 'result', task_id: task.task_id, result: 7 });
    const res = await c2.nextOf('result', acc.task_id);
    expect(res.seq).to.equal(3);
    const c3 = await fakeClient(hub);
    c3.send({ type: 'subscribe', task_id: acc.task_id });
    const again = await c3.nextOf('result', acc.task_id);
    expect(again).to.include({ seq: 3, result: 7 });
    c3.send({ type: 'subscribe', task_id: 'nope' });
    expect((await c3.nextOf('error')).code).to.equal('task_not_found');
  });

  it('answers service_info, or rejected for an unknown id', async () => {
    const w = await fakeWorker(hub, me('si_svc'));
    const c = await fakeClient(hub);
    c.send({ type: 'service_info', ref: 'q', service_id: w.welcome.service_id });
    const si = await c.nextOf('service_info');
    expect(si.ref).to.equal('q');
    expect(si.service.service_name).to.equal('si_svc');
    c.send({ type: 'service_info', ref: 'z', service_id: 777 });
    const rej = await c.nextOf('rejected');
    expect(rej).to.include({ ref: 'z' });
    expect(rej.error.code).to.equal('service_not_found');
  });

  it('answers garbage with bad_message and keeps the connection', async () => {
    const c = await fakeClient(hub);
    c.sendRaw(Buffer.from('stray'), true);
    expect((await c.nextOf('error')).code).to.equal('bad_message');
    const garbage = [
      '{',
      '"str"',
      'null',
      '{"type":"add_task"}',
      '{"type":"subscribe","task_id":5}',
      '{"type":"launch"}',
      '{"type":"add_task","service_id":1,"args":[],"attachments":17}',
    ];
    for (const raw of garbage) {
      c.sendRaw(raw);
      expect((await c.nextOf('error')).code, raw).to.equal('bad_message');
    }
    // announced frames that never come: the next text frame drops the owed message with an error
    c.sendRaw('{"type":"add_task","ref":"owed","service_id":1,"args":[],"attachments":2}');
    const w = await fakeWorker(hub, me('after_garbage'));
    c.send({ type: 'service_info', service_id: w.welcome.service_id });
    expect(await c.nextOf('error')).to.include({ code: 'bad_message', ref: 'owed' });
    expect((await c.nextOf('service_info')).service.service_name).to.equal('after_garbage');
  });

  it('says why a task waits again: queued carries worker_lost with how the connection closed', async () => {
    const w = await fakeWorker(hub, me('requeue_why'));
    const c = await fakeClient(hub);
    c.send({ type: 'add_task', service_id: w.welcome.service_id, args: [1] });
    await c.nextOf('accepted');
    await w.nextOf('task');
    w.terminate();
    const queued = await c.nextOf('queued');
    expect(queued.reason.code).to.equal('worker_lost');
    expect(queued.reason.message).to.match(/attempt 1 was lost \(close 1006/);
  });

  it('keeps a task going when its client disconnects; its end stays readable', async () => {
    const w = await fakeWorker(hub, me('outlive'));
    const c = await fakeClient(hub);
    c.send({ type: 'add_task', service_id: w.welcome.service_id, args: [1] });
    const acc = await c.nextOf('accepted');
    c.terminate();
    const task = await w.nextOf('task');
    await sleep(50);
    w.send({ type: 'result', task_id: task.task_id, result: 'kept' });
    // The end shows once it is committed (HUB_COMMIT=stored).
    const v = await eventually(
      () => http(hub, 'GET', `/tasks/${acc.task_id}`),
      (r) => r.body.status !== 'running',
      'the end',
    );
    expect(v.body).to.include({ status: 'succeeded', result: 'kept' });
  });

  it('refuses a browser from a foreign origin with 403 and admits HUB_ALLOWED_ORIGINS', async () => {
    await hub.close();
    hub = await startHub({ db: await dbUrl(), allowedOrigins: ['https://bot.example.org'] });
    const err = await WsPeer.open(`${hub.wsUrl}/client`, { origin: 'https://evil.example' }).catch((e) => e);
    expect(err.status).to.equal(403);
    expect(JSON.parse(err.body).error.code).to.equal('forbidden');
    const ok = await WsPeer.open(`${hub.wsUrl}/client`, { origin: 'https://bot.example.org' });
    await ok.close();
  });
});
