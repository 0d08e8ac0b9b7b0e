import { expect } from 'chai';
import { startHub, fakeClient, tempSqlite, http, me, sleep, until, type TestHub } from '../helpers/hub.js';
import { dialableWorker, type DialableWorker } from '../helpers/dialable-worker.js';
import { forEachDatabase } from '../helpers/backends.js';
import { openDb } from '../../server/src/db/index.js';
import { addWorker, removeWorker, setWorkerEnabled } from '../../server/src/store/workers.js';
import { backoffDelay } from '@utils-hub/protocol';
import { wsUrlOf } from '../../server/src/transport/dialer.js';
import type { Knex } from 'knex';

const listed = (hub: TestHub, name: string) => async () =>
  ((await http(hub, 'GET', '/services_list')).body as Array<{ service_name: string }>).some((s) => s.service_name === name);

describe('Dialer helpers', () => {
  it('grows the delay from the minimum to the maximum, with jitter', () => {
    expect(backoffDelay(0, 500, 30000, () => 0)).to.equal(250);
    expect(backoffDelay(0, 500, 30000, () => 1)).to.equal(500);
    expect(backoffDelay(3, 500, 30000, () => 1)).to.equal(4000);
    expect(backoffDelay(20, 500, 30000, () => 1)).to.equal(30000);
  });
  it('turns a base URL into its WebSocket URL', () => {
    expect(wsUrlOf('http://10.0.0.5:9001')).to.equal('ws://10.0.0.5:9001/ws');
    expect(wsUrlOf('https://w.example/base/')).to.equal('wss://w.example/base/ws');
  });
});

forEachDatabase('Dialer', (dbUrl) => {
  let hub: TestHub;
  let db: Knex;
  let worker: DialableWorker | null = null;
  beforeEach(async () => {
    const url = await dbUrl();
    hub = await startHub({ db: url, dialerPollMs: 100, dialMinDelayMs: 50, dialMaxDelayMs: 200, dialSecret: 'dial-secret' });
    db = openDb(url);
  });
  afterEach(async () => {
    await worker?.stop();
    worker = null;
    await hub.close();
    await db.destroy();
  });

  it('dials a listed worker, follows it going away and coming back, and stops when removed', async () => {
    const name = `dialed_${Date.now()}`;
    worker = await dialableWorker(me(name), 0, { secret: 'dial-secret' });
    const port = worker.port;
    await addWorker(db, worker.url);
    await until(listed(hub, name), 'the dialed service to be listed');
    expect(worker.authorizations[0]).to.equal('Bearer dial-secret');
    const id = ((await http(hub, 'GET', '/services_list')).body as Array<{ service_id: number; service_name: string }>).find(
      (s) => s.service_name === name,
    )!.service_id;
    const r = await http(hub, 'POST', '/add_task', { service_id: id, args: [5] });
    expect(r.body).to.include({ status: 'succeeded' });
    expect(r.body.result).to.deep.equal({ x: 5 });

    await worker.stop();
    await until(async () => !(await listed(hub, name)()), 'the service to go');
    worker = await dialableWorker(me(name), port, { secret: 'dial-secret' });
    await until(listed(hub, name), 'the service to come back');
    expect((await http(hub, 'POST', '/add_task', { service_id: id, args: [6] })).body.result).to.deep.equal({ x: 6 });

    await setWorkerEnabled(db, worker.url, false);
    await until(async () => !(await listed(hub, name)()), 'the disabled worker to be dropped');
    await setWorkerEnabled(db, worker.url, true);
    await until(listed(hub, name), 'the enabled worker to be back');
    await removeWorker(db, worker.url);
    await until(async () => !(await listed(hub, name)()), 'the removed worker to be dropped');
    const before = worker.connections;
    await sleep(400);
    expect(worker.connections).to.equal(before);
  });

  it('keeps retrying a worker that is not there yet', async () => {
    const name = `late_${Date.now()}`;
    const probe = await dialableWorker(me(name));
    const port = probe.port;
    await probe.stop();
    await addWorker(db, `http://127.0.0.1:${port}`);
    await sleep(500);
    worker = await dialableWorker(me(name), port, { secret: 'dial-secret' });
    await until(listed(hub, name), 'the late worker to be dialed');
  });
});

describe('Dialer under load', function () {
  this.timeout(60_000);
  it('survives a flapping dialed worker: each task ends exactly once, no connection leaks', async () => {
    const url = tempSqlite();
    const hub = await startHub({ db: url, dialerPollMs: 100, dialMinDelayMs: 20, dialMaxDelayMs: 100, maxAttempts: 5 });
    const db = openDb(url);
    let worker = await dialableWorker(me('flappy'), 0, { delayMs: 20 });
    const port = worker.port;
    try {
      await addWorker(db, worker.url);
      await until(listed(hub, 'flappy'), 'the flappy service');
      const id = ((await http(hub, 'GET', '/services_list')).body as Array<{ service_id: number }>)[0].service_id;
      const c = await fakeClient(hub);
      const total = 200;
      let sent = 0;
      const pump = (async () => {
        while (sent < total) {
          c.send({ type: 'add_task', ref: `t${sent}`, service_id: id, args: [sent], queue_timeout_ms: 20_000 });
          sent++;
          await sleep(5);
        }
      })();
      for (let i = 0; i < 3; i++) {
        await sleep(250);
        await worker.stop();
        await sleep(150);
        worker = await dialableWorker(me('flappy'), port, { delayMs: 20 });
      }
      await pump;
      const endTypes = new Set(['result', 'failed', 'canceled']);
      const endsOf = () => c.received.filter((m) => endTypes.has(m.type));
      await until(async () => new Set(endsOf().map((m) => m.task_id)).size === total, 'every task to end', 30_000);
      await sleep(200);
      expect(endsOf()).to.have.length(total); // exactly one end each
      expect(c.received.filter((m) => m.type === 'result')).to.have.length(total);
      await until(() => hub.app.hub.workerConnections().length === 1, 'the dropped connections to be gone');
      expect(hub.app.hub.workerConnections()).to.have.length(1);
      await c.close();
    } finally {
      await worker.stop();
      await hub.close();
      await db.destroy();
    }
  });
});
