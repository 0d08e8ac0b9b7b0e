/**
 * Webhooks in cluster mode (docs/delivery.md "Where the rows go"): the `completed` delivery of a
 * task is committed by the hub that ends it, with its end row, wherever the task was submitted;
 * the death of the submitting hub, or of the hub running the task, loses none and doubles none.
 * Hub processes on one fresh MariaDB database and the shared NATS; a receiver on 127.0.0.1.
 */
import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import type { Knex } from 'knex';
import { openDb } from '../../server/src/db/index.js';
import {
  HEARTBEAT_MS,
  skipWithoutCluster,
  connectionsSeen,
  http as call,
  testCluster,
  until,
  worker,
  type HubProc,
  type TestCluster,
} from '../helpers/cluster.js';
import type { WsPeer } from '../helpers/ws-peer.js';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const ENV = { HUB_WEBHOOK_SECRET: SECRET, HUB_WEBHOOK_ALLOW_PRIVATE: '1' };

interface Hit {
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('Cluster: webhooks', function () {
  this.timeout(90_000);
  let tc: TestCluster;
  let db: Knex;
  let server: http.Server;
  let hook = '';
  const hits: Hit[] = [];
  const hubs: HubProc[] = [];
  const peers: WsPeer[] = [];

  before(async function () {
    await skipWithoutCluster(this);
    tc = await testCluster();
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        hits.push({ headers: req.headers, body });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    hook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    // The first hub alone: it migrates the database.
    hubs.push(await tc.startHub('wh-a', ENV));
    hubs.push(await tc.startHub('wh-b', ENV));
    db = openDb(tc.db, { log: () => {} });
  });

  afterEach(async () => {
    await Promise.all(peers.splice(0).map((p) => p.close().catch(() => undefined)));
  });

  after(async () => {
    for (const h of hubs) h.proc.kill('SIGKILL');
    await Promise.all(hubs.map((h) => h.proc.exited));
    await db?.destroy();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  });

  const hub = (id: string) => hubs.find((h) => h.id === id)!;
  const kill = async (id: string) => {
    const h = hub(id);
    h.proc.kill('SIGKILL');
    await h.proc.exited;
  };

  /** The signed `completed` bodies received for `taskId` (each checked with the standardwebhooks package). */
  const completedOf = (taskId: string) =>
    hits
      .map(
        (h) =>
          new Webhook(SECRET).verify(h.body, {
            'webhook-id': h.headers['webhook-id'] as string,
            'webhook-timestamp': h.headers['webhook-timestamp'] as string,
            'webhook-signature': h.headers['webhook-signature'] as string,
          }) as Record<string, any>,
      )
      .filter((b) => b.task_id === taskId && b.event === 'completed');

  /** Waits until the task's completed deliveries are all recorded delivered; answers how many rows it has. */
  async function deliveredRows(taskId: string): Promise<number> {
    const rows = await until(
      () => db('webhook_deliveries').where({ task_id: taskId, event: 'completed' }).select('status') as Promise<Array<{ status: string }>>,
      (r) => r.length > 0 && r.every((x) => x.status === 'delivered'),
      10_000,
      'its completed delivery recorded as delivered',
    );
    return rows.length;
  }

  it('sends one completed delivery of a task that ran on another hub, also when its submitting hub died before the end', async () => {
    const wb = await worker(hub('wh-b'), 'wh_routed');
    peers.push(wb);
    const sid = wb.welcome.service_id;
    await connectionsSeen(hub('wh-a'), sid, 1, 'seen on A');
    // Submitted on A, which has no worker of the service: it runs on B.
    const sub = await call(hub('wh-a'), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 1 }, webhook: hook });
    expect(sub.status).to.equal(202);
    const task = await wb.nextOf('task', sub.body.task_id, 5000);
    await kill('wh-a');
    wb.send({ type: 'result', task_id: task.task_id, result: { y: 10 } });
    await until(
      () => completedOf(task.task_id),
      (b) => b.length >= 1,
      15_000,
      'its completed delivery',
    );
    expect(completedOf(task.task_id)[0]).to.deep.include({ status: 'succeeded', result: { y: 10 }, attempts: 1 });
    expect(await deliveredRows(task.task_id)).to.equal(1);
    expect(completedOf(task.task_id)).to.have.length(1);
  });

  it('sends one completed delivery of a task run again elsewhere after the hub running it on its own worker died', async () => {
    hubs.push(await tc.startHub('wh-c', ENV));
    const wb = await worker(hub('wh-b'), 'wh_local');
    peers.push(wb);
    const sid = wb.welcome.service_id;
    await connectionsSeen(hub('wh-c'), sid, 1, 'seen on C');
    // Submitted on B, whose own worker is idle: it runs on B without the work queue.
    const sub = await call(hub('wh-b'), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 2 }, webhook: hook });
    expect(sub.status).to.equal(202);
    await wb.nextOf('task', sub.body.task_id, 5000);
    const wc = await worker(hub('wh-c'), 'wh_local');
    peers.push(wc);
    await until(
      () => call(hub('wh-c'), 'GET', `/tasks/${sub.body.task_id}`),
      (r) => r.body.status === 'running',
      8000,
      'its row running',
    );
    await kill('wh-b');
    const again = await wc.nextOf('task', sub.body.task_id, 6 * HEARTBEAT_MS + 10_000);
    expect(again.attempt).to.equal(2);
    wc.send({ type: 'result', task_id: sub.body.task_id, result: { y: 20 } });
    await until(
      () => completedOf(sub.body.task_id),
      (b) => b.length >= 1,
      15_000,
      'its completed delivery',
    );
    expect(completedOf(sub.body.task_id)[0]).to.deep.include({ status: 'succeeded', result: { y: 20 }, attempts: 2 });
    expect(await deliveredRows(sub.body.task_id)).to.equal(1);
    expect(completedOf(sub.body.task_id)).to.have.length(1);
  });
});
