/**
 * Both SDKs with the URLs of several hubs of a cluster (docs/protocol.md section 11, "SDKs"),
 * against real hub processes: a worker (@utils-hub/worker-client) and a client
 * (@utils-hub/client) move on to the next hub when theirs is SIGKILLed, and the client's waiting
 * task still ends for it there.
 */
import { expect } from 'chai';
import { HubClient } from '@utils-hub/client';
import { defineService, type ConnectedInfo } from '@utils-hub/worker-client';
import { connectionsSeen, http, until, useThreeHubs, worker } from '../helpers/cluster.js';

describe('cluster: SDKs with several hub URLs', function () {
  this.timeout(120_000);
  const { hubs, track } = useThreeHubs('sdk');
  const closers: Array<() => Promise<unknown>> = [];

  afterEach(async () => {
    for (const close of closers.splice(0)) await close().catch(() => undefined);
  });

  it('worker SDK: moves to the next hub URL when its hub dies, and takes tasks there', async () => {
    const [, b, c] = hubs;
    const service = defineService({
      name: 'cl_sdk_worker',
      description: 'doubles x',
      input: [{ argument_name: 'x', type: 'int' }],
      handler: ({ x }) => ({ y: (x as number) * 2 }),
    });
    closers.push(() => service.close({ graceMs: 200 }));
    const welcomes: ConnectedInfo[] = [];
    service.on('connected', (info) => welcomes.push(info));
    service.on('error', () => undefined);
    await service.connect([`${c.wsUrl}/worker`, `${b.wsUrl}/worker`], { minDelayMs: 50, maxDelayMs: 500 });
    expect(welcomes[0].peer).to.equal(`${c.wsUrl}/worker`);
    c.proc.kill('SIGKILL');
    await c.proc.exited;
    await until(
      () => welcomes.length,
      (n) => n >= 2,
      10_000,
      'a welcome from the next hub',
    );
    expect(welcomes[1].peer).to.equal(`${b.wsUrl}/worker`);
    const done = await http(b, 'POST', '/add_task', { service_id: welcomes[1].serviceId, args: { x: 21 } });
    expect(done.status).to.equal(200);
    expect(done.body.result).to.deep.equal({ y: 42 });
  });

  it('client SDK: moves to the next hub when its hub dies; its waiting task ends for it there', async () => {
    const [a, b] = hubs;
    const w = await worker(b, 'cl_sdk_client');
    track(w);
    const sid = w.welcome.service_id;
    await connectionsSeen(a, sid, 1, "B's worker seen on A");
    const client = new HubClient([a.url, b.url], { minDelayMs: 50, maxDelayMs: 500 });
    closers.push(() => client.close());
    client.on('error', () => undefined);
    let connects = 0;
    client.on('connected', () => connects++);
    const events: string[] = [];
    const handle = client.submit<{ y: number }>(sid, { x: 5 });
    handle.on('started', () => events.push('started'));
    handle.on('progress', (p) => events.push(`progress ${p.progress}`));
    const { taskId } = await handle.accepted();
    // Submitted on A, it runs on B's worker.
    const task = await w.nextOf('task', taskId, 5000);
    w.send({ type: 'progress', task_id: taskId, progress: 0.25 });
    await until(
      () => events.length,
      (n) => n >= 2,
      5000,
      'started and progress through A',
    );
    a.proc.kill('SIGKILL');
    await a.proc.exited;
    // The client moves to B and follows the task there (subscribe); the worker goes on.
    await until(
      () => connects,
      (n) => n >= 2,
      10_000,
      'the client connected to B',
    );
    expect(client.connected).to.equal(true);
    w.send({ type: 'progress', task_id: task.task_id, progress: 0.75 });
    w.send({ type: 'result', task_id: task.task_id, result: { y: 10 } });
    expect(await handle.result()).to.deep.equal({ y: 10 });
    expect(events).to.include('progress 0.25');
    // New work goes through B, and REST calls too.
    const next = client.run<{ y: number }>(sid, { x: 6 });
    const t2 = await w.nextOf('task', undefined, 5000);
    w.send({ type: 'result', task_id: t2.task_id, result: { y: 12 } });
    expect(await next).to.deep.equal({ y: 12 });
    expect((await client.services()).some((s) => s.service_id === sid)).to.equal(true);
  });
});
