/**
 * What an acknowledgement means (docs/protocol.md): with the default HUB_COMMIT=stored, the hub
 * says `accepted` (or 202) only once the task's row is in the table, and sends a task's end only
 * once that end is; while the table cannot be written, both wait, and the task's events wait
 * behind its `accepted`, in order.
 */
import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDb } from '../../server/src/db/index.js';
import { fakeClient, fakeWorker, http, me, sleep, startHub, tempSqlite, until, type TestHub } from '../helpers/hub.js';
import type { Msg } from '../helpers/ws-peer.js';

describe('HUB_COMMIT=stored (the default)', function () {
  this.timeout(30_000);
  let hub: TestHub;
  let direct: Knex;

  beforeEach(async () => {
    const url = tempSqlite();
    hub = await startHub({ db: url });
    // Another connection to the same file: it sees only what is committed.
    direct = openDb(url, { log: () => {} });
  });
  afterEach(async () => {
    await hub.close();
    await direct.destroy();
  });

  const tableStatus = async (id: string) => ((await direct('tasks').where({ id }).first('status')) as { status: string } | undefined)?.status ?? null;

  it('sends accepted once the row is committed, and the result once the end is', async () => {
    const w = await fakeWorker(hub, me('commit_a'));
    const c = await fakeClient(hub);
    c.send({ type: 'add_task', ref: 'r1', service_id: w.welcome.service_id, args: [1] });
    const accepted = await c.nextOf('accepted');
    expect(await tableStatus(accepted.task_id)).to.be.oneOf(['queued', 'running']);
    const task = await w.nextOf('task');
    w.send({ type: 'result', task_id: task.task_id, result: 42 });
    const result = await c.nextOf('result');
    expect(result.result).to.equal(42);
    expect(await tableStatus(accepted.task_id)).to.equal('succeeded');
  });

  it('answers ?wait=false with 202 once the row is committed, and the waiting POST once the end is', async () => {
    const w = await fakeWorker(hub, me('commit_b'), { concurrency: 2 });
    const r = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] });
    expect(r.status).to.equal(202);
    expect(await tableStatus(r.body.task_id)).to.be.oneOf(['queued', 'running']);
    const waiting = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [2] });
    await w.next((m) => m.type === 'task' && m.args.x === 1);
    const t2 = await w.next((m) => m.type === 'task' && m.args.x === 2);
    w.send({ type: 'result', task_id: t2.task_id, result: 'two' });
    const answer = await waiting;
    expect(answer.status).to.equal(200);
    expect(await tableStatus(answer.body.task_id)).to.equal('succeeded');
  });

  it('holds accepted, the 202 and the end while the table cannot be written, then sends them in order', async () => {
    const w = await fakeWorker(hub, me('commit_c'), { concurrency: 4 });
    const c = await fakeClient(hub);
    await direct.schema.renameTable('tasks', 'tasks_off');
    c.send({ type: 'add_task', ref: 'r1', service_id: w.welcome.service_id, args: [7] });
    const rest = http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [8] });
    let restAnswered = false;
    void rest.then(() => (restAnswered = true));
    // The task runs from memory meanwhile: the worker gets it, reports progress and ends it.
    const task = await w.next((m) => m.type === 'task' && m.args.x === 7);
    // 40 progress messages: past 32 held events, a new progress replaces the latest held one.
    for (let i = 1; i <= 40; i++) w.send({ type: 'progress', task_id: task.task_id, progress: i / 100 });
    w.send({ type: 'result', task_id: task.task_id, result: 'seven' });
    await sleep(500);
    expect(c.received.filter((m) => m.type !== 'services')).to.deep.equal([]);
    expect(restAnswered).to.equal(false);

    await direct.schema.renameTable('tasks_off', 'tasks');
    await until(() => c.received.some((m) => m.type === 'result'), 'the result', 10_000);
    const events = c.received.filter((m) => m.type !== 'services');
    expect(events.at(-1)!.result).to.equal('seven');
    expect(events.map((m: Msg) => m.type)).to.deep.equal(['accepted', 'started', ...Array(31).fill('progress'), 'result']);
    const progress = events.filter((m: Msg) => m.type === 'progress').map((m: Msg) => Math.round(m.progress * 100));
    expect(progress).to.deep.equal([...Array.from({ length: 30 }, (_, i) => i + 1), 40]);
    const seqs = events.slice(1).map((m: Msg) => m.seq as number);
    expect(seqs).to.deep.equal([...seqs].sort((a, b) => a - b));
    expect(await tableStatus(task.task_id)).to.equal('succeeded');
    const r = await rest;
    expect(r.status).to.equal(202);
    expect(await tableStatus(r.body.task_id)).to.be.oneOf(['queued', 'running']);
  });
});

describe('HUB_COMMIT=async', function () {
  this.timeout(30_000);
  let hub: TestHub;
  let direct: Knex;

  beforeEach(async () => {
    const url = tempSqlite();
    hub = await startHub({ db: url, commit: 'async' });
    direct = openDb(url, { log: () => {} });
  });
  afterEach(async () => {
    await hub.close();
    await direct.destroy();
  });

  it('acknowledges and ends tasks without waiting for the database (rows written behind)', async () => {
    const w = await fakeWorker(hub, me('async_a'));
    const c = await fakeClient(hub);
    await direct.schema.renameTable('tasks', 'tasks_off');
    c.send({ type: 'add_task', ref: 'r1', service_id: w.welcome.service_id, args: [1] });
    const accepted = await c.nextOf('accepted');
    const r = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [2] });
    expect(r.status).to.equal(202);
    const task = await w.nextOf('task');
    w.send({ type: 'result', task_id: task.task_id, result: 'one' });
    expect((await c.nextOf('result')).result).to.equal('one');
    expect((await http(hub, 'GET', `/tasks/${accepted.task_id}`)).body.status).to.equal('succeeded');
    await direct.schema.renameTable('tasks_off', 'tasks');
    const rows = async () => (await direct('tasks').whereIn('id', [accepted.task_id, r.body.task_id]).select('id')).length;
    await until(async () => (await rows()) >= 2, 'both rows written', 10_000);
    expect(await rows()).to.equal(2);
  });
});
