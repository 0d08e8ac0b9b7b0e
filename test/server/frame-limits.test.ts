/**
 * Frame limits said in the handshake (issue 14): a worker's `hello` may carry
 * `max_message_bytes`; the hub never sends it a task over it (the task fails `payload_too_large`
 * at once and is not re-queued), and a task whose attempts all ended with a dying connection
 * names how it closed in its `worker_lost`.
 */
import { expect } from 'chai';
import { WebSocket } from 'ws';
import { defineService } from '@utils-hub/worker-client';
import { WsPeer } from '../helpers/ws-peer.js';
import { startHub, fakeClient, http, me, type TestHub } from '../helpers/hub.js';

const INPUT = [{ argument_name: 's', argument_description: 'a text', type: 'str' }];

/** A raw worker that announces `max_message_bytes: limit` (any value, for the garbage cases). */
async function limitedWorker(hub: TestHub, name: string, limit: unknown): Promise<{ peer: WsPeer; answer: Record<string, any> }> {
  const peer = await WsPeer.open(`${hub.wsUrl}/worker`);
  peer.send({ type: 'hello', protocol: 1, me: me(name, INPUT), max_message_bytes: limit });
  const answer = await peer.next((m) => m.type === 'welcome' || m.type === 'error');
  return { peer, answer };
}

describe('Frame limits said in hello', () => {
  let hub: TestHub;
  afterEach(() => hub?.close());

  it('refuses a max_message_bytes that is not an integer of at least 1024 with bad_message', async () => {
    hub = await startHub();
    for (const bad of [1023, 0, -5, 4096.5, '4096', null, true, [], {}, Number.POSITIVE_INFINITY]) {
      const { peer, answer } = await limitedWorker(hub, 'garbage-limit', bad);
      expect(answer.type, JSON.stringify(bad)).to.equal('error');
      expect(answer.code).to.equal('bad_message');
      expect(answer.message).to.match(/max_message_bytes/);
      expect(await peer.closed).to.equal(1008);
    }
    const { peer, answer } = await limitedWorker(hub, 'garbage-limit', 1024);
    expect(answer.type).to.equal('welcome');
    await peer.close();
  });

  it("fails a task over the worker's limit with payload_too_large at once, sends it nothing, and does not re-queue it", async () => {
    hub = await startHub();
    const { peer, answer } = await limitedWorker(hub, 'small-frames', 2048);
    expect(answer.type).to.equal('welcome');
    const serviceId = answer.service_id;

    const client = await fakeClient(hub);
    client.send({ type: 'add_task', ref: 'big', service_id: serviceId, args: ['x'.repeat(4000)] });
    const accepted = await client.nextOf('accepted');
    const failed = await client.nextOf('failed', accepted.task_id);
    expect(failed.error.code).to.equal('payload_too_large');
    expect(failed.error.message).to.match(/at most 2048/);
    expect(client.received.filter((m) => m.task_id === accepted.task_id && m.type === 'started')).to.have.length(0);

    const rest = await http(hub, 'POST', '/add_task', { service_id: serviceId, args: ['y'.repeat(4000)] });
    expect(rest.status).to.equal(413);
    expect(rest.body.error.code).to.equal('payload_too_large');
    const view = await http(hub, 'GET', `/tasks/${rest.body.error.task_id ?? accepted.task_id}`);
    expect(view.body.status).to.equal('failed');
    expect(view.body.attempts).to.equal(0);

    // The worker got none of them, is still connected, and takes a task within its limit.
    const small = http(hub, 'POST', '/add_task', { service_id: serviceId, args: ['small'] });
    const task = await peer.nextOf('task');
    expect(task.args.s).to.equal('small');
    expect(peer.received.filter((m) => m.type === 'task')).to.have.length(0);
    peer.send({ type: 'result', task_id: task.task_id, result: 'ok' });
    expect((await small).body.result).to.equal('ok');
    expect(peer.closeCode).to.equal(null);
    await peer.close();
  });

  it('counts the binary frames of a task together against the limit', async () => {
    hub = await startHub();
    const peer = await WsPeer.open(`${hub.wsUrl}/worker`);
    const input = [
      { argument_name: 'a', argument_description: 'a file', type: 'file' },
      { argument_name: 'b', argument_description: 'a file', type: 'file' },
    ];
    peer.send({ type: 'hello', protocol: 1, me: me('two-files', input), max_message_bytes: 3000 });
    const welcome = await peer.nextOf('welcome');
    const file = (n: number) => ({ mime: 'application/octet-stream', data: Buffer.alloc(n, 1).toString('base64') });
    const over = await http(hub, 'POST', '/add_task', { service_id: welcome.service_id, args: [file(2000), file(2000)] });
    expect(over.status).to.equal(413);
    const fits = http(hub, 'POST', '/add_task', { service_id: welcome.service_id, args: [file(1000), file(1000)] });
    const task = await peer.nextOf('task');
    expect(task.args.a.data).to.have.length(1000);
    peer.send({ type: 'result', task_id: task.task_id, result: 2 });
    expect((await fits).status).to.equal(200);
    await peer.close();
  });

  it('the TypeScript SDK announces its maxMessageBytes, and a task over it fails without cutting the worker', async () => {
    hub = await startHub();
    const service = defineService({
      name: 'sdk-small-frames',
      description: 'echoes a text',
      input: [{ argument_name: 's', argument_description: 'a text', type: 'str' }] as const,
      handler: ({ s }) => s.length,
    });
    const disconnects: number[] = [];
    service.on('disconnected', (code) => disconnects.push(code));
    service.on('error', () => {});
    const info = await service.connect(`${hub.wsUrl}/worker`, { maxMessageBytes: 4096 });
    try {
      const big = await http(hub, 'POST', '/add_task', { service_id: info.serviceId, args: ['z'.repeat(10_000)] });
      expect(big.status).to.equal(413);
      expect(big.body.error.message).to.match(/at most 4096/);
      const ok = await http(hub, 'POST', '/add_task', { service_id: info.serviceId, args: ['z'.repeat(100)] });
      expect(ok.body.result).to.equal(100);
      expect(disconnects).to.deep.equal([]);
    } finally {
      await service.close({ graceMs: 100 });
    }
  });

  it('names the close in the worker_lost of a task whose attempts all ended with a dying connection', async () => {
    hub = await startHub({ maxAttempts: 2 });
    // Workers that say no limit and die of the task as a 1 MiB-frame library does: close 1009.
    const dying = async () => {
      const ws = new WebSocket(`${hub.wsUrl}/worker`);
      await new Promise((r) => ws.once('open', r));
      ws.send(JSON.stringify({ type: 'hello', protocol: 1, me: me('dies-of-big', INPUT) }));
      const welcomed = new Promise((r) => ws.once('message', r));
      ws.on('message', (data) => {
        const m = JSON.parse(String(data));
        if (m.type === 'task') ws.close(1009, 'message too big');
      });
      await welcomed;
      return ws;
    };
    await dying();
    await dying();
    const services = await http(hub, 'GET', '/services_list');
    const id = services.body.find((s: { service_name: string }) => s.service_name === 'dies-of-big').service_id;
    const r = await http(hub, 'POST', '/add_task', { service_id: id, args: ['boom'] });
    expect(r.status).to.equal(502);
    expect(r.body.error.code).to.equal('worker_lost');
    expect(r.body.error.message).to.match(/1009 "message too big"/);
    const view = await http(hub, 'GET', `/tasks/${r.body.error.task_id}`);
    expect(view.body.attempts).to.equal(2);
  });
});
