import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDb, MIGRATIONS_TABLE } from '../../server/src/db/index.js';
import { startHub, tempSqlite, fakeWorker, http, me, type TestHub } from '../helpers/hub.js';

describe('Operator', () => {
  describe('GET /healthz and GET /readyz', () => {
    let hub: TestHub;
    afterEach(() => hub?.close());

    it('answers 200 on both, without a key even when keys are required', async () => {
      hub = await startHub({ apiKeys: ['health-key'] });
      expect(await http(hub, 'GET', '/healthz')).to.deep.equal({ status: 200, body: { status: 'ok' } });
      expect(await http(hub, 'GET', '/readyz')).to.deep.equal({ status: 200, body: { status: 'ready' } });
    });

    it('answers /readyz 503 while the hub is shutting down, /healthz still 200', async () => {
      hub = await startHub();
      const w = await fakeWorker(hub, me('health_stop'));
      const added = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: { x: 1 } });
      const task = await w.nextOf('task');
      // Graceful stop: the running task gets its grace, and meanwhile the hub is not ready.
      const stopping = hub.app.hub.shutdown(5000);
      const ready = await http(hub, 'GET', '/readyz');
      expect(ready.status).to.equal(503);
      expect(ready.body).to.deep.equal({ status: 'not_ready', reason: 'the hub is stopping' });
      expect((await http(hub, 'GET', '/healthz')).status).to.equal(200);
      w.send({ type: 'result', task_id: task.task_id, result: 1 });
      await stopping;
      expect((await added).status).to.equal(200);
      await w.close();
    });

    describe('with the database in trouble', () => {
      let db: Knex;
      beforeEach(async () => {
        db = openDb(tempSqlite());
        hub = await startHub({ knex: db });
      });
      afterEach(async () => {
        await hub.close();
        await db.destroy().catch(() => undefined);
      });

      it('answers /readyz 503 when a migration is not applied', async () => {
        expect((await http(hub, 'GET', '/readyz')).status).to.equal(200);
        const [last] = await db(MIGRATIONS_TABLE).orderBy('id', 'desc').limit(1);
        await db(MIGRATIONS_TABLE).where({ id: last.id }).delete();
        const res = await http(hub, 'GET', '/readyz');
        expect(res.status).to.equal(503);
        expect(res.body.status).to.equal('not_ready');
        expect(res.body.reason).to.include('migrations not applied').and.include(last.name);
      });

      it('answers /readyz 503 when the database does not answer', async () => {
        await db.destroy();
        const res = await http(hub, 'GET', '/readyz');
        expect(res.status).to.equal(503);
        expect(res.body.reason).to.match(/^database unreachable/);
        expect((await http(hub, 'GET', '/healthz')).status).to.equal(200);
      });
    });
  });
});
