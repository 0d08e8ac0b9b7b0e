import { expect } from 'chai';
import { WsPeer } from '../helpers/ws-peer.js';
import { startHub, fakeWorker, fakeClient, http, me, sleep, until, workerGone, type TestHub } from '../helpers/hub.js';
import { forEachDatabase } from '../helpers/backends.js';

async function hello(hub: TestHub, message: object, headers: Record<string, string> = {}) {
  const peer = await WsPeer.open(`${hub.wsUrl}/worker`, headers);
  peer.send(message);
  const answer = await peer.next((m) => m.type === 'welcome' || m.type === 'error');
  return { peer, answer };
}

forEachDatabase('Worker endpoint /worker', (dbUrl) => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startHub({ db: await dbUrl() });
  });
  afterEach(() => hub.close());

  describe('handshake', () => {
    it('welcomes a good hello with service id, connection id and heartbeat', async () => {
      const w = await fakeWorker(hub, me('hs_ok'));
      expect(w.welcome).to.include({ type: 'welcome', heartbeat_ms: 15000 });
      expect(w.welcome.service_id).to.be.a('number');
      expect(w.welcome.connection_id).to.be.a('string');
    });

    it('keeps the service id of a name across connections and descriptions', async () => {
      const a = await fakeWorker(hub, me('hs_stable'));
      await a.close();
      await workerGone(hub, a.welcome.service_id);
      const b = await fakeWorker(hub, { ...me('hs_stable'), description: 'changed' });
      expect(b.welcome.service_id).to.equal(a.welcome.service_id);
      const info = await http(hub, 'GET', `/service_info/${b.welcome.service_id}`);
      expect(info.body.service_description).to.equal('changed');
    });

    const refusals: Array<[string, object, string]> = [
      ['a concurrency of 0', { type: 'hello', protocol: 1, me: me('r1'), concurrency: 0 }, 'bad_message'],
      ['a concurrency of 1025', { type: 'hello', protocol: 1, me: me('r2'), concurrency: 1025 }, 'bad_message'],
      ['another protocol', { type: 'hello', protocol: 2, me: me('r3') }, 'unsupported_protocol'],
      ['a bad name', { type: 'hello', protocol: 1, me: me('bad name!') }, 'bad_service_description'],
      [
        'duplicate arguments',
        {
          type: 'hello',
          protocol: 1,
          me: me('r5', [
            { argument_name: 'a', type: 'int' },
            { argument_name: 'a', type: 'str' },
          ]),
        },
        'bad_service_description',
      ],
      ['an unknown type', { type: 'hello', protocol: 1, me: me('r6', [{ argument_name: 'a', type: 'complex' }]) }, 'bad_service_description'],
      ['a first message that is not hello', { type: 'drain' }, 'bad_message'],
      ['a hello without me', { type: 'hello', protocol: 1 }, 'bad_message'],
      ['a hello whose me is not an object', { type: 'hello', protocol: 1, me: 'svc' }, 'bad_service_description'],
    ];
    for (const [name, msg, code] of refusals) {
      it(`refuses ${name} with ${code} and closes with 1008`, async () => {
        const { peer, answer } = await hello(hub, msg);
        expect(answer).to.include({ type: 'error', code });
        expect(await peer.closed).to.equal(1008);
      });
    }

    it('refuses a second description of a live service with service_conflict', async () => {
      await fakeWorker(hub, me('hs_conflict'));
      const { peer, answer } = await hello(hub, { type: 'hello', protocol: 1, me: { ...me('hs_conflict'), description: 'other' } });
      expect(answer.code).to.equal('service_conflict');
      expect(await peer.closed).to.equal(1008);
    });

    it('keeps a service live until its last connection closes, then takes another description', async () => {
      const a = await fakeWorker(hub, me('hs_last'));
      const b = await fakeWorker(hub, me('hs_last'));
      const live = async () => ((await http(hub, 'GET', '/services_list')).body as { service_name: string }[]).some((s) => s.service_name === 'hs_last');
      await a.close();
      await until(async () => (await http(hub, 'GET', `/service_info/${b.welcome.service_id}`)).body.connections === 1, 'one connection left');
      expect(await live()).to.equal(true);
      const refused = await hello(hub, { type: 'hello', protocol: 1, me: { ...me('hs_last'), description: 'other' } });
      expect(refused.answer.code).to.equal('service_conflict');
      await b.close();
      await until(async () => !(await live()), 'the service to be gone from /services_list');
      const c = await fakeWorker(hub, { ...me('hs_last'), description: 'other' });
      expect(c.welcome.service_id).to.equal(a.welcome.service_id);
      expect(await live()).to.equal(true);
    });

    it('accepts a second connection with the same description', async () => {
      const a = await fakeWorker(hub, me('hs_same'));
      const b = await fakeWorker(hub, me('hs_same'));
      expect(b.welcome.service_id).to.equal(a.welcome.service_id);
      expect((await http(hub, 'GET', `/service_info/${a.welcome.service_id}`)).body.connections).to.equal(2);
    });

    it('closes a connection that sends no hello in time', async () => {
      await hub.close();
      hub = await startHub({ db: await dbUrl(), helloTimeoutMs: 100 });
      const peer = await WsPeer.open(`${hub.wsUrl}/worker`);
      expect(await peer.closed).to.equal(1008);
    });

    it('refuses a worker without a token when tokens exist (401 unauthorized at the upgrade)', async () => {
      await hub.close();
      hub = await startHub({ db: await dbUrl(), workerTokens: ['s3cret-token'] });
      for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong' }]) {
        const refused = await WsPeer.open(`${hub.wsUrl}/worker`, headers).catch((err: { status?: number; body?: string }) => err);
        expect((refused as { status?: number }).status).to.equal(401);
        const body = (refused as { body: string }).body;
        expect(JSON.parse(body).error.code).to.equal('unauthorized');
        expect(body).to.not.include('s3cret');
      }
      const ok = await hello(hub, { type: 'hello', protocol: 1, me: me('hs_tok') }, { authorization: 'Bearer s3cret-token' });
      expect(ok.answer.type).to.equal('welcome');
      const q = await WsPeer.open(`${hub.wsUrl}/worker?token=s3cret-token`);
      q.send({ type: 'hello', protocol: 1, me: me('hs_tok') });
      expect((await q.next((m) => m.type === 'welcome' || m.type === 'error')).type).to.equal('welcome');
    });

    it('refuses a browser upgrade from a foreign origin with 403', async () => {
      const err = await WsPeer.open(`${hub.wsUrl}/worker`, { origin: 'http://evil.example' }).catch((e) => e);
      expect(err.status).to.equal(403);
      const own = await WsPeer.open(`${hub.wsUrl}/worker`, { origin: hub.url });
      await own.close();
    });
  });

  describe('messages after welcome', () => {
    it('answers garbage with bad_message and keeps the connection', async () => {
      const w = await fakeWorker(hub, me('garbage'));
      for (const raw of ['not json', '[]', '{"type": 5}', '{"type":"nope"}', '{"type":"result"}', '{"type":"progress","task_id":"x","progress":2}']) {
        w.sendRaw(raw);
        const e = await w.nextOf('error');
        expect(e.code).to.equal('bad_message');
      }
      w.sendRaw(Buffer.from([1, 2, 3]), true);
      expect((await w.nextOf('error')).code).to.equal('bad_message');
      w.send({ type: 'hello', protocol: 1, me: me('garbage') });
      expect((await w.nextOf('error')).code).to.equal('bad_message');
      // still serving tasks
      const call = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [1] });
      const task = await w.nextOf('task');
      w.send({ type: 'result', task_id: task.task_id, result: 1 });
      expect((await call).status).to.equal(200);
    });

    it('drops answers about tasks not in flight on that connection', async () => {
      const a = await fakeWorker(hub, me('foreign'));
      const b = await fakeWorker(hub, me('foreign'));
      const c = await fakeClient(hub);
      c.send({ type: 'add_task', ref: 'r', service_id: a.welcome.service_id, args: [1] });
      const acc = await c.nextOf('accepted');
      const holder = await Promise.race([a.nextOf('task').then(() => a), b.nextOf('task').then(() => b)]);
      const other = holder === a ? b : a;
      other.send({ type: 'result', task_id: acc.task_id, result: 'forged' });
      other.send({ type: 'progress', task_id: acc.task_id, progress: 0.1 });
      await sleep(100);
      expect(c.received.filter((m) => m.task_id === acc.task_id && (m.type === 'result' || m.type === 'progress'))).to.have.length(0);
      holder.send({ type: 'result', task_id: acc.task_id, result: 'real' });
      expect((await c.nextOf('result', acc.task_id)).result).to.equal('real');
      holder.send({ type: 'result', task_id: acc.task_id, result: 'twice' });
      await sleep(100);
      expect(c.received.filter((m) => m.type === 'result')).to.have.length(0);
    });

    it('sends no task to a draining connection', async () => {
      const a = await fakeWorker(hub, me('drainer'));
      a.send({ type: 'drain' });
      await until(() => hub.app.hub.workerConnections(a.welcome.service_id).every((x) => x.draining), 'the connection to drain');
      const r = await http(hub, 'POST', '/add_task', { service_id: a.welcome.service_id, args: [1], queue_timeout_ms: 150 });
      expect(r.body.error.code).to.equal('no_worker');
      expect(a.received.filter((m) => m.type === 'task')).to.have.length(0);
    });
  });

  describe('lost connections', () => {
    it('re-dispatches a task of a closed connection to another one', async () => {
      const a = await fakeWorker(hub, me('redispatch'));
      const c = await fakeClient(hub);
      c.send({ type: 'add_task', ref: 'r', service_id: a.welcome.service_id, args: [1] });
      const acc = await c.nextOf('accepted');
      await a.nextOf('task');
      a.terminate();
      const queued = await c.nextOf('queued', acc.task_id);
      expect(queued.position).to.equal(0);
      const b = await fakeWorker(hub, me('redispatch'));
      const task = await b.nextOf('task');
      expect(task.attempt).to.equal(2);
      expect((await c.nextOf('started', acc.task_id)).attempt).to.equal(1);
      expect((await c.nextOf('started', acc.task_id)).attempt).to.equal(2);
      b.send({ type: 'result', task_id: task.task_id, result: 'second' });
      expect((await c.nextOf('result', acc.task_id)).result).to.equal('second');
    });

    it('fails worker_lost when no attempt is left', async () => {
      await hub.close();
      hub = await startHub({ db: await dbUrl(), maxAttempts: 1 });
      const a = await fakeWorker(hub, me('lost'));
      const call = http(hub, 'POST', '/add_task', { service_id: a.welcome.service_id, args: [1] });
      await a.nextOf('task');
      a.terminate();
      const r = await call;
      expect(r.status).to.equal(502);
      expect(r.body.error.code).to.equal('worker_lost');
    });

    it('terminates a worker that stops answering pings and re-dispatches its task', async () => {
      await hub.close();
      hub = await startHub({ db: await dbUrl(), heartbeatMs: 100 });
      const { WebSocket } = await import('ws');
      const ws = new WebSocket(`${hub.wsUrl}/worker`, { autoPong: false } as never);
      await new Promise((r) => ws.once('open', r));
      ws.send(JSON.stringify({ type: 'hello', protocol: 1, me: me('halfopen') }));
      const welcome = JSON.parse(String(await new Promise((r) => ws.once('message', r))));
      const good = await fakeWorker(hub, me('halfopen'));
      const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
      // the next task goes to the silent one (least recently assigned) or the good one; either way it ends on the good one
      const call = http(hub, 'POST', '/add_task', { service_id: welcome.service_id, args: [1] });
      const t0 = Date.now();
      await closed;
      expect(Date.now() - t0).to.be.below(1000);
      const task = await good.nextOf('task');
      good.send({ type: 'result', task_id: task.task_id, result: 'ok' });
      expect((await call).status).to.equal(200);
    });
  });
});
