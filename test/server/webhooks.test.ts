import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { startHub as startTestHub, fakeWorker, fakeClient, http as call, me, sleep, tempSqlite, type TestHub } from '../helpers/hub.js';
import { refusedClass, guardedLookup, checkWebhookUrl } from '../../server/src/delivery/address-check.js';
import { signWebhook, secretBytes } from '../../server/src/delivery/webhook-sign.js';
import { nextDelay } from '../../server/src/delivery/webhooks.js';
import { listDeliveries } from '../../server/src/store/webhook-deliveries.js';
import { openDb, migrate } from '../../server/src/db/index.js';
import { loadConfig } from '../../server/src/config.js';
import { freshMysqlDatabase, mysqlProblem } from '../helpers/backends.js';
import type { BuildOptions } from '../../server/src/app.js';
import { run, CLI } from '../helpers/processes.js';

const SECRET = `whsec_${randomBytes(24).toString('base64')}`;

interface Hit {
  at: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
}

/** A webhook receiver on 127.0.0.1: records each request and answers with `answer(n)` (n from 0). */
async function receiver(answer: (n: number) => { status: number; headers?: Record<string, string> } = () => ({ status: 200 })) {
  const hits: Hit[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const n = hits.length;
      hits.push({ at: Date.now(), headers: req.headers, body, json: JSON.parse(body) });
      const a = answer(n);
      res.writeHead(a.status, a.headers ?? {});
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    port,
    hits,
    async until(n: number, ms = 10_000) {
      const end = Date.now() + ms;
      while (hits.length < n) {
        if (Date.now() > end) throw new Error(`only ${hits.length} of ${n} webhooks came: ${JSON.stringify(hits.map((h) => h.json))}`);
        await sleep(20);
      }
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const verify = (hit: Hit) =>
  new Webhook(SECRET).verify(hit.body, {
    'webhook-id': hit.headers['webhook-id'] as string,
    'webhook-timestamp': hit.headers['webhook-timestamp'] as string,
    'webhook-signature': hit.headers['webhook-signature'] as string,
  });

describe('Webhooks', function () {
  this.timeout(30_000);
  let hub: TestHub;
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await hub?.close();
    for (const c of closers.splice(0)) await c();
  });

  describe('signing and addresses (the parts)', () => {
    it('signs byte for byte as the standardwebhooks package does', () => {
      const body = JSON.stringify({ task_id: 'x', event: 'completed', text: 'héllo ✓' });
      const ts = 1_760_000_000;
      const ours = signWebhook(secretBytes(SECRET), 'msg_1', ts, body);
      expect(ours).to.equal(new Webhook(SECRET).sign('msg_1', new Date(ts * 1000), body));
    });

    it('refuses every non-public address class and takes public ones', () => {
      const refused: Record<string, string> = {
        '127.0.0.1': 'loopback',
        '127.255.0.9': 'loopback',
        '::1': 'loopback',
        '10.0.0.1': 'private',
        '10.255.255.255': 'private',
        '172.16.0.1': 'private',
        '172.31.255.254': 'private',
        '192.168.1.1': 'private',
        '169.254.169.254': 'link-local',
        '0.0.0.0': 'unspecified',
        '::': 'unspecified',
        'fe80::1': 'link-local',
        'fd12:3456::1': 'private',
        '::ffff:10.1.2.3': 'private',
        '::ffff:127.0.0.1': 'loopback',
        '::ffff:7f00:1': 'loopback',
        '100.64.0.1': 'shared (carrier-grade NAT)',
        '224.0.0.1': 'multicast',
      };
      for (const [address, why] of Object.entries(refused)) expect(refusedClass(address), address).to.equal(why);
      // Only compared as strings: no packet goes to these.
      for (const address of ['8.8.8.8', '172.15.255.255', '172.32.0.1', '192.169.0.1', '169.253.0.1', '2001:4860:4860::8888', '::ffff:8.8.8.8']) {
        expect(refusedClass(address), address).to.equal(null);
      }
    });

    it('refuses at submit a URL whose host is or resolves to a loopback address, and takes it with allowPrivate', async () => {
      for (const url of ['http://127.0.0.1:1/x', 'http://[::1]:1/x', 'http://localhost:1/x', 'http://0.0.0.0:1/x']) {
        const err = await checkWebhookUrl(url, false).then(
          () => null,
          (e) => e,
        );
        expect(err?.code, url).to.equal('bad_request');
      }
      for (const url of ['ftp://example.com/', 'http://user:pw@localhost/', 'not a url']) {
        expect(
          (
            await checkWebhookUrl(url, true).then(
              () => null,
              (e) => e,
            )
          )?.code,
          url,
        ).to.equal('bad_request');
      }
      expect((await checkWebhookUrl('http://localhost:1/x', true)).hostname).to.equal('localhost');
    });

    it('refuses at connect time a name that resolves to loopback (the agent lookup)', async () => {
      const err = await new Promise<NodeJS.ErrnoException | null>((r) => guardedLookup(false)('localhost', {}, (e) => r(e)));
      expect(err?.code).to.equal('EWEBHOOKREFUSED');
      const ok = await new Promise<unknown>((r) => guardedLookup(true)('localhost', {}, (e, a) => r(e ?? a)));
      expect(ok).to.be.a('string');
    });

    it('reads HUB_WEBHOOK_SECRET and HUB_WEBHOOK_ALLOW_PRIVATE, refusing bad values by name', () => {
      expect(loadConfig({}).webhookSecret).to.equal(null);
      expect(loadConfig({}).webhookAllowPrivate).to.equal(false);
      const c = loadConfig({ HUB_WEBHOOK_SECRET: SECRET, HUB_WEBHOOK_ALLOW_PRIVATE: '1' });
      expect(c.webhookSecret).to.equal(SECRET);
      expect(c.webhookAllowPrivate).to.equal(true);
      expect(loadConfig({ HUB_WEBHOOK_ALLOW_PRIVATE: '0' }).webhookAllowPrivate).to.equal(false);
      expect(() => loadConfig({ HUB_WEBHOOK_ALLOW_PRIVATE: 'yes please' })).to.throw(/HUB_WEBHOOK_ALLOW_PRIVATE/);
      for (const bad of ['secret', 'whsec_', 'whsec_short', 'whsec_!!!!!!!!!!!!!!!!!!!!']) {
        expect(() => loadConfig({ HUB_WEBHOOK_SECRET: bad }), bad).to.throw(/HUB_WEBHOOK_SECRET/);
      }
    });

    it('retries on the schedule, honouring Retry-After', () => {
      expect([1, 2, 3, 4, 5, 6, 30].map((n) => nextDelay(n, undefined, 0))).to.deep.equal([1000, 5000, 30000, 120000, 600000, 3600000, 3600000]);
      expect(nextDelay(1, '7', 0)).to.equal(7000);
      expect(nextDelay(1, new Date(60_000).toUTCString(), 0)).to.equal(60_000);
      expect(nextDelay(2, 'soon', 0)).to.equal(5000);
    });
  });

  it('utils-hub webhooks list shows pending and failed deliveries; --failed only the failed', async () => {
    const url = tempSqlite();
    const db = openDb(url, { log: () => {} });
    await migrate(db);
    const now = Date.now();
    const row = {
      task_id: 't1',
      url: 'https://example.com/hook',
      event: 'completed',
      body: '{}',
      attempts: 2,
      next_at: now + 5000,
      created_at: now,
      updated_at: now,
    };
    await db('webhook_deliveries').insert([
      { ...row, id: 'msg_pending', status: 'pending', last_status: 500 },
      { ...row, id: 'msg_failed', status: 'failed', last_error: 'a loopback address' },
      { ...row, id: 'msg_done', status: 'delivered', last_status: 200 },
    ]);
    await db.destroy();
    const all = run(process.execPath, [CLI, 'webhooks', 'list', '--db', url]);
    expect(await all.exited).to.equal(0);
    expect(all.output()).to.include('msg_pending').and.to.include('msg_failed').and.to.include('a loopback address').and.not.include('msg_done');
    const failed = run(process.execPath, [CLI, 'webhooks', 'list', '--failed', '--json', '--db', url]);
    expect(await failed.exited).to.equal(0);
    const listed = JSON.parse(failed.output().trim().split('\n').at(-1)!);
    expect(listed.map((d: any) => d.id)).to.deep.equal(['msg_failed']);
    const bad = run(process.execPath, [CLI, 'webhooks', 'send', '--db', url]);
    expect(await bad.exited).to.equal(2);
  });

  for (const backend of ['SQLite', 'MariaDB'] as const)
    describe(`against a real hub [${backend}]`, () => {
      /** A fresh database per test (a hub's sender would take up rows another test left). */
      const drops: Array<() => Promise<void>> = [];
      const freshDb = async () => {
        if (backend === 'SQLite') return tempSqlite();
        const { url, drop } = await freshMysqlDatabase();
        drops.push(drop);
        return url;
      };
      before(async function () {
        if (backend === 'MariaDB' && (await mysqlProblem())) this.skip();
      });
      afterEach(async () => {
        await hub?.close();
        for (const d of drops.splice(0)) await d();
      });
      const startHub = async (options: BuildOptions = {}) =>
        startTestHub({ db: await freshDb(), ...(process.env.WH_DEBUG ? { logLevel: 'debug', logger: { level: 'debug' } } : {}), ...options });
      it('POSTs the completed task, signed (checked with the standardwebhooks package), from REST and /client', async () => {
        const r = await receiver();
        closers.push(r.close);
        hub = await startHub({ webhookSecret: SECRET, webhookAllowPrivate: true });
        const w = await fakeWorker(hub, me('hook_done'));
        const sub = await call(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1], webhook: r.url });
        const t = await w.nextOf('task');
        w.send({ type: 'result', task_id: t.task_id, result: { answer: 42 } });
        await r.until(1);
        const hit = r.hits[0];
        expect(verify(hit)).to.deep.include({ task_id: sub.body.task_id, event: 'completed', status: 'succeeded', result: { answer: 42 } });
        expect(hit.headers['webhook-id']).to.match(/^msg_/);
        expect(Math.abs(Number(hit.headers['webhook-timestamp']) - Date.now() / 1000)).to.be.below(30);
        // A tampered body fails the check: the test can fail.
        expect(() => verify({ ...hit, body: hit.body.replace('42', '43') })).to.throw();
        const c = await fakeClient(hub);
        c.send({ type: 'add_task', ref: 'w', service_id: w.welcome.service_id, args: [2], webhook: r.url, webhook_events: ['started', 'completed'] });
        const acc = await c.nextOf('accepted');
        const t2 = await w.nextOf('task');
        w.send({ type: 'failed', task_id: t2.task_id, error: { code: 'x', message: 'no' } });
        await r.until(3);
        const events = r.hits.slice(1).map((h) => verify(h) as any);
        expect(events.map((e) => [e.task_id, e.event, e.status])).to.deep.equal([
          [acc.task_id, 'started', 'running'],
          [acc.task_id, 'completed', 'failed'],
        ]);
        expect(events[1].error.code).to.equal('task_failed');
        await c.close();
      });

      it('sends a result over HUB_WEBHOOK_MAX_BODY_BYTES as truncated with task_url, and stores the whole end', async () => {
        const r = await receiver();
        closers.push(r.close);
        hub = await startHub({ webhookSecret: SECRET, webhookAllowPrivate: true });
        const w = await fakeWorker(hub, me('hook_big'), { concurrency: 2 });
        const bound = 1_048_576; // the default
        const results = { under: 'u'.repeat(bound - 1000), over: 'o'.repeat(bound) };
        const ids: Record<string, string> = {};
        for (const [name, result] of Object.entries(results)) {
          ids[name] = (await call(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1], webhook: r.url })).body.task_id;
          const t = await w.nextOf('task');
          w.send({ type: 'result', task_id: t.task_id, result });
        }
        await r.until(2, 15_000);
        const byTask = new Map(r.hits.map((h) => [(verify(h) as any).task_id, h]));
        const under = byTask.get(ids.under)!;
        expect(Buffer.byteLength(under.body)).to.be.within(bound - 1000, bound);
        expect(under.json.result).to.equal(results.under);
        const over = byTask.get(ids.over)!;
        expect(Buffer.byteLength(over.body)).to.be.below(4096);
        expect(over.json).to.deep.include({ task_id: ids.over, event: 'completed', status: 'succeeded', truncated: true, task_url: `/tasks/${ids.over}` });
        expect(over.json).to.not.have.property('result');
        // The end row holds the whole result: task_url reads it.
        const read = await call(hub, 'GET', over.json.task_url);
        expect(read.body.result).to.equal(results.over);
      });

      it('sends progress at most every 500 ms, the latest state last', async () => {
        const r = await receiver();
        closers.push(r.close);
        hub = await startHub({ webhookSecret: SECRET, webhookAllowPrivate: true });
        const w = await fakeWorker(hub, me('hook_progress'));
        await call(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1], webhook: r.url, webhook_events: ['progress'] });
        const t = await w.nextOf('task');
        const start = Date.now();
        for (let i = 1; i <= 20; i++) {
          w.send({ type: 'progress', task_id: t.task_id, progress: i / 20 });
          await sleep(50);
        }
        const elapsed = Date.now() - start;
        await sleep(700);
        const progress = r.hits.map((h) => h.json).filter((j) => j.event === 'progress');
        expect(progress.length).to.be.within(2, Math.ceil(elapsed / 500) + 1);
        expect(progress.at(-1).progress).to.equal(1);
        w.send({ type: 'result', task_id: t.task_id, result: 1 });
        await sleep(300);
        expect(r.hits.map((h) => h.json.event)).to.not.include('completed');
      });

      it('tries three times with one webhook-id when the receiver answers 500, 500, 200 (about 1 s, then 5 s, apart)', async () => {
        const r = await receiver((n) => ({ status: n < 2 ? 500 : 200 }));
        closers.push(r.close);
        hub = await startHub({ webhookSecret: SECRET, webhookAllowPrivate: true });
        const w = await fakeWorker(hub, me('hook_retry'));
        await call(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1], webhook: r.url });
        const t = await w.nextOf('task');
        w.send({ type: 'result', task_id: t.task_id, result: 'x' });
        await r.until(3, 15_000);
        expect(new Set(r.hits.map((h) => h.headers['webhook-id'])).size).to.equal(1);
        for (const h of r.hits) verify(h);
        expect(r.hits[1].at - r.hits[0].at).to.be.within(900, 2500);
        expect(r.hits[2].at - r.hits[1].at).to.be.within(4500, 7000);
        await sleep(1500);
        expect(r.hits).to.have.length(3);
        const metrics = await (await fetch(`${hub.url}/metrics`)).text();
        expect(metrics).to.match(/utils_hub_webhook_deliveries_total\{outcome="delivered"\} 1/);
        expect(metrics).to.match(/utils_hub_webhook_deliveries_total\{outcome="retried"\} 2/);
      });

      it('stops at a 410, and waits as long as Retry-After asks', async () => {
        const r = await receiver((n) => (n === 0 ? { status: 503, headers: { 'retry-after': '3' } } : { status: 410 }));
        closers.push(r.close);
        hub = await startHub({ webhookSecret: SECRET, webhookAllowPrivate: true });
        const w = await fakeWorker(hub, me('hook_gone'));
        await call(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1], webhook: r.url });
        const t = await w.nextOf('task');
        w.send({ type: 'result', task_id: t.task_id, result: 'x' });
        await r.until(2, 10_000);
        expect(r.hits[1].at - r.hits[0].at).to.be.within(2900, 4500);
        await sleep(2000);
        expect(r.hits).to.have.length(2);
        const metrics = await (await fetch(`${hub.url}/metrics`)).text();
        expect(metrics).to.match(/utils_hub_webhook_deliveries_total\{outcome="gone"\} 1/);
      });

      it('refuses webhook without HUB_WEBHOOK_SECRET, webhook_events alone, and loopback hosts unless allowed', async () => {
        const r = await receiver();
        closers.push(r.close);
        hub = await startHub();
        const w = await fakeWorker(hub, me('hook_refused'));
        const body = { service_id: w.welcome.service_id, args: [1] };
        const noSecret = await call(hub, 'POST', '/add_task?wait=false', { ...body, webhook: r.url });
        expect(noSecret.status).to.equal(400);
        expect(noSecret.body.error.message).to.include('HUB_WEBHOOK_SECRET');
        await hub.close();
        hub = await startHub({ webhookSecret: SECRET });
        const w2 = await fakeWorker(hub, me('hook_refused'));
        const body2 = { service_id: w2.welcome.service_id, args: [1] };
        expect((await call(hub, 'POST', '/add_task?wait=false', { ...body2, webhook_events: ['completed'] })).status).to.equal(400);
        for (const url of [
          r.url,
          `http://localhost:${r.port}/hook`,
          `http://[::1]:${r.port}/hook`,
          `http://0.0.0.0:${r.port}/hook`,
          `http://127.1.2.3:${r.port}/`,
        ]) {
          const res = await call(hub, 'POST', '/add_task?wait=false', { ...body2, webhook: url });
          expect(res.status, url).to.equal(400);
          expect(res.body.error.code).to.equal('bad_request');
        }
        const c = await fakeClient(hub);
        c.send({ type: 'add_task', ref: 'x', ...body2, webhook: `http://localhost:${r.port}/` });
        expect((await c.nextOf('rejected')).error.code).to.equal('bad_request');
        await c.close();
        await sleep(200);
        expect(r.hits).to.have.length(0);
        expect(w2.received.filter((m) => m.type === 'task')).to.have.length(0);
      });

      it('refuses at connect time a delivery whose host resolves to loopback by then', async () => {
        const r = await receiver();
        closers.push(r.close);
        hub = await startHub({ webhookSecret: SECRET });
        // As if `localhost` had resolved to a public address at submit (DNS rebinding): a row written directly.
        const db = openDb(hub.app.hubConfig.db, { log: () => {} });
        try {
          const now = Date.now();
          await db('webhook_deliveries').insert({
            id: 'msg_rebound',
            task_id: 't1',
            url: `http://localhost:${r.port}/hook`,
            event: 'completed',
            body: '{}',
            status: 'pending',
            attempts: 0,
            next_at: now,
            created_at: now,
            updated_at: now,
          });
          const end = Date.now() + 5000;
          let rows = await listDeliveries(db, { failedOnly: true });
          while (rows.length === 0 && Date.now() < end) {
            await sleep(100);
            rows = await listDeliveries(db, { failedOnly: true });
          }
          expect(rows.map((x) => [x.id, x.status])).to.deep.equal([['msg_rebound', 'failed']]);
          expect(rows[0].last_error).to.match(/loopback/);
          expect(r.hits).to.have.length(0);
          const metrics = await (await fetch(`${hub.url}/metrics`)).text();
          expect(metrics).to.match(/utils_hub_webhook_deliveries_total\{outcome="refused"\} 1/);
        } finally {
          await db.destroy();
        }
      });

      it('delivers after a restart what was pending when the hub stopped', async () => {
        let up = false;
        const r = await receiver(() => ({ status: up ? 200 : 503 }));
        closers.push(r.close);
        const db = await freshDb();
        hub = await startHub({ db, webhookSecret: SECRET, webhookAllowPrivate: true });
        const w = await fakeWorker(hub, me('hook_restart'));
        const sub = await call(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1], webhook: r.url });
        const t = await w.nextOf('task');
        w.send({ type: 'result', task_id: t.task_id, result: 'kept' });
        await r.until(1);
        await hub.close();
        up = true;
        await sleep(1200);
        expect(r.hits).to.have.length(1);
        hub = await startHub({ db, webhookSecret: SECRET, webhookAllowPrivate: true });
        await r.until(2);
        expect(r.hits[1].headers['webhook-id']).to.equal(r.hits[0].headers['webhook-id']);
        expect(verify(r.hits[1])).to.deep.include({ task_id: sub.body.task_id, event: 'completed', result: 'kept' });
      });
    });
});
