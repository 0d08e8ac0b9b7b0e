import { expect } from 'chai';
import { startHub, fakeWorker, fakeClient, me, sleep, until, workerGone, type TestHub } from '../helpers/hub.js';

describe('Dispatch over real sockets', () => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startHub();
  });
  afterEach(() => hub.close());

  it('spreads tasks by fewest in flight, ties to the least recently assigned', async () => {
    const a = await fakeWorker(hub, me('spread'), { concurrency: 2, instance: 'a' });
    const b = await fakeWorker(hub, me('spread'), { concurrency: 2, instance: 'b' });
    const c = await fakeClient(hub);
    for (let i = 0; i < 4; i++) c.send({ type: 'add_task', ref: `r${i}`, service_id: a.welcome.service_id, args: [i] });
    const tasksOn = (w: typeof a) => w.received.filter((m) => m.type === 'task');
    await until(() => tasksOn(a).length + tasksOn(b).length === 4, 'the four tasks to be dispatched');
    const onA = a.received.filter((m) => m.type === 'task');
    const onB = b.received.filter((m) => m.type === 'task');
    expect(onA.map((t) => t.args.x)).to.deep.equal([0, 2]);
    expect(onB.map((t) => t.args.x)).to.deep.equal([1, 3]);
    // both full: the fifth waits, then goes where a slot frees
    c.send({ type: 'add_task', ref: 'r4', service_id: a.welcome.service_id, args: [4] });
    const acc = await c.next((m) => m.type === 'accepted' && m.ref === 'r4');
    expect(acc.position).to.equal(0);
    await sleep(50);
    expect(a.received.filter((m) => m.type === 'task')).to.have.length(2);
    b.send({ type: 'result', task_id: onB[0].task_id, result: null });
    await until(() => tasksOn(b).length === 3, 'the fifth task to reach the freed slot');
    const later = b.received.filter((m) => m.type === 'task');
    expect(later.map((t) => t.args.x)).to.deep.equal([1, 3, 4]);
  });

  it('queues while a service has no live connection and starts when one comes', async () => {
    const w = await fakeWorker(hub, me('later'));
    await w.close();
    await workerGone(hub, w.welcome.service_id);
    const c = await fakeClient(hub);
    c.send({ type: 'add_task', service_id: w.welcome.service_id, args: [1] });
    c.send({ type: 'add_task', service_id: w.welcome.service_id, args: [2] });
    const first = await c.nextOf('accepted');
    const second = await c.nextOf('accepted');
    expect([first.position, second.position]).to.deep.equal([0, 1]);
    const back = await fakeWorker(hub, me('later'));
    const t = await back.nextOf('task');
    expect(t.args.x).to.equal(1);
  });
});
