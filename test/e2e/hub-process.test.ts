import { expect } from 'chai';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WsPeer } from '../helpers/ws-peer.js';
import { me, sleep } from '../helpers/hub.js';
import { run, CLI, startHubProcess } from '../helpers/processes.js';
import { openDb } from '../../server/src/db/open.js';

const sqlite = () => `sqlite:${join(mkdtempSync(join(tmpdir(), 'uh-e2e-')), 'hub.sqlite')}`;

async function get(url: string, path: string) {
  const res = await fetch(`${url}${path}`);
  return { status: res.status, body: (await res.json()) as any };
}

/** Waits, up to 15 s, until the `tasks` table of `db` holds each task with the given status. */
async function rowsWritten(db: string, statuses: Record<string, string>): Promise<void> {
  const knex = openDb(db);
  try {
    const until = Date.now() + 15_000;
    for (;;) {
      const rows = (await knex('tasks').whereIn('id', Object.keys(statuses)).select('id', 'status')) as { id: string; status: string }[];
      if (Object.entries(statuses).every(([id, status]) => rows.some((r) => r.id === id && r.status === status))) return;
      if (Date.now() > until) throw new Error(`the task rows were not written in time: ${JSON.stringify(rows)}`);
      await sleep(25);
    }
  } finally {
    await knex.destroy();
  }
}

async function worker(url: string, name: string) {
  const w = await WsPeer.open(`${url.replace(/^http/, 'ws')}/worker`);
  w.send({ type: 'hello', protocol: 1, me: me(name) });
  return Object.assign(w, { welcome: await w.nextOf('welcome') });
}

describe('utils-hub start (a real process)', function () {
  this.timeout(60_000);

  it('prints its listening line and serves', async () => {
    const hub = await startHubProcess(sqlite());
    expect(hub.url).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await get(hub.url, '/services_list')).body).to.deep.equal([]);
    hub.kill('SIGTERM');
    expect(await hub.exited).to.equal(0);
  });

  it('refuses a bad option naming it, with a non-zero exit', async () => {
    const p = run(process.execPath, [CLI, 'start', '--port', 'eighty'], {});
    expect(await p.exited).to.not.equal(0);
    expect(p.output()).to.match(/port/i);
    const q = run(process.execPath, [CLI, 'start'], { HUB_QUEUE_LIMIT: '-5', HUB_DB: sqlite() });
    expect(await q.exited).to.not.equal(0);
    expect(q.output()).to.include('HUB_QUEUE_LIMIT');
  });

  it('after SIGKILL, unfinished tasks read failed/interrupted and ended ones as they ended', async () => {
    const db = sqlite();
    const hub = await startHubProcess(db);
    const w = await worker(hub.url, 'crash_svc');
    const done = fetch(`${hub.url}/add_task`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ service_id: w.welcome.service_id, args: [1] }),
    });
    const t1 = await w.nextOf('task');
    w.send({ type: 'result', task_id: t1.task_id, result: 'first' });
    expect((await done).status).to.equal(200);
    const pending = (await (
      await fetch(`${hub.url}/add_task?wait=false`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ service_id: w.welcome.service_id, args: [2] }),
      })
    ).json()) as { task_id: string };
    await w.nextOf('task');
    // The task store writes in batches; its writer thread takes a while to start on a busy machine.
    await rowsWritten(db, { [t1.task_id]: 'succeeded', [pending.task_id]: 'running' });
    hub.kill('SIGKILL');
    await hub.exited;
    const again = await startHubProcess(db);
    try {
      const a = await get(again.url, `/tasks/${t1.task_id}`);
      expect(a.body).to.include({ status: 'succeeded', result: 'first' });
      const b = await get(again.url, `/tasks/${pending.task_id}`);
      expect(b.body.status).to.equal('failed');
      expect(b.body.error.code).to.equal('interrupted');
    } finally {
      again.kill('SIGTERM');
      await again.exited;
    }
  });

  it("reads a result's media back after a restart (SQLite keeps them in a file beside the database)", async () => {
    const db = sqlite();
    const hub = await startHubProcess(db);
    const media = Buffer.alloc(300_000, 5);
    let id = '';
    try {
      const w = await worker(hub.url, 'media_svc');
      const call = fetch(`${hub.url}/add_task`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ service_id: w.welcome.service_id, args: [1] }),
      });
      const t = await w.nextOf('task');
      id = t.task_id;
      w.send({ type: 'result', task_id: id, result: { out: { mime: 'image/png', name: 'o.png', data: media } } });
      expect((await call).status).to.equal(200);
    } finally {
      hub.kill('SIGTERM');
      await hub.exited;
    }
    expect(readdirSync(`${db.slice('sqlite:'.length)}-media`)).to.have.length(1);
    const again = await startHubProcess(db);
    try {
      const { body } = await get(again.url, `/tasks/${id}`);
      expect(body.status).to.equal('succeeded');
      expect(body.result.out).to.deep.equal({ mime: 'image/png', name: 'o.png', data: media.toString('base64') });
    } finally {
      again.kill('SIGTERM');
      await again.exited;
    }
  });

  it('on SIGTERM gives running tasks the grace period, then fails them shutting_down and exits 0', async () => {
    const db = sqlite();
    const hub = await startHubProcess(db, { HUB_SHUTDOWN_GRACE_MS: '300' });
    const w = await worker(hub.url, 'term_svc');
    const call = fetch(`${hub.url}/add_task`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ service_id: w.welcome.service_id, args: [1] }),
    });
    const t = await w.nextOf('task');
    hub.kill('SIGTERM');
    const cancel = await w.nextOf('cancel', t.task_id);
    expect(cancel.reason).to.equal('shutdown');
    const res = await call;
    expect(res.status).to.equal(503);
    expect(((await res.json()) as any).error.code).to.equal('shutting_down');
    expect(await hub.exited).to.equal(0);
    const again = await startHubProcess(db);
    try {
      const v = await get(again.url, `/tasks/${t.task_id}`);
      expect(v.body.status).to.equal('failed');
      expect(v.body.error.code).to.equal('shutting_down');
    } finally {
      again.kill('SIGTERM');
      await again.exited;
    }
  });
});
