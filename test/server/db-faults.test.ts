import { expect } from 'chai';
import knex from 'knex';
import { startHub, fakeWorker, http, me, sleep, type TestHub } from '../helpers/hub.js';
import { mysqlProblem, freshMysqlDatabase, MYSQL_SERVER } from '../helpers/backends.js';
import { tcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';
import { run, CLI } from '../helpers/processes.js';

/** The faults of a database that goes away: at start, and while the hub runs (MariaDB only). */
describe('Database faults [MariaDB]', function () {
  this.timeout(60_000);
  let proxy: TcpProxy;
  let dbName = '';
  let drop: () => Promise<void> = async () => {};
  const server = new URL(MYSQL_SERVER);
  const viaProxy = () => `mysql://${server.username || 'root'}${server.password ? `:${server.password}` : ''}@127.0.0.1:${proxy.port}/${dbName}`;

  before(async function () {
    const problem = await mysqlProblem();
    if (problem) {
      console.log(`    MySQL suite skipped: ${problem}`);
      this.skip();
    }
    const fresh = await freshMysqlDatabase();
    drop = fresh.drop;
    dbName = new URL(fresh.url).pathname.slice(1);
    proxy = await tcpProxy(server.hostname, Number(server.port || 3306));
  });
  after(async () => {
    await proxy?.close();
    await drop();
  });

  it('fails at once with --no-wait when the database does not answer', async () => {
    await proxy.cut();
    try {
      const p = run(process.execPath, [CLI, 'start', '--port', '0', '--no-wait', '--db', viaProxy()]);
      expect(await p.exited).to.equal(1);
      expect(p.output()).to.match(/cannot open the database \(mysql:\/\/root@127\.0\.0\.1:\d+\/uh_test_\w+\)/);
    } finally {
      await proxy.restore();
    }
  });

  it('retries at start until the database answers', async () => {
    await proxy.cut();
    const p = run(process.execPath, [CLI, 'start', '--port', '0', '--db', viaProxy()], { HUB_LOG_LEVEL: 'warn' });
    try {
      await p.waitFor(/does not answer.*retrying/);
      await proxy.restore();
      await p.waitFor(/utils-hub listening on http/, 20_000);
    } finally {
      p.kill('SIGTERM');
      await p.exited;
    }
  });

  describe('lost while the hub runs', () => {
    let hub: TestHub;
    afterEach(() => hub?.close());

    it('goes on dispatching from memory, and answers (HUB_COMMIT=stored) once the database is back and every task written', async () => {
      hub = await startHub({ db: viaProxy() });
      const w = await fakeWorker(hub, me('dbloss'), { concurrency: 8 });
      w.ws.on('message', () => undefined);
      const answer = async () => {
        for (;;) {
          const t = await w.nextOf('task', undefined, 10_000);
          w.send({ type: 'result', task_id: t.task_id, result: t.args.x * 2 });
        }
      };
      void answer().catch(() => undefined);
      const before = await http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [1] });
      expect(before.status).to.equal(200);

      await proxy.cut();
      let answered = 0;
      const calls = Promise.all(
        [2, 3, 4, 5].map((x) => http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [x] }).finally(() => answered++)),
      );
      // The worker answers them from memory, but no end can be committed: no answer yet.
      await sleep(1500);
      expect(answered).to.equal(0);

      await proxy.restore();
      const during = await calls;
      expect(during.map((r) => r.status)).to.deep.equal([200, 200, 200, 200]);
      expect(during.map((r) => r.body.result)).to.deep.equal([4, 6, 8, 10]);
      const direct = knex({ client: 'mysql2', connection: `${MYSQL_SERVER}/${dbName}`, pool: { min: 0, max: 1 } });
      try {
        const ids = [before, ...during].map((r) => r.body.task_id as string);
        let rows: Array<{ id: string; status: string }> = [];
        for (let i = 0; i < 100; i++) {
          rows = await direct('tasks').whereIn('id', ids).select('id', 'status');
          if (rows.length === ids.length && rows.every((r) => r.status === 'succeeded')) break;
          await sleep(200);
        }
        expect(rows.map((r) => r.status).sort()).to.deep.equal(ids.map(() => 'succeeded'));
      } finally {
        await direct.destroy();
      }
    });
  });
});
