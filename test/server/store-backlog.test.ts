import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDb } from '../../server/src/db/index.js';
import { startHub, fakeWorker, http, me, sleep, tempSqlite, until, type TestHub } from '../helpers/hub.js';

/**
 * When the task store falls behind (here: its table is gone, so rows pile up), the hub stops
 * reading from its workers until the rows are written, rather than holding every result in memory.
 */
describe('Task store backlog', function () {
  this.timeout(30_000);
  let db: Knex;
  let hub: TestHub;
  beforeEach(async () => {
    db = openDb(tempSqlite(), { log: () => {} });
    hub = await startHub({ knex: db, storeBacklogBytes: 100_000, heartbeatMs: 200 });
  });
  afterEach(async () => {
    await hub.close();
    await db.destroy();
  });

  async function status(id: string): Promise<string> {
    return (await http(hub, 'GET', `/tasks/${id}`)).body.status;
  }

  it('stops reading results while the rows wait for the database, and reads them once it caught up; the worker stays connected', async () => {
    const worker = await fakeWorker(hub, me('backlog'), { concurrency: 2 });
    const serviceId = worker.welcome.service_id;
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await http(hub, 'POST', '/add_task?wait=false', { service_id: serviceId, args: { x: i } });
      expect(r.status).to.equal(202);
      ids.push(r.body.task_id);
    }
    const tasks = [await worker.nextOf('task'), await worker.nextOf('task')];
    await db.schema.renameTable('tasks', 'tasks_off');

    // 150 kB of result while no row can be written: over the 100 kB bound. The hub reads it (the
    // task leaves the dispatcher) but the end is not committed, so it reads as still running.
    const inMemory = (id: string) => [...hub.app.hub.liveTasks()].find((t) => t.id === id);
    worker.send({ type: 'result', task_id: tasks[0]!.task_id, result: 'x'.repeat(150_000) });
    await until(() => !inMemory(tasks[0]!.task_id), 'the first task to leave memory', 2000);
    expect(inMemory(tasks[0]!.task_id)).to.equal(undefined);
    expect(await status(tasks[0]!.task_id)).to.equal('running');

    // The next result waits unread in the socket, for longer than two heartbeats.
    worker.send({ type: 'result', task_id: tasks[1]!.task_id, result: 'small' });
    await sleep(700);
    expect(inMemory(tasks[1]!.task_id)?.status).to.equal('running');

    await db.schema.renameTable('tasks_off', 'tasks');
    await until(async () => (await status(tasks[0]!.task_id)) === 'succeeded', 'the first task written', 10_000);
    expect(await status(tasks[0]!.task_id)).to.equal('succeeded');
    await until(async () => (await status(tasks[1]!.task_id)) === 'succeeded', 'the second task written', 10_000);
    expect(await status(tasks[1]!.task_id)).to.equal('succeeded');
    expect(worker.ws.readyState).to.equal(worker.ws.OPEN);
    // Both ends are in the table (HUB_COMMIT=stored: they were read back only once committed).
    const stored = async () => ((await db('tasks').whereIn('id', ids).select('status')) as Array<{ status: string }>).map((r) => r.status);
    await until(async () => (await stored()).join() === 'succeeded,succeeded', 'both rows stored', 5000);
    expect(await stored()).to.deep.equal(['succeeded', 'succeeded']);
  });
});
