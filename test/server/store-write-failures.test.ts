import { expect } from 'chai';
import { Writable } from 'node:stream';
import type { Knex } from 'knex';
import { openDb } from '../../server/src/db/index.js';
import { startHub, tempSqlite, fakeWorker, http, me, sleep, type TestHub } from '../helpers/hub.js';
import { sample } from '../helpers/metrics.js';

type Line = Record<string, any>;

/** Polls `check` every 50 ms until it returns a value other than undefined, for up to `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * A database that answers but refuses rows: SQLite triggers abort the upserts of `tasks` (all of
 * them, or those of the rows matching `when`), as a full disk or a revoked grant would.
 */
async function refuseWrites(db: Knex, when = '1'): Promise<void> {
  await db.raw(`CREATE TRIGGER refuse_insert BEFORE INSERT ON tasks WHEN ${when} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
  await db.raw(`CREATE TRIGGER refuse_update BEFORE UPDATE ON tasks WHEN ${when} BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
}

async function acceptWrites(db: Knex): Promise<void> {
  await db.raw('DROP TRIGGER refuse_insert');
  await db.raw('DROP TRIGGER refuse_update');
}

describe('Task store write failures', function () {
  this.timeout(30_000);
  let db: Knex;
  let hub: TestHub;
  let lines: Line[];
  const start = async (options: Record<string, unknown> = {}) => {
    lines = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Line);
        cb();
      },
    });
    db = openDb(tempSqlite());
    hub = await startHub({ knex: db, logger: { level: 'info', stream }, ...options });
  };
  afterEach(async () => {
    await hub?.close();
    await db?.destroy().catch(() => undefined);
  });

  it('logs every failed and dropped write at error level with the task ids, and counts them by outcome', async () => {
    await start();
    const w = await fakeWorker(hub, me('refused_rows'));
    await refuseWrites(db, "NEW.status = 'failed'");
    // One task whose end the database refuses, one it takes.
    const bad = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: { x: 1 } });
    const t1 = await w.nextOf('task');
    w.send({ type: 'failed', task_id: t1.task_id, error: { code: 'broken', message: 'it broke' } });
    expect((await bad).status).to.equal(502); // task_failed
    const good = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: { x: 2 } });
    const t2 = await w.nextOf('task');
    w.send({ type: 'result', task_id: t2.task_id, result: 4 });
    expect((await good).status).to.equal(200);

    // Refused on its own a few times (alone in its batch: each time logged, kept and retried), then dropped (logged).
    const dropped = await until('the dropped-row log line', () =>
      lines.find((l) => l.level === 50 && l.outcome === 'dropped' && l.task_ids?.includes(t1.task_id)),
    );
    expect(dropped.err).to.include('refused by the test');
    expect(dropped.task_ids).to.deep.equal([t1.task_id]);
    const retried = lines.filter((l) => l.level === 50 && l.outcome === 'retried');
    // Nothing about the row the database took.
    expect(lines.filter((l) => l.level >= 50 && JSON.stringify(l).includes(t2.task_id as string))).to.deep.equal([]);
    const ok = await until('the good row', async () => ((await db('tasks').where({ id: t2.task_id, status: 'succeeded' }).first()) ? true : undefined));
    expect(ok).to.equal(true);

    const metrics = await http(hub, 'GET', '/metrics');
    const name = 'utils_hub_task_store_write_failures_total';
    expect(sample(metrics.body, name, { outcome: 'retried' })).to.equal(retried.reduce((n, l) => n + l.task_ids.length, 0));
    expect(sample(metrics.body, name, { outcome: 'dropped' })).to.equal(1);
    await w.close();
  });

  it('answers /readyz 503 while writes have failed for longer than storeFailingMs, 200 once they go through', async () => {
    await start({ storeFailingMs: 500 });
    const w = await fakeWorker(hub, me('refused_all'), { concurrency: 4 });
    expect((await http(hub, 'GET', '/readyz')).status).to.equal(200);
    await refuseWrites(db);
    const added = [1, 2, 3, 4].map((x) => http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: { x } }));
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const t = await w.nextOf('task');
      ids.push(t.task_id as string);
      w.send({ type: 'result', task_id: t.task_id, result: t.args.x * 2 });
    }
    // The tasks run from memory; their answers wait for their ends to be committed (HUB_COMMIT=stored).

    const notReady = await until('/readyz 503', async () => {
      const r = await http(hub, 'GET', '/readyz');
      return r.status === 503 ? r : undefined;
    });
    expect(notReady.body.status).to.equal('not_ready');
    const [, ms] = /^the task store has failed to write for (\d+) ms/.exec(notReady.body.reason) ?? [];
    expect(Number(ms), notReady.body.reason).to.be.at.least(500);
    // Every failed write logged with its rows' task ids, and counted.
    const retried = lines.filter((l) => l.level === 50 && l.outcome === 'retried');
    expect(retried.length).to.be.greaterThan(0);
    for (const l of retried) expect(ids).to.include.members(l.task_ids);
    const metrics = await http(hub, 'GET', '/metrics');
    const counted = sample(metrics.body, 'utils_hub_task_store_write_failures_total', { outcome: 'retried' }) ?? 0;
    expect(counted).to.be.at.least(retried.reduce((n, l) => n + l.task_ids.length, 0)); // more may have failed since
    expect(sample(metrics.body, 'utils_hub_task_store_failing_seconds', {})).to.be.at.least(0.5);

    await acceptWrites(db);
    await until('/readyz 200', async () => ((await http(hub, 'GET', '/readyz')).status === 200 ? true : undefined));
    expect((await Promise.all(added)).map((r) => r.status)).to.deep.equal([200, 200, 200, 200]);
    const rows = await until('the rows written', async () => {
      const r = await db('tasks').whereIn('id', ids).select('status');
      return r.length === 4 && r.every((x) => x.status === 'succeeded') ? r : undefined;
    });
    expect(rows).to.have.length(4);
    await w.close();
  });
});
