/**
 * A webhook task's end survives the hub's death (docs/protocol.md section 12: "a restart or the
 * death of a hub loses no delivery"): a real hub process, a worker that never answers, tasks with
 * a `completed` webhook running and waiting; the hub is SIGKILLed and started again on the same
 * database. The restart marks them `failed` `interrupted` and each gets exactly one signed
 * `completed` delivery saying so (committed with its end, docs/delivery.md).
 */
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { dbBackends } from '../helpers/db.js';
import { fakeWorker, me, type TestHub } from '../helpers/hub.js';
import { WsPeer } from '../helpers/ws-peer.js';
import { eventually, until } from '../helpers/wait.js';
import { openDb } from '../../server/src/db/index.js';
import { startHubProcess, type Proc } from '../helpers/processes.js';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;

interface Hit {
  headers: http.IncomingHttpHeaders;
  body: string;
}

const backends = await dbBackends();

for (const backend of backends) {
  backend.describe(`a webhook task left unfinished by SIGKILL (${backend.name})`, function () {
    this.timeout(60_000);
    const closers: Array<() => Promise<unknown>> = [];
    afterEach(async () => {
      for (const c of closers.splice(0).reverse()) await c();
    });

    it('gets one signed completed delivery, failed interrupted, after the restart', async () => {
      const hits: Hit[] = [];
      const receiver = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          hits.push({ headers: req.headers, body });
          res.writeHead(200).end();
        });
      });
      await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
      closers.push(() => new Promise<void>((r) => receiver.close(() => r())));
      const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

      const dbUrl = await backend.freshDatabase();
      const env = { HUB_WEBHOOK_SECRET: SECRET, HUB_WEBHOOK_ALLOW_PRIVATE: '1' };
      const procs: Proc[] = [];
      closers.push(async () => {
        for (const p of procs) {
          p.kill('SIGKILL');
          await p.exited;
        }
      });
      const hub = await startHubProcess(dbUrl, env);
      procs.push(hub);
      // A worker of one slot that never answers: the first task runs, the others wait.
      const worker = await fakeWorker({ wsUrl: hub.url.replace(/^http/, 'ws') } as TestHub, me('never'), { concurrency: 1 });
      closers.push(() => worker.close());
      const serviceId = worker.welcome.service_id as number;

      const post = async (body: object) => {
        const res = await fetch(`${hub.url}/add_task?wait=false`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        expect(res.status).to.equal(202);
        return ((await res.json()) as { task_id: string }).task_id;
      };
      // Running on the worker (REST).
      const running = await post({ service_id: serviceId, args: [1], webhook: hook });
      await worker.nextOf('task');
      // Waiting in the queue, submitted with an idempotency key on a client WebSocket (its queued
      // row is committed with the key's claim).
      const client = await WsPeer.open(`${hub.url.replace(/^http/, 'ws')}/client`);
      closers.push(() => client.close());
      client.send({ type: 'add_task', ref: 'q', service_id: serviceId, args: [2], webhook: hook, idempotency_key: 'crash-1' });
      const queued = (await client.next((m) => m.type === 'accepted')).task_id as string;
      // Waiting too, but asked for `started` only: no `completed` delivery.
      const startedOnly = await post({ service_id: serviceId, args: [3], webhook: hook, webhook_events: ['started'] });

      hub.kill('SIGKILL');
      expect(await hub.exited).to.equal('SIGKILL');
      const again = await startHubProcess(dbUrl, env);
      procs.push(again);

      await until(() => hits.length >= 2, 'two completed deliveries', 15_000);
      const bodies = hits.map((h) =>
        new Webhook(SECRET).verify(h.body, {
          'webhook-id': h.headers['webhook-id'] as string,
          'webhook-timestamp': h.headers['webhook-timestamp'] as string,
          'webhook-signature': h.headers['webhook-signature'] as string,
        }),
      ) as Array<Record<string, any>>;
      expect(bodies.map((b) => b.task_id).sort()).to.deep.equal([running, queued].sort());
      for (const b of bodies) {
        expect(b).to.deep.include({ event: 'completed', status: 'failed', service_id: serviceId });
        expect(b.error.code).to.equal('interrupted');
        // The body is the task as GET /tasks/{id} shows it, plus `event`.
        const view = await (await fetch(`${again.url}/tasks/${b.task_id}`)).json();
        expect({ ...b, event: undefined }).to.deep.equal({ ...(view as object), event: undefined });
      }

      // Each delivered once, and none for the task that asked for `started` only.
      const db = openDb(dbUrl, { log: () => {} });
      closers.push(() => db.destroy());
      const rows = await eventually(
        () => db('webhook_deliveries').where({ event: 'completed' }).select('task_id', 'status') as Promise<Array<{ task_id: string; status: string }>>,
        (r) => r.length >= 2 && r.every((x) => x.status === 'delivered'),
        'the completed deliveries recorded as delivered',
      );
      expect(rows.map((r) => r.task_id).sort()).to.deep.equal([running, queued].sort());
      expect(new Set(hits.map((h) => h.headers['webhook-id'])).size).to.equal(2);
      expect(hits).to.have.length(2);
      expect(((await (await fetch(`${again.url}/tasks/${startedOnly}`)).json()) as { error: { code: string } }).error.code).to.equal('interrupted');
    });
  });
}
