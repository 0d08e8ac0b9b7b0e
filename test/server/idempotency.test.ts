import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { startHub, fakeWorker, fakeClient, http, me, sleep, type TestHub } from '../helpers/hub.js';
import { forEachDatabase } from '../helpers/backends.js';
import { startHubProcess } from '../helpers/processes.js';
import type { Msg } from '../helpers/ws-peer.js';

const key = () => `k-${randomUUID()}`;

forEachDatabase('Idempotency keys', (dbUrl) => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startHub({ db: await dbUrl() });
  });
  afterEach(() => hub.close());

  it('two concurrent POST /add_task with one key make one task, and both get its outcome', async () => {
    const w = await fakeWorker(hub, me('idem_rest'), { concurrency: 4 });
    const k = key();
    const body = { service_id: w.welcome.service_id, args: [7] };
    const headers = { 'idempotency-key': `"${k}"` };
    const a = http(hub, 'POST', '/add_task', body, headers);
    const b = http(hub, 'POST', '/add_task', body, headers);
    const task = await w.nextOf('task');
    await sleep(200); // room for a second task to arrive, if the hub made one
    w.send({ type: 'result', task_id: task.task_id, result: 49 });
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra).to.deep.equal({ status: 200, body: { task_id: task.task_id, status: 'succeeded', result: 49 } });
    expect(rb).to.deep.equal(ra);
    expect(w.received.filter((m) => m.type === 'task')).to.have.length(0);
    // A third, after the end, answers the end at once.
    const res = await fetch(`${hub.url}/add_task`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    expect(res.status).to.equal(200);
    expect(res.headers.get('idempotent-replayed')).to.equal('true');
    expect(await res.json()).to.deep.equal(ra.body);
  });

  it('repeats an error outcome as the first request got it', async () => {
    const w = await fakeWorker(hub, me('idem_fail'));
    const k = key();
    const body = { service_id: w.welcome.service_id, args: { x: 1 } };
    const first = http(hub, 'POST', '/add_task', body, { 'idempotency-key': k });
    const t = await w.nextOf('task');
    w.send({ type: 'failed', task_id: t.task_id, error: { code: 'nope', message: 'no' } });
    const a = await first;
    expect(a.status).to.equal(502);
    const b = await http(hub, 'POST', '/add_task', body, { 'idempotency-key': k });
    expect(b).to.deep.equal(a);
    expect(b.body.error.task_id).to.equal(t.task_id);
  });

  it('same key with other args or another service is 422 idempotency_mismatch; [x] and {x} are the same args', async () => {
    const w = await fakeWorker(hub, me('idem_mm'));
    const w2 = await fakeWorker(hub, me('idem_mm2'));
    const k = key();
    const first = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] }, { 'idempotency-key': k });
    expect(first.status).to.equal(202);
    const same = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: { x: 1 } }, { 'idempotency-key': k });
    expect(same).to.deep.equal({ status: 202, body: { task_id: first.body.task_id, status: 'queued', duplicate: true } });
    const otherArgs = await http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [2] }, { 'idempotency-key': k });
    expect(otherArgs.status).to.equal(422);
    expect(otherArgs.body.error).to.include({ code: 'idempotency_mismatch', task_id: first.body.task_id });
    const otherService = await http(hub, 'POST', '/add_task', { service_id: w2.welcome.service_id, args: [1] }, { 'idempotency-key': k });
    expect(otherService.status).to.equal(422);
    expect(otherService.body.error.code).to.equal('idempotency_mismatch');
    expect((await w.nextOf('task')).task_id).to.equal(first.body.task_id);
    await sleep(100);
    expect(w.received.filter((m) => m.type === 'task')).to.have.length(0);
    expect(w2.received.filter((m) => m.type === 'task')).to.have.length(0);
  });

  it('refuses a malformed Idempotency-Key with 400 bad_request and takes one of 255 characters', async () => {
    const w = await fakeWorker(hub, me('idem_hdr'), { concurrency: 8 });
    const body = { service_id: w.welcome.service_id, args: [1] };
    for (const bad of ['""', '"unterminated', 'x'.repeat(256), '"é"', '"a"b"']) {
      const r = await http(hub, 'POST', '/add_task?wait=false', body, { 'idempotency-key': bad });
      expect(r.status, bad).to.equal(400);
      expect(r.body.error.code).to.equal('bad_request');
    }
    const long = 'y'.repeat(255);
    const a = await http(hub, 'POST', '/add_task?wait=false', body, { 'idempotency-key': long });
    const b = await http(hub, 'POST', '/add_task?wait=false', body, { 'idempotency-key': `"${long}"` });
    expect(a.status).to.equal(202);
    expect(b.body).to.deep.equal({ task_id: a.body.task_id, status: 'queued', duplicate: true });
    // Escapes of the structured-field string are read: "a\"b" is the key a"b.
    const c = await http(hub, 'POST', '/add_task?wait=false', body, { 'idempotency-key': '"a\\"b"' });
    const d = await http(hub, 'POST', '/add_task?wait=false', body, { 'idempotency-key': 'a"b' });
    expect(d.body.task_id).to.equal(c.body.task_id);
  });

  it('/client add_task with idempotency_key: a repeat on another connection is accepted with duplicate: true, then the task state', async () => {
    const w = await fakeWorker(hub, me('idem_ws'));
    const k = key();
    const c1 = await fakeClient(hub);
    const req = { type: 'add_task', ref: 'r1', service_id: w.welcome.service_id, args: [3], idempotency_key: k };
    c1.send(req);
    const acc = await c1.nextOf('accepted');
    expect(acc).to.not.have.property('duplicate');
    const t = await w.nextOf('task');
    expect(t.task_id).to.equal(acc.task_id);
    c1.terminate();
    const c2 = await fakeClient(hub);
    c2.send({ ...req, ref: 'r2' });
    const dup = await c2.nextOf('accepted');
    expect(dup).to.deep.include({ ref: 'r2', task_id: acc.task_id, duplicate: true });
    expect(await c2.nextOf('snapshot', acc.task_id)).to.include({ status: 'running' });
    w.send({ type: 'result', task_id: t.task_id, result: 9 });
    expect(await c2.nextOf('result', acc.task_id)).to.include({ result: 9 });
    // After the end: the end event again.
    const c3 = await fakeClient(hub);
    c3.send({ ...req, ref: 'r3' });
    expect(await c3.nextOf('accepted')).to.deep.include({ task_id: acc.task_id, duplicate: true });
    expect(await c3.nextOf('result', acc.task_id)).to.include({ result: 9 });
    c3.send({ ...req, ref: 'r4', args: [4] });
    const rej = await c3.nextOf('rejected');
    expect(rej).to.deep.include({ ref: 'r4' });
    expect(rej.error.code).to.equal('idempotency_mismatch');
    await sleep(100);
    expect(w.received.filter((m: Msg) => m.type === 'task')).to.have.length(0);
    await c2.close();
    await c3.close();
  });

  it('two concurrent /client add_tasks with one key make one task', async () => {
    const w = await fakeWorker(hub, me('idem_ws2'), { concurrency: 4 });
    const k = key();
    const c = await fakeClient(hub);
    for (const ref of ['a', 'b', 'c']) c.send({ type: 'add_task', ref, service_id: w.welcome.service_id, args: [1], idempotency_key: k });
    const accepted = [
      await c.next((m) => m.type === 'accepted' && m.ref === 'a'),
      await c.next((m) => m.type === 'accepted' && m.ref === 'b'),
      await c.next((m) => m.type === 'accepted' && m.ref === 'c'),
    ];
    expect(new Set(accepted.map((m) => m.task_id)).size).to.equal(1);
    expect(accepted.filter((m) => m.duplicate === true)).to.have.length(2);
    await w.nextOf('task');
    await sleep(150);
    expect(w.received.filter((m) => m.type === 'task')).to.have.length(0);
    await c.close();
  });

  it('keys are scoped to the client key', async () => {
    await hub.close();
    hub = await startHub({ db: await dbUrl(), apiKeys: ['key-one', 'key-two'] });
    const w = await fakeWorker(hub, me('idem_scope'), { concurrency: 4 });
    const k = key();
    const body = { service_id: w.welcome.service_id, args: [1] };
    const one = await http(hub, 'POST', '/add_task?wait=false', body, { 'idempotency-key': k, authorization: 'Bearer key-one' });
    const two = await http(hub, 'POST', '/add_task?wait=false', body, { 'idempotency-key': k, authorization: 'Bearer key-two' });
    const oneAgain = await http(hub, 'POST', '/add_task?wait=false', body, { 'idempotency-key': k, authorization: 'Bearer key-one' });
    expect(one.status).to.equal(202);
    expect(two.status).to.equal(202);
    expect(two.body.task_id).to.not.equal(one.body.task_id);
    expect(oneAgain.body).to.deep.equal({ task_id: one.body.task_id, status: 'queued', duplicate: true });
    // The same scope over /client (key in the upgrade).
    const c = await fakeClient(hub, { authorization: 'Bearer key-two' });
    c.send({ type: 'add_task', service_id: w.welcome.service_id, args: [1], idempotency_key: k });
    expect(await c.nextOf('accepted')).to.deep.include({ task_id: two.body.task_id, duplicate: true });
    await c.close();
  });

  it('two hubs on one database agree on one task per key (the database decides)', async () => {
    const url = await dbUrl();
    const other = await startHub({ db: url });
    try {
      await hub.close();
      hub = await startHub({ db: url });
      const wa = await fakeWorker(hub, me('idem_two'), { concurrency: 8 });
      const wb = await fakeWorker(other, me('idem_two'), { concurrency: 8 });
      const k = key();
      const body = { service_id: wa.welcome.service_id, args: [5] };
      const answers = await Promise.all([
        http(hub, 'POST', '/add_task?wait=false', body, { 'idempotency-key': k }),
        http(other, 'POST', '/add_task?wait=false', body, { 'idempotency-key': k }),
        http(hub, 'POST', '/add_task?wait=false', body, { 'idempotency-key': k }),
        http(other, 'POST', '/add_task?wait=false', body, { 'idempotency-key': k }),
      ]);
      expect(answers.map((a) => a.status)).to.deep.equal([202, 202, 202, 202]);
      expect(new Set(answers.map((a) => a.body.task_id)).size).to.equal(1);
      expect(answers.filter((a) => a.body.duplicate === true)).to.have.length(3);
      await sleep(300);
      expect(wa.received.filter((m) => m.type === 'task').length + wb.received.filter((m) => m.type === 'task').length).to.equal(1);
    } finally {
      await other.close();
    }
  });

  it('a key outlives a restart of the hub process', async function () {
    this.timeout(60_000);
    const url = await dbUrl();
    await hub.close();
    let proc = await startHubProcess(url);
    try {
      const ws = await fakeWorker({ url: proc.url, wsUrl: proc.url.replace(/^http/, 'ws') } as TestHub, me('idem_restart'));
      const k = key();
      const body = { service_id: ws.welcome.service_id, args: [2] };
      const target = { url: proc.url } as TestHub;
      const done = http(target, 'POST', '/add_task', body, { 'idempotency-key': k });
      const t = await ws.nextOf('task');
      ws.send({ type: 'result', task_id: t.task_id, result: 'once' });
      expect((await done).body).to.deep.equal({ task_id: t.task_id, status: 'succeeded', result: 'once' });
      const pending = await http(target, 'POST', '/add_task?wait=false', { ...body, args: [3] }, { 'idempotency-key': `${k}-2` });
      await ws.nextOf('task');
      await ws.close();
      proc.kill('SIGTERM');
      expect(await proc.exited).to.equal(0);
      proc = await startHubProcess(url);
      const again = { url: proc.url } as TestHub;
      const w2 = await fakeWorker({ url: proc.url, wsUrl: proc.url.replace(/^http/, 'ws') } as TestHub, me('idem_restart'));
      const res = await fetch(`${proc.url}/add_task`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': k },
        body: JSON.stringify(body),
      });
      expect(res.headers.get('idempotent-replayed')).to.equal('true');
      expect(await res.json()).to.deep.equal({ task_id: t.task_id, status: 'succeeded', result: 'once' });
      // The task the stop cut short is the key's task still: its end, not a second run.
      const cut = await http(again, 'POST', '/add_task', { ...body, args: [3] }, { 'idempotency-key': `${k}-2` });
      expect(cut.status).to.equal(503);
      expect(cut.body.error.task_id).to.equal(pending.body.task_id);
      const mm = await http(again, 'POST', '/add_task', { ...body, args: [4] }, { 'idempotency-key': k });
      expect(mm.status).to.equal(422);
      await sleep(100);
      expect(w2.received.filter((m) => m.type === 'task')).to.have.length(0);
      await w2.close();
    } finally {
      proc.kill('SIGTERM');
      await proc.exited;
    }
  });
});
