/**
 * A task waiting in the cluster's work queue, read and followed from hubs that do not hold it
 * (docs/cluster.md): its submitting hub writes its `queued` row before `accepted`, so that
 * `GET /tasks/{id}`, `subscribe` and a repeat of its Idempotency-Key work on any hub, also once
 * the submitting hub is gone. Three `utils-hub start` processes on one fresh MariaDB database and
 * NATS; skipped, saying why, when either does not answer.
 */
import { expect } from 'chai';
import { client, http, until, useThreeHubs, worker, type HubProc, connectionsSeen } from '../helpers/cluster.js';

describe('cluster: tasks waiting in the work queue, seen from other hubs', function () {
  this.timeout(120_000);
  const { hubs, track } = useThreeHubs('hub');

  const [A, B, C] = [0, 1, 2].map((i) => () => hubs[i]);

  /** A concurrency-1 worker of a new service on B, seen on A, busy with a first task submitted on A. */
  async function busyWorkerOnB(name: string) {
    const wb = track(await worker(B(), name));
    const sid = wb.welcome.service_id as number;
    await connectionsSeen(A(), sid, 1, 'seen on A');
    const first = await http(A(), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 1 } });
    const running = await wb.nextOf('task', first.body.task_id, 5000);
    return { wb, sid, running };
  }

  it('reads a task waiting in the queue as queued on a third hub, then as ended', async () => {
    const { wb, sid, running } = await busyWorkerOnB('q_get');
    const waiting = await http(A(), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 2 } });
    expect(waiting.status).to.equal(202);
    // HUB_COMMIT=stored (the default): the row is there when the 202 is.
    const seen = await http(C(), 'GET', `/tasks/${waiting.body.task_id}`);
    expect(seen.status).to.equal(200);
    expect(seen.body).to.include({ task_id: waiting.body.task_id, status: 'queued', attempts: 0 });
    wb.send({ type: 'result', task_id: running.task_id, result: { y: 1 } });
    const next = await wb.nextOf('task', waiting.body.task_id, 5000);
    wb.send({ type: 'result', task_id: next.task_id, result: { y: 2 } });
    const done = await until(
      () => http(C(), 'GET', `/tasks/${waiting.body.task_id}`),
      (r) => r.body.status === 'succeeded',
      5000,
      'succeeded on C',
    );
    expect(done.body).to.deep.include({ attempts: 1, result: { y: 2 } });
  });

  it('answers a waiting REST repeat of an Idempotency-Key on another hub with the end of the task running elsewhere', async () => {
    const { wb, sid, running } = await busyWorkerOnB('q_key');
    const key = `k-${Date.now()}`;
    const post = (hub: HubProc, wait: boolean) =>
      fetch(`${hub.url}/add_task${wait ? '' : '?wait=false'}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify({ service_id: sid, args: { x: 3 } }),
      });
    const first = await post(A(), false);
    expect(first.status).to.equal(202);
    const taskId = ((await first.json()) as { task_id: string }).task_id;
    // While it waits in the queue: a repeat with wait on C follows it there.
    const repeatQueued = post(C(), true);
    await new Promise((r) => setTimeout(r, 300));
    wb.send({ type: 'result', task_id: running.task_id, result: { y: 1 } });
    const task = await wb.nextOf('task', taskId, 5000);
    // While it runs on B: a repeat with wait on C again.
    const repeatRunning = post(C(), true);
    await new Promise((r) => setTimeout(r, 300));
    wb.send({ type: 'result', task_id: task.task_id, result: { y: 30 } });
    for (const res of await Promise.all([repeatQueued, repeatRunning])) {
      expect(res.status).to.equal(200);
      expect(res.headers.get('idempotent-replayed')).to.equal('true');
      expect(await res.json()).to.deep.include({ task_id: taskId, status: 'succeeded', result: { y: 30 } });
    }
    // Run once: no second `task` message for it (the first was taken above).
    expect(wb.received.filter((m) => m.type === 'task' && m.task_id === taskId)).to.have.length(0);
  });

  it('lets a client on a third hub follow a waiting task whose submitting hub was killed, to its one end', async () => {
    const { wb, sid, running } = await busyWorkerOnB('q_orphan');
    const waiting = await http(A(), 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 4 } });
    expect(waiting.status).to.equal(202);
    A().proc.kill('SIGKILL');
    await A().proc.exited;
    // No hub holds it now: only its row and the work queue know it.
    expect((await http(C(), 'GET', `/tasks/${waiting.body.task_id}`)).body.status).to.equal('queued');
    const k = track(await client(C()));
    k.send({ type: 'subscribe', task_id: waiting.body.task_id });
    const snap = await k.nextOf('snapshot', waiting.body.task_id, 5000);
    expect(snap).to.include({ status: 'queued', seq: 0 });
    wb.send({ type: 'result', task_id: running.task_id, result: { y: 1 } });
    const task = await wb.nextOf('task', waiting.body.task_id, 5000);
    expect((await k.nextOf('started', task.task_id, 5000)).attempt).to.equal(1);
    wb.send({ type: 'result', task_id: task.task_id, result: { y: 40 } });
    const end = await k.nextOf('result', task.task_id, 5000);
    expect(end.result).to.deep.equal({ y: 40 });
    await new Promise((r) => setTimeout(r, 1500));
    // One end: nothing more of it after the one taken above (the relay's and the row's are one).
    expect(k.received.filter((m) => m.task_id === task.task_id && ['result', 'failed', 'canceled'].includes(m.type as string))).to.have.length(0);
  });
});
