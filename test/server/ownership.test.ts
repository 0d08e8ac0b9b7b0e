/**
 * Whose task it is (docs/protocol.md): with client keys, a task belongs to the key that
 * submitted it; other keys read, follow and cancel it as an unknown id, except admin keys; the
 * owner is stored with the task, so it holds after a restart; `?key=` only on WebSocket upgrades.
 */
import { expect } from 'chai';
import { WsPeer } from '../helpers/ws-peer.js';
import { startHub, fakeWorker, http, me, type TestHub } from '../helpers/hub.js';
import { forEachDatabase } from '../helpers/backends.js';
import { openDb, migrate } from '../../server/src/db/index.js';
import { createToken } from '../../server/src/store/tokens.js';

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

forEachDatabase('Whose task it is', (dbUrl) => {
  let hub: TestHub;
  afterEach(() => hub?.close());

  it("answers another key's task as unknown on REST and WebSocket, its owner's and an admin key's as it is, also after a restart", async function () {
    this.timeout(60_000);
    const url = await dbUrl();
    const db = openDb(url);
    await migrate(db);
    const admin = await createToken(db, 'client', `adm_${Date.now()}`, { admin: true });
    const dbKey = await createToken(db, 'client', `plain_${Date.now()}`);
    await db.destroy();
    const options = { db: url, apiKeys: ['key-A', 'key-B'] };
    hub = await startHub(options);

    const worker = await fakeWorker(hub, me(`owned_${Date.now()}`));
    const service_id = worker.welcome.service_id;
    const submit = async (key: string) => {
      const res = await http(hub, 'POST', '/add_task?wait=false', { service_id, args: { x: 1 } }, auth(key));
      expect(res.status).to.equal(202);
      return res.body.task_id as string;
    };
    const notFound = (res: { status: number; body: any }, what: string) => {
      expect(res.status, what).to.equal(404);
      expect(res.body.error.code, what).to.equal('task_not_found');
    };

    // A task of key A, running.
    const a1 = await submit('key-A');
    const t1 = await worker.nextOf('task');
    expect(t1.task_id).to.equal(a1);
    // A second one of key A, to cancel later, queued behind the first.
    const a2 = await submit('key-A');

    for (const other of ['key-B', dbKey]) {
      notFound(await http(hub, 'GET', `/tasks/${a1}`, undefined, auth(other)), `GET by ${other}`);
      notFound(await http(hub, 'DELETE', `/tasks/${a2}`, undefined, auth(other)), `DELETE by ${other}`);
      const peer = await WsPeer.open(`${hub.wsUrl}/client`, auth(other));
      peer.send({ type: 'subscribe', task_id: a1 });
      expect(await peer.next((m) => m.type === 'error' || m.type === 'snapshot')).to.include({ type: 'error', code: 'task_not_found', task_id: a1 });
      peer.send({ type: 'cancel', task_id: a2 });
      expect(await peer.next((m) => m.type === 'error' || m.type === 'canceled')).to.include({ type: 'error', code: 'task_not_found', task_id: a2 });
      await peer.close();
    }
    expect((await http(hub, 'GET', `/tasks/${a2}`, undefined, auth('key-A'))).body.status).to.equal('queued');

    // Its owner sees it, and so does an admin key, which may cancel it too.
    expect((await http(hub, 'GET', `/tasks/${a1}`, undefined, auth('key-A'))).body.status).to.equal('running');
    const viaAdmin = await WsPeer.open(`${hub.wsUrl}/client`, auth(admin));
    viaAdmin.send({ type: 'subscribe', task_id: a1 });
    expect(await viaAdmin.nextOf('snapshot', a1)).to.include({ status: 'running' });
    const canceled = await http(hub, 'DELETE', `/tasks/${a2}`, undefined, auth(admin));
    expect(canceled.status).to.equal(200);
    expect(canceled.body.status).to.equal('canceled');

    // Ended: the same answers.
    worker.send({ type: 'result', task_id: a1, result: 'done' });
    expect(await viaAdmin.nextOf('result', a1)).to.include({ result: 'done' });
    await viaAdmin.close();
    notFound(await http(hub, 'GET', `/tasks/${a1}`, undefined, auth('key-B')), 'GET of an ended task by B');
    expect((await http(hub, 'GET', `/tasks/${a1}`, undefined, auth('key-A'))).body).to.include({ status: 'succeeded', result: 'done' });
    const b1 = await submit('key-B');
    notFound(await http(hub, 'GET', `/tasks/${b1}`, undefined, auth('key-A')), 'GET of B by A');

    // After a restart, read from the database: still owned.
    await worker.close();
    await hub.close();
    hub = await startHub(options);
    notFound(await http(hub, 'GET', `/tasks/${a1}`, undefined, auth('key-B')), 'GET by B after a restart');
    notFound(await http(hub, 'DELETE', `/tasks/${a1}`, undefined, auth('key-B')), 'DELETE by B after a restart');
    expect((await http(hub, 'GET', `/tasks/${a1}`, undefined, auth('key-A'))).body).to.include({ status: 'succeeded', result: 'done' });
    expect((await http(hub, 'GET', `/tasks/${a1}`, undefined, auth(admin))).body).to.include({ status: 'succeeded' });
    expect((await http(hub, 'DELETE', `/tasks/${a1}`, undefined, auth('key-A'))).body.error.code).to.equal('already_finished');
    // B's task, left unfinished by the stop, reads interrupted for B only.
    expect((await http(hub, 'GET', `/tasks/${b1}`, undefined, auth('key-B'))).body.status).to.equal('failed');
    notFound(await http(hub, 'GET', `/tasks/${b1}`, undefined, auth('key-A')), 'GET of B by A after a restart');
    const peer = await WsPeer.open(`${hub.wsUrl}/client`, auth('key-B'));
    peer.send({ type: 'subscribe', task_id: a1 });
    expect(await peer.next((m) => m.type === 'error' || m.type === 'result')).to.include({ type: 'error', code: 'task_not_found' });
    await peer.close();
  });

  it('takes ?key= on the /client upgrade only: a REST route with ?key= and no header is 401', async () => {
    hub = await startHub({ db: await dbUrl(), apiKeys: ['key-A'] });
    for (const path of ['/services_list', '/tasks/x', '/metrics', '/api/overview']) {
      const res = await http(hub, 'GET', `${path}?key=key-A`);
      expect(res.status, path).to.equal(401);
      expect(res.body.error.code, path).to.equal('unauthorized');
    }
    expect((await http(hub, 'GET', '/services_list', undefined, auth('key-A'))).status).to.equal(200);
    const peer = await WsPeer.open(`${hub.wsUrl}/client?key=key-A`);
    expect((await peer.nextOf('services')).services).to.be.an('array');
    await peer.close();
  });
});
