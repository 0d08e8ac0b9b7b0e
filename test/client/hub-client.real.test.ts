/**
 * HubClient against the real hub (in process, on port 0), with raw fake workers over real
 * sockets: what a bot sees of progress, cancel, a dropped connection, media, errors, the service
 * list and client keys.
 */
import { expect } from 'chai';
import { WebSocket } from 'ws';
import { HubClient, HubError, media, type HubClientOptions, type Media, type TaskProgress } from '@utils-hub/client';
import { fakeWorker, me, sleep, startHub, until, type TestHub } from '../helpers/hub.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { checkFrame } from '../helpers/contract.js';
import type { Msg } from '../helpers/ws-peer.js';

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4]);

let names = 0;
/** A service name unique in this run. */
const unique = (what: string) => `${what}_${process.pid}_${++names}`;

/** The rejection of `p`, which must reject with a HubError. */
async function rejection(p: Promise<unknown>): Promise<HubError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(HubError);
    return err as HubError;
  }
  throw new Error('expected a rejection');
}

/**
 * A `ws` WebSocket class that keeps every socket it made and every task event those sockets
 * received, so that a test can cut the client's socket and count what reached it.
 */
function trackedWebSocket() {
  const sockets: WebSocket[] = [];
  const events: Msg[] = [];
  class Tracked extends WebSocket {
    constructor(url: string) {
      super(url);
      sockets.push(this);
      this.on('message', (data, isBinary) => {
        if (isBinary) return;
        const msg = JSON.parse(String(data)) as Msg;
        checkFrame('hubToClient', msg, 'a client socket');
        events.push(msg);
      });
    }
  }
  return { WebSocket: Tracked as unknown as NonNullable<HubClientOptions['WebSocket']>, sockets, events };
}

describe('HubClient against the real hub', () => {
  let hub: TestHub;
  const clients: HubClient[] = [];
  /** A client of this test's hub, closed after it. */
  const client = (options: HubClientOptions = {}, url = hub.url) => {
    const c = new HubClient(url, { minDelayMs: 20, maxDelayMs: 200, ...options });
    c.on('error', () => {}); // dial failures during a cut are expected here
    clients.push(c);
    return c;
  };

  beforeEach(async () => {
    hub = await startHub();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await hub.close();
  });

  describe('#run', () => {
    it('resolves with the result and calls onProgress for each progress, in order', async () => {
      const worker = await fakeWorker(hub, me(unique('progress')));
      const serviceId = worker.welcome.service_id as number;
      const seen: TaskProgress[] = [];
      const c = client();
      const done = c.run<{ y: number }>(serviceId, { x: 20 }, { onProgress: (p) => seen.push(p) });
      const task = await worker.nextOf('task');
      expect(task.args).to.deep.equal({ x: 20 });
      for (const [progress, message] of [
        [0.25, 'one'],
        [0.5, 'two'],
        [0.75, 'three'],
      ] as const) {
        worker.send({ type: 'progress', task_id: task.task_id, progress, message });
      }
      worker.send({ type: 'result', task_id: task.task_id, result: { y: 21 } });
      expect(await done).to.deep.equal({ y: 21 });
      expect(seen.map((p) => [p.progress, p.message])).to.deep.equal([
        [0.25, 'one'],
        [0.5, 'two'],
        [0.75, 'three'],
      ]);
      const seqs = seen.map((p) => p.seq);
      expect(seqs).to.deep.equal([...seqs].sort((a, b) => a - b));
      await worker.close();
    });

    it('takes positional args as well as named ones', async () => {
      const worker = await fakeWorker(hub, me(unique('positional')));
      const c = client();
      const done = c.run(worker.welcome.service_id as number, [7]);
      const task = await worker.nextOf('task');
      expect(task.args).to.deep.equal({ x: 7 });
      worker.send({ type: 'result', task_id: task.task_id, result: 'ok' });
      expect(await done).to.equal('ok');
      await worker.close();
    });
  });

  describe('#submit', () => {
    it('gives a handle whose events follow the task: accepted, started, progress, result', async () => {
      const worker = await fakeWorker(hub, me(unique('events')));
      const c = client();
      const handle = c.submit(worker.welcome.service_id as number, { x: 1 });
      const order: string[] = [];
      for (const ev of ['accepted', 'queued', 'started', 'progress', 'result', 'failed', 'canceled'] as const) handle.on(ev, () => order.push(ev));
      const task = await worker.nextOf('task');
      expect((await handle.accepted()).taskId).to.equal(task.task_id);
      await until(() => handle.state === 'running', 'started');
      worker.send({ type: 'progress', task_id: task.task_id, progress: 0.5 });
      worker.send({ type: 'result', task_id: task.task_id, result: 2 });
      expect(await handle.result()).to.equal(2);
      expect(order).to.deep.equal(['accepted', 'started', 'progress', 'result']);
      expect(handle.state).to.equal('succeeded');
      expect(handle.progress).to.equal(0.5);
      await worker.close();
    });
  });

  describe('#cancel', () => {
    it('ends a running task canceled and sends cancel to its worker', async () => {
      const worker = await fakeWorker(hub, me(unique('cancel')));
      const c = client();
      const handle = c.submit(worker.welcome.service_id as number, { x: 1 });
      const task = await worker.nextOf('task');
      await until(() => handle.state === 'running', 'started');
      let canceledEvents = 0;
      handle.on('canceled', () => canceledEvents++);
      await handle.cancel();
      expect(handle.state).to.equal('canceled');
      expect((await rejection(handle.result())).code).to.equal('canceled');
      const cancel = await worker.nextOf('cancel', task.task_id);
      expect(cancel.reason).to.equal('client');
      // The worker's late answer is dropped by the hub: the task stays canceled.
      worker.send({ type: 'result', task_id: task.task_id, result: 1 });
      await sleep(100);
      expect(handle.state).to.equal('canceled');
      expect(canceledEvents).to.equal(1);
      await worker.close();
    });

    it('cancels a queued task through an AbortSignal, before any worker sees it', async () => {
      const worker = await fakeWorker(hub, me(unique('abort')), { concurrency: 1 });
      const serviceId = worker.welcome.service_id as number;
      const c = client();
      const first = c.submit(serviceId, { x: 1 });
      const busy = await worker.nextOf('task');
      const abort = new AbortController();
      const second = c.run(serviceId, { x: 2 }, { signal: abort.signal });
      await sleep(50);
      abort.abort();
      expect((await rejection(second)).code).to.equal('canceled');
      worker.send({ type: 'result', task_id: busy.task_id, result: 'first' });
      expect(await first.result()).to.equal('first');
      await sleep(50);
      expect(worker.received.filter((m) => m.type === 'task')).to.have.length(0);
      await worker.close();
    });
  });

  describe('a dropped connection', () => {
    it('delivers the result exactly once after the client socket is cut mid-task', async () => {
      const worker = await fakeWorker(hub, me(unique('cut')));
      const tracked = trackedWebSocket();
      const c = client({ WebSocket: tracked.WebSocket });
      let connects = 0;
      c.on('connected', () => connects++);
      const seen: TaskProgress[] = [];
      const results: unknown[] = [];
      const handle = c.submit(worker.welcome.service_id as number, { x: 5 });
      handle.on('progress', (p) => seen.push(p));
      handle.on('result', (r) => results.push(r));
      const task = await worker.nextOf('task');
      worker.send({ type: 'progress', task_id: task.task_id, progress: 0.3, message: 'before' });
      await until(() => seen.length === 1, 'the first progress');

      tracked.sockets.at(-1)!.terminate();
      await until(() => !c.connected, 'the drop');
      // While the client is away the task goes on and ends.
      worker.send({ type: 'result', task_id: task.task_id, result: 'after the cut' });

      expect(await handle.result()).to.equal('after the cut');
      expect(connects).to.equal(2);
      expect(tracked.sockets).to.have.length(2);
      await sleep(150);
      expect(results).to.deep.equal(['after the cut']);
      const ends = tracked.events.filter((m) => m.task_id === task.task_id && ['result', 'failed', 'canceled'].includes(m.type));
      expect(ends.map((m) => m.type)).to.deep.equal(['result']);
      expect(seen.map((p) => p.message)).to.deep.equal(['before']);
      await worker.close();
    });

    it('catches up on the progress missed while the link was down, then gets the result once', async () => {
      const worker = await fakeWorker(hub, me(unique('proxy')));
      const port = Number(new URL(hub.url).port);
      const proxy = await tcpProxy('127.0.0.1', port);
      try {
        const tracked = trackedWebSocket();
        const c = client({ WebSocket: tracked.WebSocket }, `http://127.0.0.1:${proxy.port}`);
        const seen: TaskProgress[] = [];
        const results: unknown[] = [];
        const done = c.run(worker.welcome.service_id as number, { x: 5 }, { onProgress: (p) => seen.push(p) });
        const task = await worker.nextOf('task');
        // Cut once the client knows its task: a cut before `accepted` makes the client send it again.
        await until(() => tracked.events.some((m) => m.type === 'started' && m.task_id === task.task_id), 'started');

        await proxy.cut();
        await until(() => !c.connected, 'the drop');
        worker.send({ type: 'progress', task_id: task.task_id, progress: 0.6, message: 'while away' });
        await sleep(300); // several redials fail meanwhile
        await proxy.restore();
        // The snapshot after the reconnect tells the progress missed.
        await until(() => seen.length === 1, 'the progress after the reconnect');
        expect(seen[0]).to.include({ progress: 0.6, message: 'while away' });

        await proxy.cut();
        await until(() => !c.connected, 'the second drop');
        worker.send({ type: 'result', task_id: task.task_id, result: 'done' });
        await sleep(100);
        await proxy.restore();
        void done.then((r) => results.push(r));
        expect(await done).to.equal('done');
        await sleep(100);
        expect(results).to.have.length(1);
        expect(seen).to.have.length(1);
      } finally {
        await proxy.close();
        await worker.close();
      }
    });

    it('sends a cancel asked for while disconnected once the link is back', async () => {
      const worker = await fakeWorker(hub, me(unique('cancel_away')));
      const port = Number(new URL(hub.url).port);
      const proxy = await tcpProxy('127.0.0.1', port);
      try {
        const c = client({}, `http://127.0.0.1:${proxy.port}`);
        const handle = c.submit(worker.welcome.service_id as number, { x: 1 });
        const task = await worker.nextOf('task');
        await until(() => handle.state === 'running', 'started');
        await proxy.cut();
        await until(() => !c.connected, 'the drop');
        const canceled = handle.cancel();
        await sleep(100);
        expect(handle.state).to.equal('running');
        await proxy.restore();
        await canceled;
        expect(handle.state).to.equal('canceled');
        expect((await worker.nextOf('cancel', task.task_id)).reason).to.equal('client');
      } finally {
        await proxy.close();
        await worker.close();
      }
    });

    it('sends a submission made while disconnected once the link is back', async () => {
      const worker = await fakeWorker(hub, me(unique('later')));
      const port = Number(new URL(hub.url).port);
      const proxy = await tcpProxy('127.0.0.1', port);
      try {
        const c = client({}, `http://127.0.0.1:${proxy.port}`);
        await c.connect();
        await proxy.cut();
        await until(() => !c.connected, 'the drop');
        const done = c.run(worker.welcome.service_id as number, { x: 9 });
        await sleep(100);
        await proxy.restore();
        const task = await worker.nextOf('task');
        expect(task.args).to.deep.equal({ x: 9 });
        worker.send({ type: 'result', task_id: task.task_id, result: 9 });
        expect(await done).to.equal(9);
        await sleep(100);
        expect(worker.received.filter((m) => m.type === 'task')).to.have.length(0);
      } finally {
        await proxy.close();
        await worker.close();
      }
    });
  });

  describe('idempotency keys', () => {
    /** A `ws` class whose sockets die on the first `accepted` they get, before the client hears it. */
    function losesFirstAccepted() {
      const sockets: WebSocket[] = [];
      let dropped = 0;
      class Lossy extends WebSocket {
        constructor(url: string) {
          super(url);
          sockets.push(this);
        }
        override emit(event: string | symbol, ...args: any[]): boolean {
          if (event === 'message' && dropped === 0 && !args[1] && JSON.parse(String(args[0])).type === 'accepted') {
            dropped++;
            this.terminate();
            return true;
          }
          return super.emit(event, ...args);
        }
      }
      return { WebSocket: Lossy as unknown as NonNullable<HubClientOptions['WebSocket']>, sockets, dropped: () => dropped };
    }

    it('makes one task when the socket dies between add_task and accepted (the resend carries the same key)', async () => {
      const worker = await fakeWorker(hub, me(unique('lost_ack')), { concurrency: 4 });
      const lossy = losesFirstAccepted();
      const c = client({ WebSocket: lossy.WebSocket });
      const handle = c.submit(worker.welcome.service_id as number, { x: 4 });
      const task = await worker.nextOf('task');
      await until(() => lossy.dropped() === 1 && lossy.sockets.length === 2, 'the lost accepted and the reconnect');
      expect((await handle.accepted()).taskId).to.equal(task.task_id);
      worker.send({ type: 'result', task_id: task.task_id, result: 16 });
      expect(await handle.result()).to.equal(16);
      await sleep(150);
      expect(worker.received.filter((m) => m.type === 'task')).to.have.length(0);
    });

    it("takes the caller's key: two submissions with one key are one task", async () => {
      const worker = await fakeWorker(hub, me(unique('own_key')), { concurrency: 4 });
      const c1 = client();
      const c2 = client();
      const a = c1.run(worker.welcome.service_id as number, [2], { idempotencyKey: 'chat-42-message-7' });
      const task = await worker.nextOf('task');
      const b = c2.submit(worker.welcome.service_id as number, { x: 2 }, { idempotencyKey: 'chat-42-message-7' });
      expect((await b.accepted()).taskId).to.equal(task.task_id);
      worker.send({ type: 'result', task_id: task.task_id, result: 'once' });
      expect(await a).to.equal('once');
      expect(await b.result()).to.equal('once');
      await sleep(100);
      expect(worker.received.filter((m) => m.type === 'task')).to.have.length(0);
      const mismatch = await rejection(c2.run(worker.welcome.service_id as number, { x: 3 }, { idempotencyKey: 'chat-42-message-7' }));
      expect(mismatch.code).to.equal('idempotency_mismatch');
      const bad = await rejection(c2.run(worker.welcome.service_id as number, { x: 3 }, { idempotencyKey: '' }));
      expect(bad.code).to.equal('bad_request');
    });
  });

  describe('media', () => {
    it('sends a Buffer as an attachment and gives media results as {mime, data}', async () => {
      const input = [
        { argument_name: 'image', argument_description: 'The picture', type: 'image' },
        { argument_name: 'label', argument_description: 'A caption', type: 'str' },
      ];
      const worker = await fakeWorker(hub, me(unique('media'), input));
      const c = client();
      const previews: unknown[] = [];
      const done = c.run<{ image: Media; size: number }>(
        worker.welcome.service_id as number,
        { image: media(PNG, 'image/png', 'in.png'), label: 'cat' },
        { onProgress: (p) => previews.push(p.data) },
      );
      const task = await worker.nextOf('task');
      expect(task.args.label).to.equal('cat');
      expect(task.args.image.mime).to.equal('image/png');
      expect(task.args.image.name).to.equal('in.png');
      expect(Buffer.compare(task.args.image.data as Buffer, PNG)).to.equal(0);

      const out = Buffer.from([0x89, 0x50, 0x4e, 0x47, 9, 9, 9]);
      worker.send({ type: 'progress', task_id: task.task_id, progress: 0.5, data: { mime: 'image/png', data: Buffer.from([1, 2]) } });
      worker.send({ type: 'result', task_id: task.task_id, result: { image: { mime: 'image/png', name: 'out.png', data: out }, size: out.length } });
      const result = await done;
      expect(result.size).to.equal(out.length);
      expect(result.image.mime).to.equal('image/png');
      expect(result.image.name).to.equal('out.png');
      expect(Buffer.isBuffer(result.image.data)).to.equal(true);
      expect(Buffer.compare(result.image.data as Buffer, out)).to.equal(0);
      expect(previews).to.have.length(1);
      expect(Buffer.from((previews[0] as Media).data)).to.deep.equal(Buffer.from([1, 2]));
      await worker.close();
    });

    it('takes a Blob and a data: URL too', async () => {
      const input = [
        { argument_name: 'a', type: 'image' },
        { argument_name: 'b', type: 'image' },
      ];
      const worker = await fakeWorker(hub, me(unique('blob'), input));
      const c = client();
      const done = c.run(worker.welcome.service_id as number, {
        a: new Blob([PNG], { type: 'image/png' }),
        b: `data:image/png;base64,${PNG.toString('base64')}`,
      });
      const task = await worker.nextOf('task');
      for (const arg of [task.args.a, task.args.b]) {
        expect(arg.mime).to.equal('image/png');
        expect(Buffer.compare(arg.data as Buffer, PNG)).to.equal(0);
      }
      worker.send({ type: 'result', task_id: task.task_id, result: null });
      expect(await done).to.equal(null);
      await worker.close();
    });
  });

  describe('errors', () => {
    it('rejects args that do not fit with invalid_args and the details of each problem', async () => {
      const input = [
        { argument_name: 'x', type: 'int' },
        { argument_name: 'mode', type: 'str', choices: ['a', 'b'] },
      ];
      const worker = await fakeWorker(hub, me(unique('invalid'), input));
      const c = client();
      const err = await rejection(c.run(worker.welcome.service_id as number, { x: 'abc', mode: 'c' }));
      expect(err.code).to.equal('invalid_args');
      expect(err.status).to.equal(400);
      const details = err.details.details as Array<{ argument_name: string; problem: string }>;
      expect(details.map((d) => d.argument_name)).to.deep.equal(['x', 'mode']);
      expect(details[0].problem).to.match(/int/);
      await sleep(50);
      expect(worker.received.filter((m) => m.type === 'task')).to.have.length(0);
      await worker.close();
    });

    it('rejects an unknown service with service_not_found, in run and in serviceInfo', async () => {
      const c = client();
      expect((await rejection(c.run(987654, {}))).code).to.equal('service_not_found');
      // Over the socket (now open) and over REST (a fresh client, not connected).
      expect(c.connected).to.equal(true);
      expect((await rejection(c.serviceInfo(987654))).code).to.equal('service_not_found');
      expect((await rejection(client().serviceInfo(987654))).code).to.equal('service_not_found');
    });

    it('fails with task_failed carrying the worker error', async () => {
      const worker = await fakeWorker(hub, me(unique('failing')));
      const c = client();
      const done = c.run(worker.welcome.service_id as number, { x: 1 });
      const task = await worker.nextOf('task');
      worker.send({ type: 'failed', task_id: task.task_id, error: { code: 'too_big', message: 'the number is too big' } });
      const err = await rejection(done);
      expect(err.code).to.equal('task_failed');
      expect(err.status).to.equal(502);
      expect(err.details.worker_error).to.deep.equal({ code: 'too_big', message: 'the number is too big' });
      expect(err.details.task_id).to.equal(task.task_id);
      await worker.close();
    });

    it('fails with timeout past timeoutMs, and the worker gets cancel', async () => {
      const worker = await fakeWorker(hub, me(unique('slow')));
      const c = client();
      const started = Date.now();
      const done = c.run(worker.welcome.service_id as number, { x: 1 }, { timeoutMs: 300 });
      const task = await worker.nextOf('task');
      expect(task.timeout_ms).to.equal(300);
      const err = await rejection(done);
      expect(err.code).to.equal('timeout');
      expect(Date.now() - started).to.be.at.least(250);
      expect((await worker.nextOf('cancel', task.task_id)).reason).to.equal('timeout');
      await worker.close();
    });

    it('fails with no_worker when nobody takes the task within queueTimeoutMs', async () => {
      const worker = await fakeWorker(hub, me(unique('gone')));
      const serviceId = worker.welcome.service_id as number;
      await worker.close();
      const c = client();
      expect((await rejection(c.run(serviceId, { x: 1 }, { queueTimeoutMs: 100 }))).code).to.equal('no_worker');
    });
  });

  describe('services', () => {
    it('lists the services and follows workers as they connect and leave', async () => {
      const name = unique('listed');
      const c = client();
      const pushes: string[][] = [];
      c.on('services', (list) => pushes.push(list.map((s) => s.service_name)));
      await c.connect();
      await until(() => pushes.length >= 1, 'the first push');
      expect(pushes.at(-1)).to.not.include(name);

      const worker = await fakeWorker(hub, me(name));
      await until(() => pushes.at(-1)!.includes(name), 'the service to appear');
      expect(c.lastServices!.map((s) => s.service_name)).to.include(name);
      expect((await c.services()).map((s) => s.service_name)).to.include(name);
      const info = await c.serviceInfo(worker.welcome.service_id as number);
      expect(info.service_name).to.equal(name);
      expect(info.arguments.map((a) => a.argument_name)).to.deep.equal(['x']);

      await worker.close();
      await until(() => !pushes.at(-1)!.includes(name), 'the service to disappear');
      expect((await c.services()).map((s) => s.service_name)).to.not.include(name);
    });
  });

  describe('client keys', () => {
    let keyed: TestHub;
    beforeEach(async () => {
      keyed = await startHub({ apiKeys: ['k-right'] });
    });
    afterEach(async () => {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      await keyed.close();
    });

    it('refuses a client without a key or with a wrong one with unauthorized', async () => {
      for (const options of [{}, { key: 'k-wrong' }]) {
        const c = client({ ...options, connectTimeoutMs: 2000 }, keyed.url);
        expect((await rejection(c.services())).code).to.equal('unauthorized');
        expect((await rejection(c.connect())).code).to.equal('unauthorized');
        expect((await rejection(c.run(1, {}))).code).to.equal('unauthorized');
      }
    });

    it('serves a client with the key over the socket and REST', async () => {
      const worker = await fakeWorker(keyed, me(unique('keyed')));
      const c = client({ key: 'k-right' }, keyed.url);
      expect((await c.services()).map((s) => s.service_id)).to.include(worker.welcome.service_id);
      const done = c.run(worker.welcome.service_id as number, { x: 3 });
      const task = await worker.nextOf('task');
      worker.send({ type: 'result', task_id: task.task_id, result: 3 });
      expect(await done).to.equal(3);
      await worker.close();
    });
  });

  describe('#close', () => {
    it('is idempotent and fails what is unfinished with interrupted', async () => {
      const worker = await fakeWorker(hub, me(unique('closing')));
      const c = client();
      const done = c.run(worker.welcome.service_id as number, { x: 1 });
      await worker.nextOf('task');
      const p1 = c.close();
      expect(c.close()).to.equal(p1);
      await p1;
      expect((await rejection(done)).code).to.equal('interrupted');
      expect((await rejection(c.run(worker.welcome.service_id as number, { x: 1 }))).code).to.equal('interrupted');
      await worker.close();
    });
  });
});
