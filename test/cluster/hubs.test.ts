/**
 * Cluster mode with real processes (docs/cluster.md, docs/protocol.md section 11): three
 * `utils-hub start` processes on one fresh MariaDB database and the NATS server, under a cluster
 * name of their own, with raw WebSocket workers and clients in this process so that the test
 * decides when a worker is busy and when it answers. Skipped, saying why, when MariaDB or NATS
 * does not answer.
 */
import { expect } from 'chai';
import mysql from 'mysql2/promise';
import { NATS_URL } from '../helpers/nats.js';
import { run, CLI } from '../helpers/processes.js';
import type { WsPeer, Msg } from '../helpers/ws-peer.js';
import { tcpProxy } from '../helpers/tcp-proxy.js';
import { dialableWorker } from '../helpers/dialable-worker.js';
import { client, http, me, until, useThreeHubs, worker, HEARTBEAT_MS, type HubProc, connectionsSeen } from '../helpers/cluster.js';

describe('cluster: three hub processes on one MariaDB and NATS', function () {
  this.timeout(120_000);
  const { cluster, hubs, track } = useThreeHubs('hub');
  const startHub = (id: string, env: Record<string, string> = {}): Promise<HubProc> => cluster().startHub(id, env);

  const [A, B, C] = [0, 1, 2].map((i) => () => hubs[i]);

  it('refuses HUB_BROKER with a SQLite database at start, saying why', async () => {
    const p = run(process.execPath, [CLI, 'start', '--port', '0', '--db', 'sqlite::memory:'], { HUB_BROKER: NATS_URL });
    expect(await p.exited).to.equal(2);
    expect(p.output()).to.match(/HUB_DB: cluster mode \(HUB_BROKER\) needs a MySQL\/MariaDB database/);
  });

  it("lists every hub's live services on every hub (one view)", async () => {
    const w = track(await worker(A(), 'cl_view', 3));
    for (const h of [A(), B(), C()]) {
      const list = await until(
        () => http(h, 'GET', '/services_list'),
        (r) => r.body.some((s: Msg) => s.service_name === 'cl_view'),
        8000,
        `cl_view on ${h.id}`,
      );
      expect(list.body.find((s: Msg) => s.service_name === 'cl_view').service_id).to.equal(w.welcome.service_id);
    }
    expect((await http(C(), 'GET', '/healthz')).body).to.deep.equal({ status: 'ok', hub_id: 'hub-c' });
    const info = await http(C(), 'GET', `/service_info/${w.welcome.service_id}`);
    expect(info.status).to.equal(200);
    expect(info.body).to.include({ service_name: 'cl_view', connections: 1 });
    // A client on C is told of it too.
    const k = track(await client(C()));
    await k.close();
    await w.close();
    await until(
      () => http(B(), 'GET', '/services_list'),
      (r) => !r.body.some((s: Msg) => s.service_name === 'cl_view'),
      5000,
      'cl_view gone on B',
    );
  });

  it('sends a task to an idle worker on another hub at once when the local one is busy, and its end back', async () => {
    const wa = track(await worker(A(), 'cl_least'));
    const wb = track(await worker(B(), 'cl_least'));
    const sid = wa.welcome.service_id;
    await connectionsSeen(A(), sid, 2, 'both connections seen on A');
    // The first task: A's own worker is as idle as any, so it stays on A.
    const first = await http(A(), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 1 } });
    expect(first.status).to.equal(202);
    const t1 = await wa.nextOf('task', first.body.task_id, 5000);
    // The second: A's worker is busy, B's idle: it goes to B at once.
    const t0 = Date.now();
    const second = http(A(), 'POST', '/add_task', { service_id: sid, args: { x: 2 } });
    const t2 = await wb.nextOf('task', undefined, 5000);
    const ms = Date.now() - t0;
    expect(t2.args).to.deep.equal({ x: 2 });
    expect(ms).to.be.below(1000);
    wb.send({ type: 'result', task_id: t2.task_id, result: { y: 20 } });
    const answer = await second;
    expect(answer.status).to.equal(200);
    expect(answer.body).to.deep.include({ task_id: t2.task_id, status: 'succeeded', result: { y: 20 } });
    wa.send({ type: 'result', task_id: t1.task_id, result: { y: 10 } });
    expect(wa.received.filter((m) => m.type === 'task')).to.have.length(0);
    console.log(`      (task reached the idle worker on the other hub in ${ms} ms)`);
  });

  it('spreads 8 slow tasks 4 and 4 over two concurrency-4 workers on different hubs, none waiting', async () => {
    const wa = track(await worker(A(), 'cl_spread', 4));
    const wb = track(await worker(B(), 'cl_spread', 4));
    const sid = wa.welcome.service_id;
    await connectionsSeen(A(), sid, 2, 'both seen on A');
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await http(A(), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: i } })).body.task_id);
    const count = (w: WsPeer) => w.received.filter((m) => m.type === 'task').length;
    await until(
      () => [count(wa), count(wb)],
      ([a, b]) => a + b === 8,
      5000,
      'all 8 running',
    );
    expect([count(wa), count(wb)]).to.deep.equal([4, 4]);
    for (const w of [wa, wb]) for (const t of w.received.filter((m) => m.type === 'task')) w.send({ type: 'result', task_id: t.task_id, result: { ok: 1 } });
    for (const id of ids)
      await until(
        () => http(C(), 'GET', `/tasks/${id}`),
        (r) => r.body.status === 'succeeded',
        8000,
        `${id} succeeded`,
      );
  });

  it("brings a task's events to its client on another hub and to a subscriber on a third, and its cancel to the worker", async () => {
    const wb = track(await worker(B(), 'cl_events'));
    const sid = wb.welcome.service_id;
    await connectionsSeen(A(), sid, 1, "B's worker seen on A");
    const k = track(await client(A()));
    k.send({ type: 'add_task', service_id: sid, args: { x: 3 }, ref: 'r1' });
    const accepted = await k.nextOf('accepted');
    const task = await wb.nextOf('task', accepted.task_id, 5000);
    const started = await k.nextOf('started', task.task_id, 5000);
    expect(started.attempt).to.equal(1);
    wb.send({ type: 'progress', task_id: task.task_id, progress: 0.5, message: 'half' });
    const progress = await k.nextOf('progress', task.task_id, 5000);
    expect(progress).to.include({ progress: 0.5, message: 'half', seq: started.seq + 1 });
    // GET on a third hub reads the running task.
    const view = await until(
      () => http(C(), 'GET', `/tasks/${task.task_id}`),
      (r) => r.status === 200 && r.body.status === 'running',
      8000,
      'running on C',
    );
    expect(view.body).to.include({ service_id: sid, attempts: 1 });
    // A client on the third hub subscribes: the state now, then what follows.
    const kc = track(await client(C()));
    kc.send({ type: 'subscribe', task_id: task.task_id });
    const snap = await kc.nextOf('snapshot', task.task_id, 5000);
    expect(snap).to.include({ status: 'running', seq: progress.seq, progress: 0.5, message: 'half' });
    wb.send({ type: 'progress', task_id: task.task_id, progress: 0.75 });
    const p2 = await k.nextOf('progress', task.task_id, 5000);
    expect((await kc.nextOf('progress', task.task_id, 5000)).seq).to.equal(p2.seq);
    k.send({ type: 'cancel', task_id: task.task_id });
    const cancel = await wb.nextOf('cancel', task.task_id, 5000);
    expect(cancel.reason).to.equal('client');
    const end = await k.nextOf('canceled', task.task_id, 5000);
    expect(end.seq).to.equal(p2.seq + 1);
    expect((await kc.nextOf('canceled', task.task_id, 5000)).seq).to.equal(end.seq);
    expect(kc.received.filter((m) => m.task_id === task.task_id)).to.have.length(0);
    const ended = await until(
      () => http(C(), 'GET', `/tasks/${task.task_id}`),
      (r) => r.status === 200 && r.body.status === 'canceled',
      8000,
      'canceled on C',
    );
    expect(ended.body.finished_at).to.be.a('string');
    // Once ended, a subscribe on a hub that never held it gets the end again, with its seq.
    const late = track(await client(C()));
    late.send({ type: 'subscribe', task_id: task.task_id });
    expect((await late.nextOf('canceled', task.task_id, 5000)).seq).to.equal(end.seq);
  });

  it("ends a task waiting in the cluster's queue when canceled from its hub, without running it", async () => {
    const wb = track(await worker(B(), 'cl_wait'));
    const sid = wb.welcome.service_id;
    await connectionsSeen(A(), sid, 1, 'seen on A');
    const busy = await http(A(), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 1 } });
    const running = await wb.nextOf('task', busy.body.task_id, 5000);
    const waiting = await http(A(), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 2 } });
    expect(waiting.status).to.equal(202);
    const del = await http(A(), 'DELETE', `/tasks/${waiting.body.task_id}`);
    expect(del.status).to.equal(200);
    expect(del.body.status).to.equal('canceled');
    wb.send({ type: 'result', task_id: running.task_id, result: { y: 1 } });
    await new Promise((r) => setTimeout(r, 300));
    expect(wb.received.filter((m) => m.type === 'task')).to.have.length(0);
  });

  it('answers /readyz 503 while the broker is unreachable, goes on with its own workers, refuses the rest with unavailable, and recovers', async () => {
    const [host, port] = NATS_URL.replace('nats://', '').split(':');
    const proxy = await tcpProxy(host, Number(port));
    const d = await startHub('hub-d', { HUB_BROKER: `nats://127.0.0.1:${proxy.port}` });
    try {
      expect((await http(d, 'GET', '/readyz')).status).to.equal(200);
      const wd = track(await worker(d, 'cl_lost_local'));
      const elsewhere = track(await worker(A(), 'cl_lost_remote'));
      await until(
        () => http(d, 'GET', '/services_list'),
        (r) => r.body.some((s: Msg) => s.service_name === 'cl_lost_remote'),
        8000,
        "A's service seen on D",
      );
      await proxy.cut();
      const down = await until(
        () => http(d, 'GET', '/readyz'),
        (r) => r.status === 503,
        8000,
        'readyz 503',
      );
      expect(down.body.reason).to.match(/broker/);
      // Work for D's own worker goes on.
      const local = http(d, 'POST', '/add_task', { service_id: wd.welcome.service_id, args: { x: 1 } });
      const t = await wd.nextOf('task', undefined, 5000);
      wd.send({ type: 'result', task_id: t.task_id, result: { ok: true } });
      expect((await local).body).to.deep.include({ status: 'succeeded', result: { ok: true } });
      // What needs another hub is refused, saying why.
      const remote = await http(d, 'POST', '/add_task?wait=false', { service_id: elsewhere.welcome.service_id, args: { x: 1 } });
      expect(remote.status).to.equal(503);
      expect(remote.body.error.code).to.equal('unavailable');
      await proxy.restore();
      await until(
        () => http(d, 'GET', '/readyz'),
        (r) => r.status === 200,
        15_000,
        'readyz 200 again',
      );
      // And once back, it reaches the other hub's worker again.
      const again = http(d, 'POST', '/add_task', { service_id: elsewhere.welcome.service_id, args: { x: 2 } });
      const t2 = await elsewhere.nextOf('task', undefined, 8000);
      elsewhere.send({ type: 'result', task_id: t2.task_id, result: { ok: 2 } });
      expect((await again).body).to.deep.include({ status: 'succeeded', result: { ok: 2 } });
    } finally {
      d.proc.kill('SIGKILL');
      await d.proc.exited;
      await proxy.close();
    }
  });

  it('has each listed worker dialed by exactly one hub, and another hub dials it when that one dies', async () => {
    const dw = await dialableWorker(me('cl_dialed'));
    const admin = await mysql.createConnection({ uri: cluster().db });
    try {
      await admin.query('INSERT INTO workers (url, enabled, created_at) VALUES (?, 1, ?)', [dw.url, Date.now()]);
      await until(
        () => dw.connections,
        (n) => n >= 1,
        10_000,
        'dialed',
      );
      // Which hubs dial it: those whose own overview lists a dialed connection held by itself (the
      // overview lists the other hubs' connections too). Exactly one, each time we look over
      // several heartbeats (leases are renewed, never shared).
      const dialsIt = (o: { services: Array<{ connections: Array<{ dialed: boolean; hub_id: string }> }> }, id: string) =>
        o.services.some((s) => s.connections.some((c) => c.dialed && c.hub_id === id));
      const dialers = async () => {
        const out: HubProc[] = [];
        for (const h of hubs) if (dialsIt((await http(h, 'GET', '/api/overview')).body, h.id)) out.push(h);
        return out;
      };
      let holder: HubProc | null = null;
      for (let i = 0; i < 6; i++) {
        const now = await until(dialers, (d) => d.length > 0, 5000, 'a dialing hub');
        expect(
          now.map((h) => h.id),
          'hubs dialing it',
        ).to.have.length(1);
        holder ??= now[0];
        expect(now[0].id).to.equal(holder.id);
        await new Promise((r) => setTimeout(r, HEARTBEAT_MS));
      }
      holder!.proc.kill('SIGKILL');
      await holder!.proc.exited;
      hubs.splice(hubs.indexOf(holder!), 1, await startHub(`${holder!.id}-2`));
      const after = await until(dialers, (d) => d.length > 0, 20_000, 'dialed again by another hub');
      expect(after.map((h) => h.id)).to.have.length(1);
    } finally {
      await admin.query('DELETE FROM workers').catch(() => undefined);
      await admin.end();
      await dw.stop();
    }
  });

  it('runs a task again on another hub when the hub running it is killed: started attempt 2, one end', async () => {
    const wb = track(await worker(B(), 'cl_kill'));
    const wc = track(await worker(C(), 'cl_kill'));
    const sid = wb.welcome.service_id;
    await connectionsSeen(A(), sid, 2, 'both seen on A');
    const k = track(await client(A()));
    k.send({ type: 'add_task', service_id: sid, args: { x: 5 } });
    const accepted = await k.nextOf('accepted');
    const first = await k.nextOf('started', accepted.task_id, 5000);
    expect(first.attempt).to.equal(1);
    const holderIsB = wb.received.some((m) => m.type === 'task') || !wc.received.some((m) => m.type === 'task');
    const [holder, other, otherWorker] = holderIsB ? [B(), C(), wc] : [C(), B(), wb];
    holder.proc.kill('SIGKILL');
    await holder.proc.exited;
    const t0 = Date.now();
    const again = await otherWorker.nextOf('task', accepted.task_id, 3 * HEARTBEAT_MS + 5000);
    console.log(`      (attempt 2 started ${Date.now() - t0} ms after the SIGKILL)`);
    expect(again.attempt).to.equal(2);
    const second = await k.nextOf('started', accepted.task_id, 5000);
    expect(second.attempt).to.equal(2);
    expect(second.seq).to.be.above(first.seq);
    otherWorker.send({ type: 'result', task_id: accepted.task_id, result: { y: 50 } });
    const end = await k.nextOf('result', accepted.task_id, 5000);
    expect(end.result).to.deep.equal({ y: 50 });
    await new Promise((r) => setTimeout(r, 500));
    expect(k.received.filter((m) => m.task_id === accepted.task_id && ['result', 'failed', 'canceled'].includes(m.type))).to.have.length(0);
    const view = await until(
      () => http(other, 'GET', `/tasks/${accepted.task_id}`),
      (r) => r.body.status === 'succeeded',
      5000,
      'succeeded',
    );
    expect(view.body.attempts).to.equal(2);
    hubs.splice(hubs.indexOf(holder), 1, await startHub(`${holder.id}-2`));
  });

  it('runs a task again elsewhere when the hub that ran it on its own worker is killed', async () => {
    const wb = track(await worker(B(), 'cl_local'));
    const sid = wb.welcome.service_id;
    await connectionsSeen(C(), sid, 1, 'seen on C');
    // Submitted on B, whose own worker is idle: it runs on B without the work queue.
    const sub = await http(B(), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 7 } });
    const first = await wb.nextOf('task', sub.body.task_id, 5000);
    expect(first.attempt).to.equal(1);
    const wc = track(await worker(C(), 'cl_local'));
    await until(
      () => http(C(), 'GET', `/tasks/${sub.body.task_id}`),
      (r) => r.body.status === 'running',
      8000,
      'its row running',
    );
    const holder = B();
    holder.proc.kill('SIGKILL');
    await holder.proc.exited;
    const t0 = Date.now();
    const again = await wc.nextOf('task', sub.body.task_id, 6 * HEARTBEAT_MS + 10_000);
    console.log(`      (taken over and started again ${Date.now() - t0} ms after the SIGKILL)`);
    expect(again.attempt).to.equal(2);
    wc.send({ type: 'result', task_id: sub.body.task_id, result: { y: 70 } });
    const v = await until(
      () => http(C(), 'GET', `/tasks/${sub.body.task_id}`),
      (r) => r.body.status === 'succeeded',
      8000,
      'succeeded on C',
    );
    expect(v.body).to.deep.include({ attempts: 2, result: { y: 70 } });
    hubs.splice(hubs.indexOf(holder), 1, await startHub(`${holder.id}-3`));
  });

  it('ends a task whose submitting hub was killed, and its end is readable on the others', async () => {
    const wb = track(await worker(B(), 'cl_submitter'));
    const sid = wb.welcome.service_id;
    await connectionsSeen(A(), sid, 1, 'seen on A');
    const sub = await http(A(), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 6 } });
    const task = await wb.nextOf('task', sub.body.task_id, 5000);
    A().proc.kill('SIGKILL');
    await A().proc.exited;
    wb.send({ type: 'result', task_id: task.task_id, result: { y: 60 } });
    for (const h of [B(), C()]) {
      const v = await until(
        () => http(h, 'GET', `/tasks/${task.task_id}`),
        (r) => r.body.status === 'succeeded',
        5000,
        `succeeded on ${h.id}`,
      );
      expect(v.body.result).to.deep.equal({ y: 60 });
    }
  });
});
