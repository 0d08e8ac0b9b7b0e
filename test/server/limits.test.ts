/**
 * Limits (issue 5): frames and bodies over HUB_MAX_MESSAGE_BYTES, attachments over their count
 * and bytes, a slow reader, floods of bad messages, of bad hellos and of silent connections,
 * half-open sockets, and deadlines beyond the range of a timer. Each gets its documented answer,
 * and the hub goes on serving.
 */
import { expect } from 'chai';
import type {} from '@fastify/websocket'; // its FastifyInstance.websocketServer
import { WebSocket } from 'ws';
import { startHub, fakeWorker, http, me, sleep, workerGone, type TestHub } from '../helpers/hub.js';
import { WsPeer } from '../helpers/ws-peer.js';
import { RawPeer } from '../fuzz/support/raw-peer.js';

/** Runs one task end to end over REST: the hub still serves. */
async function serves(hub: TestHub, name: string): Promise<void> {
  const w = await fakeWorker(hub, me(name));
  const call = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [4] });
  const task = await w.nextOf('task');
  w.send({ type: 'result', task_id: task.task_id, result: task.args.x * 2 });
  const res = await call;
  expect(res.status).to.equal(200);
  expect(res.body.result).to.equal(8);
  await w.close();
}

/** The hub's side of the WebSocket whose other end is `peer`. */
function serverSide(hub: TestHub, peer: WebSocket): WebSocket {
  const port = (peer as unknown as { _socket: { localPort: number } })._socket.localPort;
  for (const ws of hub.app.websocketServer.clients) {
    if ((ws as unknown as { _socket: { remotePort: number } })._socket.remotePort === port) return ws;
  }
  throw new Error('no server socket for this peer');
}

async function waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('Limits', () => {
  let hub: TestHub;
  afterEach(() => hub?.close());

  describe('message size', () => {
    const LIMIT = 4096;
    beforeEach(async () => {
      hub = await startHub({ maxMessageBytes: LIMIT });
    });

    it('closes a client or worker whose frame is over HUB_MAX_MESSAGE_BYTES with 1009, and takes one at the limit', async () => {
      const ok = await RawPeer.open(`${hub.wsUrl}/client`);
      const atLimit = `{"type":"subscribe","task_id":"x","pad":"${'a'.repeat(LIMIT - 40)}"}`;
      ok.text(`${atLimit.slice(0, LIMIT - 2)}"}`);
      await ok.until(() => ok.inbox.some((a) => a.msg.type === 'error'), 5000, 'an answer');
      expect(ok.open).to.equal(true);
      await ok.close();

      const client = await RawPeer.open(`${hub.wsUrl}/client`);
      client.text(`{"type":"add_task","pad":"${'a'.repeat(LIMIT)}"}`);
      expect(await client.closed).to.equal(1009);

      const worker = await fakeWorker(hub, me('big_frame'));
      worker.sendRaw(Buffer.alloc(LIMIT + 1, 1), true);
      expect(await worker.closed).to.equal(1009);

      const early = await RawPeer.open(`${hub.wsUrl}/worker`);
      early.text(`{"type":"hello","pad":"${'a'.repeat(LIMIT)}"}`);
      expect(await early.closed).to.equal(1009);
      await serves(hub, 'after_big_frames');
    });

    it('answers a REST body over HUB_MAX_MESSAGE_BYTES with 413 payload_too_large', async () => {
      const w = await fakeWorker(hub, me('big_body', [{ argument_name: 's', type: 'str' }]));
      const over = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: ['a'.repeat(LIMIT)] });
      expect(over.status).to.equal(413);
      expect(over.body.error.code).to.equal('payload_too_large');
      const under = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: ['a'.repeat(LIMIT - 100)] });
      expect(under.status).to.equal(202);
    });

    it('refuses more than 16 attachments with bad_message, swallows their frames and keeps the connection', async () => {
      const w = await fakeWorker(hub, me('many_att', [{ argument_name: 'f', type: 'file' }]));
      const c = await RawPeer.open(`${hub.wsUrl}/client`);
      c.json({ type: 'add_task', ref: 'many', service_id: w.welcome.service_id, args: [{ $attachment: 0 }], attachments: 17 });
      for (let i = 0; i < 17; i++) c.binary(Buffer.from([i]));
      c.json({ type: 'add_task', ref: 'one', service_id: w.welcome.service_id, args: [{ $attachment: 0, mime: 'text/plain' }], attachments: 1 });
      c.binary(Buffer.from('hello'));
      await c.until(() => c.inbox.some((a) => a.msg.type === 'accepted'), 5000, 'accepted');
      const answers = c
        .take()
        .map((a) => a.msg)
        .filter((m) => m.type !== 'services' && m.type !== 'started');
      expect(answers.map((m) => [m.type, m.code ?? m.ref])).to.deep.equal([
        ['error', 'bad_message'],
        ['accepted', 'one'],
      ]);
      expect(answers[0].ref).to.equal('many');
      const task = await w.nextOf('task');
      expect(task.args.f.data.toString()).to.equal('hello');

      // The same from a worker: its result is refused, then a good one ends the task.
      w.sendRaw(JSON.stringify({ type: 'result', task_id: task.task_id, result: 1, attachments: 17 }));
      for (let i = 0; i < 17; i++) w.sendRaw(Buffer.from([i]), true);
      expect((await w.nextOf('error')).code).to.equal('bad_message');
      w.send({ type: 'result', task_id: task.task_id, result: 2 });
      await c.until(() => c.inbox.some((a) => a.msg.type === 'result'), 5000, 'the result');
      expect(c.inbox.find((a) => a.msg.type === 'result')!.msg.result).to.equal(2);
      expect(w.received.filter((m) => m.type === 'error')).to.deep.equal([]);
    });

    it('refuses attachments over the byte limit with payload_too_large and keeps the connection; max_bytes is invalid_args', async () => {
      const w = await fakeWorker(hub, me('big_att', [{ argument_name: 'f', type: 'file', max_bytes: 100 }]));
      const c = await RawPeer.open(`${hub.wsUrl}/client`);
      c.json({ type: 'add_task', ref: 'big', service_id: w.welcome.service_id, args: [{ $attachment: 0 }], attachments: 3 });
      c.binary(Buffer.alloc(3000));
      c.binary(Buffer.alloc(3000)); // past the limit here: the third frame is swallowed
      c.binary(Buffer.alloc(10));
      c.json({ type: 'add_task', ref: 'over_max', service_id: w.welcome.service_id, args: [{ $attachment: 0 }], attachments: 1 });
      c.binary(Buffer.alloc(101));
      c.json({ type: 'add_task', ref: 'fits', service_id: w.welcome.service_id, args: [{ $attachment: 0 }], attachments: 1 });
      c.binary(Buffer.alloc(100));
      await c.until(() => c.inbox.some((a) => a.msg.type === 'accepted'), 5000, 'accepted');
      const answers = c
        .take()
        .map((a) => a.msg)
        .filter((m) => m.type !== 'services' && m.type !== 'started');
      expect(answers.map((m) => [m.type, m.code ?? m.error?.code, m.ref])).to.deep.equal([
        ['error', 'payload_too_large', 'big'],
        ['rejected', 'invalid_args', 'over_max'],
        ['accepted', undefined, 'fits'],
      ]);
      expect((await w.nextOf('task')).args.f.data.length).to.equal(100);
    });
  });

  it('closes a client that reads too slowly with 1013 once its buffer passes maxBufferedBytes; its task goes on and stays readable', async function () {
    this.timeout(60_000);
    const maxBufferedBytes = 64 * 1024;
    hub = await startHub({ maxMessageBytes: 1024 * 1024, maxBufferedBytes });
    const w = await fakeWorker(hub, me('slow_reader'));
    const c = await RawPeer.open(`${hub.wsUrl}/client`);
    c.json({ type: 'add_task', ref: 'slow', service_id: w.welcome.service_id, args: [1] });
    await c.until(() => c.inbox.some((a) => a.msg.type === 'accepted'), 5000, 'accepted');
    const taskId = c.inbox.find((a) => a.msg.type === 'accepted')!.msg.task_id as string;
    const task = await w.nextOf('task');
    const server = serverSide(hub, c.ws);
    (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();

    // The worker streams big progress messages; the client reads none of them.
    const chunk = 'p'.repeat(200 * 1024);
    let sent = 0;
    let peak = 0;
    while (server.readyState === WebSocket.OPEN && sent < 2000) {
      w.send({ type: 'progress', task_id: task.task_id, progress: 0.5, data: chunk });
      sent++;
      if (sent % 10 === 0) await sleep(5); // let the hub read and relay
      peak = Math.max(peak, server.bufferedAmount);
    }
    expect(server.readyState, `still open after ${sent} progress messages of 200 KiB`).to.equal(WebSocket.CLOSING);
    // Bounded: the limit plus the one message that crossed it (and the close frame).
    expect(peak).to.be.at.most(maxBufferedBytes + chunk.length + 1024);
    await sleep(50);
    expect(server.bufferedAmount).to.be.at.most(maxBufferedBytes + chunk.length + 1024);

    // The task goes on without its client, and its end stays readable.
    w.send({ type: 'result', task_id: task.task_id, result: 'done' });
    await waitFor(() => !hub.app.hub.isLive(taskId), 5000, 'the task to end');
    // Its end shows once the task store committed it (HUB_COMMIT=stored): wait for that, bounded.
    let view = await http(hub, 'GET', `/tasks/${taskId}`);
    for (const until = Date.now() + 10_000; view.body.status === 'running' && Date.now() < until; ) {
      await sleep(25);
      view = await http(hub, 'GET', `/tasks/${taskId}`);
    }
    expect(view.body).to.include({ status: 'succeeded', result: 'done' });

    // Once it reads again, the client learns why it was closed.
    (c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await c.closed).to.equal(1013);
  });

  describe('floods', () => {
    it('closes a client and a worker that send more than 50 bad messages in 10 s with 1008, after answering each', async () => {
      hub = await startHub();
      for (const path of ['client', 'worker']) {
        const peer = path === 'client' ? await WsPeer.open(`${hub.wsUrl}/client`) : await fakeWorker(hub, me('flood_bad'));
        for (let i = 0; i < 60; i++) peer.sendRaw(`not json ${i}`);
        expect(await peer.closed, path).to.equal(1008);
        expect(peer.received.filter((m) => m.type === 'error' && m.code === 'bad_message').length, path).to.equal(51);
      }
      await serves(hub, 'after_bad_flood');
    });

    it('survives a hello flood: hundreds of connections saying bad hellos are refused and closed, and nothing stays behind', async function () {
      this.timeout(60_000);
      hub = await startHub();
      await serves(hub, 'before_hello_flood');
      const baseline = hub.app.websocketServer.clients.size;
      const heap = process.memoryUsage().heapUsed;
      const bad = [
        { type: 'hello', protocol: 2, me: me('hf') },
        { type: 'hello', protocol: 1, me: me('bad name!') },
        { type: 'hello', protocol: 1, me: me('hf_c'), concurrency: 0 },
        { type: 'drain' },
      ];
      const codes = ['unsupported_protocol', 'bad_service_description', 'bad_message', 'bad_message'];
      const N = 300;
      const results = await Promise.all(
        Array.from({ length: N }, async (_, i) => {
          const p = await RawPeer.open(`${hub.wsUrl}/worker`);
          p.json(bad[i % bad.length]);
          const code = await p.closed;
          return { code, answer: p.inbox[0]?.msg };
        }),
      );
      results.forEach((r, i) => {
        expect(r.code).to.equal(1008);
        expect(r.answer).to.include({ type: 'error', code: codes[i % codes.length] });
      });
      await waitFor(() => hub.app.websocketServer.clients.size === baseline, 5000, 'the sockets to close');
      expect(hub.app.hub.workerConnections().length).to.equal(0);
      expect((await http(hub, 'GET', '/services_list')).body).to.deep.equal([]);
      expect(hub.app.hub.stats.rejectedHandshakes.unsupported_protocol).to.equal(N / 4);
      await serves(hub, 'after_hello_flood');
      // Nothing per connection stays: a generous bound for what the test itself allocated.
      expect(process.memoryUsage().heapUsed - heap).to.be.below(64 * 1024 * 1024);
    });

    it('survives a connection flood: hundreds of sockets that never say hello are closed at the hello deadline, and tasks run meanwhile', async function () {
      this.timeout(60_000);
      hub = await startHub({ helloTimeoutMs: 500 });
      const baseline = hub.app.websocketServer.clients.size;
      const N = 300;
      const silent = await Promise.all(Array.from({ length: N }, () => RawPeer.open(`${hub.wsUrl}/worker`)));
      const started = Date.now();
      await serves(hub, 'during_connection_flood');
      const codes = await Promise.all(silent.map((p) => p.closed));
      expect(codes.every((c) => c === 1008)).to.equal(true);
      expect(Date.now() - started).to.be.below(5000);
      await waitFor(() => hub.app.websocketServer.clients.size === baseline, 5000, 'the sockets to close');
      expect(hub.app.hub.workerConnections().length).to.equal(0);
      await serves(hub, 'after_connection_flood');
    });
  });

  it('terminates a half-open client (no pong) within two heartbeats, and keeps one that answers', async function () {
    this.timeout(20_000);
    const heartbeatMs = 500;
    hub = await startHub({ heartbeatMs });
    const alive = await RawPeer.open(`${hub.wsUrl}/client`);
    const started = Date.now();
    const silent = await RawPeer.open(`${hub.wsUrl}/client`, { autoPong: false });
    const code = await silent.closed;
    const took = Date.now() - started;
    expect(code).to.equal(1006); // terminated: no close frame
    // Two heartbeats, plus slack for timers on a busy machine.
    expect(took).to.be.below(2 * heartbeatMs + heartbeatMs / 2);
    await waitFor(() => hub.app.hub.clientCount === 1, 2000, 'the hub to forget the client');
    await sleep(2 * heartbeatMs);
    expect(alive.open).to.equal(true);
    await alive.close();
  });

  it('refuses a result nested deeper than 64 levels with bad_message, and the task still ends for its waiting caller', async () => {
    hub = await startHub();
    const w = await fakeWorker(hub, me('deep_result'));
    const call = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [1] });
    const task = await w.nextOf('task');
    w.sendRaw(`{"type":"result","task_id":"${task.task_id}","result":${'['.repeat(5000)}1${']'.repeat(5000)}}`);
    expect(await w.nextOf('error')).to.include({ code: 'bad_message', task_id: task.task_id });
    w.send({ type: 'result', task_id: task.task_id, result: [[[1]]] });
    const res = await call;
    expect(res.status).to.equal(200);
    expect(res.body.result).to.deep.equal([[[1]]]);
  });

  it('delivers a task end to its subscribers even when the task store refuses the row', async () => {
    hub = await startHub({ logger: false });
    const store = hub.app.hub.store;
    store.saveEnded = () => {
      throw new TypeError('refused');
    };
    const w = await fakeWorker(hub, me('store_refuses'));
    const call = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [1] });
    const task = await w.nextOf('task');
    w.send({ type: 'result', task_id: task.task_id, result: 'ok' });
    const res = await call;
    expect(res.status).to.equal(200);
    expect(res.body.result).to.equal('ok');
  });

  it('keeps a task whose queue timeout is the longest allowed (the whole range of a timer) waiting, without a busy timer; a longer one is bad_request', async () => {
    // HUB_MAX_QUEUE_TIMEOUT_MS (one hour by default) at its largest, the range of a timer.
    hub = await startHub({ maxQueueTimeoutMs: 2 ** 31 - 1 });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const w = await fakeWorker(hub, me('far_queue'));
      await w.close();
      await workerGone(hub, w.welcome.service_id);
      const tooLong = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1], queue_timeout_ms: 2 ** 40 });
      expect(tooLong.status).to.equal(400);
      const res = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1], queue_timeout_ms: 2 ** 31 - 1 });
      expect(res.status).to.equal(202);
      await sleep(100);
      expect(warnings).to.not.include('TimeoutOverflowWarning');
      expect((await http(hub, 'GET', `/tasks/${res.body.task_id}`)).body.status).to.equal('queued');
    } finally {
      process.off('warning', onWarning);
    }
  });
});
