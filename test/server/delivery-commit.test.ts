/**
 * Where a keyed submit's and a webhook's rows are written (docs/delivery.md, "Where the rows
 * go"): on a database the task store reaches from its writer thread (SQLite on a file, MariaDB),
 * no statement of `idempotency_keys` or `webhook_deliveries` runs on the hub's own connection
 * (on SQLite, a synchronous call on the event loop), and a task's `completed` delivery is
 * committed by the time its end is acknowledged.
 */
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { startHub, fakeWorker, fakeClient, http as call, me, sleep, type TestHub } from '../helpers/hub.js';
import { dbBackends } from '../helpers/db.js';
import { openDb } from '../../server/src/db/index.js';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const backends = await dbBackends();

for (const backend of backends) {
  backend.describe(`Delivery rows on the writer thread (${backend.name})`, () => {
    let hub: TestHub | null = null;
    let db: Knex | null = null;
    /** Another connection, for the test's own reads. */
    let reader: Knex | null = null;
    let receiver: http.Server | null = null;
    let received = 0;
    let url = '';
    const statements: string[] = [];
    beforeEach(async () => {
      received = 0;
      statements.length = 0;
      receiver = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          received++;
          res.writeHead(200).end();
        });
      });
      await new Promise<void>((r) => receiver!.listen(0, '127.0.0.1', () => r()));
      url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
      const dbUrl = await backend.freshDatabase();
      db = openDb(dbUrl, { log: () => {} });
      hub = await startHub({ knex: db, webhookSecret: SECRET, webhookAllowPrivate: true });
      db.on('query', (q: { sql: string }) => statements.push(q.sql));
      reader = openDb(dbUrl, { log: () => {} });
    });
    afterEach(async () => {
      await hub?.close();
      await db?.destroy();
      await reader?.destroy();
      await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
      hub = db = reader = receiver = null;
    });

    /** The statements seen so far on the hub's connection that touch the delivery tables. */
    const deliveryStatements = () => statements.filter((s) => /idempotency_keys|webhook_deliveries/.test(s));

    it('claims keys and writes, leases and updates deliveries off the hub connection; the completed row is committed with the end', async () => {
      const w = await fakeWorker(hub!, me('commit_hook'), { concurrency: 4 });
      const c = await fakeClient(hub!);
      const serviceId = w.welcome.service_id;
      c.send({
        type: 'add_task',
        ref: 'a',
        service_id: serviceId,
        args: [1],
        idempotency_key: 'key-a',
        webhook: url,
        webhook_events: ['started', 'completed'],
      });
      const acc = await c.nextOf('accepted');
      const t = await w.nextOf('task');
      w.send({ type: 'result', task_id: t.task_id, result: { n: 1 } });
      await c.nextOf('result', acc.task_id);
      // Acknowledged: the end row and its delivery are in the database.
      const rows = (await reader!('webhook_deliveries').where({ task_id: acc.task_id, event: 'completed' })) as unknown[];
      expect(rows).to.have.length(1);
      expect((await reader!('tasks').where({ id: acc.task_id }).first()).status).to.equal('succeeded');

      // REST, waiting, and a repeat of the key: the same task.
      const rest = call(hub!, 'POST', '/add_task', { service_id: serviceId, args: [2], webhook: url }, { 'idempotency-key': '"key-b"' });
      const t2 = await w.nextOf('task');
      const again = call(hub!, 'POST', '/add_task?wait=false', { service_id: serviceId, args: [2] }, { 'idempotency-key': '"key-b"' });
      expect((await again).body).to.deep.include({ task_id: t2.task_id, duplicate: true });
      w.send({ type: 'result', task_id: t2.task_id, result: { n: 2 } });
      expect((await rest).status).to.equal(200);
      const mismatch = await call(hub!, 'POST', '/add_task?wait=false', { service_id: serviceId, args: [3] }, { 'idempotency-key': '"key-b"' });
      expect([mismatch.status, mismatch.body.error.code]).to.deep.equal([422, 'idempotency_mismatch']);

      // started + completed of the first task, completed of the second: sent, and their outcomes written.
      const until = Date.now() + 10_000;
      while (received < 3 && Date.now() < until) await sleep(20);
      expect(received).to.equal(3);
      let delivered = 0;
      while (delivered < 3 && Date.now() < until) {
        await sleep(20);
        delivered = Number(((await reader!('webhook_deliveries').where({ status: 'delivered' }).count({ n: '*' })) as Array<{ n: number | string }>)[0].n);
      }
      expect(delivered).to.equal(3);
      expect(deliveryStatements()).to.deep.equal([]);
      await c.close();
      await w.close();
    });
  });
}
