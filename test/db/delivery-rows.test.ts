/**
 * The delivery rows the task store commits with its task rows (docs/delivery.md, "Where the rows
 * go"): a webhook's outbox row in the transaction of the task's end row, a key's claim in the
 * transaction of its task's queued row (only a winning claim writes one), leases of due
 * deliveries, and outcomes of tries. On SQLite on a file and on MariaDB these run in the writer
 * thread; on in-memory SQLite, through knex.
 */
import { expect } from 'chai';
import type { Knex } from 'knex';
import type { DeliveryRow } from '../../server/src/store/tasks.js';
import type { IdempotencyRow } from '../../server/src/store/idempotency-keys.js';
import { truncatedBody } from '../../server/src/store/webhook-deliveries.js';
import { dbBackends, useTaskStores, type DbBackend } from '../helpers/db.js';

const inMemory: DbBackend = { name: 'sqlite', skipReason: null, describe, freshDatabase: async () => 'sqlite::memory:' };
const backends = [...(await dbBackends()), inMemory];

function delivery(id: string, taskId: string, overrides: Partial<DeliveryRow> = {}): DeliveryRow {
  return {
    id,
    task_id: taskId,
    url: 'http://127.0.0.1:1/hook',
    event: 'completed',
    body: JSON.stringify({ task_id: taskId, event: 'completed' }),
    status: 'pending',
    attempts: 0,
    next_at: 1000,
    last_status: null,
    last_error: null,
    created_at: 1000,
    updated_at: 1000,
    ...overrides,
  };
}

function key(taskId: string, overrides: Partial<IdempotencyRow> = {}): IdempotencyRow {
  return { scope: '', key: 'the-key', task_id: taskId, service_id: 0, args_hash: 'a'.repeat(64), created_at: Date.now(), ...overrides };
}

async function ids(db: Knex, table: string): Promise<string[]> {
  return ((await db(table).select('id').orderBy('id')) as { id: string }[]).map((r) => r.id);
}

/** Resolves once `save`'s callback is called, with its `dropped`. */
function stored(): { cb: (dropped: boolean) => void; done: Promise<boolean> } {
  let cb!: (dropped: boolean) => void;
  const done = new Promise<boolean>((resolve) => (cb = resolve));
  return { cb, done };
}

describe('truncatedBody', () => {
  const url = (id: string) => `/tasks/${id}`;
  const within = (n: number) => (body: string) => Buffer.byteLength(body) <= n;
  it('leaves the result out first, then the message and all but 1 KiB of the error message, then all but the identity', () => {
    const view = {
      task_id: 't',
      service_id: 1,
      status: 'failed',
      message: 'm'.repeat(5000),
      error: { code: 'x', message: 'e'.repeat(5000), detail: 1 },
      event: 'completed',
    };
    const row = { task_id: 't', event: 'completed', body: JSON.stringify(view) };
    expect(JSON.parse(truncatedBody(row, url, within(20_000)))).to.deep.equal({ ...view, truncated: true, task_url: '/tasks/t' });
    const cut = JSON.parse(truncatedBody(row, url, within(4096)));
    expect(cut).to.deep.equal({ ...view, message: null, error: { code: 'x', message: 'e'.repeat(1024) }, truncated: true, task_url: '/tasks/t' });
    expect(JSON.parse(truncatedBody(row, url, within(100)))).to.deep.equal({
      task_id: 't',
      service_id: 1,
      status: 'failed',
      event: 'completed',
      truncated: true,
      task_url: '/tasks/t',
    });
    expect(JSON.parse(truncatedBody({ ...row, body: 'not json' }, url, within(4096)))).to.deep.equal({
      task_id: 't',
      event: 'completed',
      truncated: true,
      task_url: '/tasks/t',
    });
  });
});

describe('TaskStore delivery rows', () => {
  for (const backend of backends) {
    backend.describe(`on ${backend === inMemory ? 'in-memory SQLite (no writer thread: knex)' : backend.name}`, () => {
      const { db, open, row } = useTaskStores(backend);
      const ended = (id: string) =>
        row(id, { status: 'succeeded', attempts: 1, result: { ok: true }, started_at: 1_700_000_000_100, finished_at: 1_700_000_000_200 });

      describe('#save with outbox rows', () => {
        it('commits the outbox rows with the task row', async () => {
          const store = open({ flushDelayMs: 0 });
          const s = stored();
          store.save(ended('t1'), s.cb, [delivery('msg_1', 't1')]);
          expect(await s.done).to.equal(false);
          expect(await ids(db(), 'tasks')).to.deep.equal(['t1']);
          expect(await ids(db(), 'webhook_deliveries')).to.deep.equal(['msg_1']);
        });

        it('keeps the end row out when its outbox row is refused: one transaction', async () => {
          await db()('webhook_deliveries').insert(delivery('msg_taken', 'other'));
          const errors: Array<{ ids: string[]; dropped: boolean }> = [];
          const store = open({ flushDelayMs: 0, retryMinMs: 1, retryMaxMs: 5, onError: (_err, info) => errors.push(info) });
          const s = stored();
          store.save(ended('t2'), s.cb, [delivery('msg_taken', 't2')]);
          expect(await s.done).to.equal(true); // refused alone, three times: given up
          expect(errors.at(-1)).to.deep.equal({ ids: ['t2'], dropped: true });
          expect(await ids(db(), 'tasks')).to.deep.equal([]);
          expect(await ids(db(), 'webhook_deliveries')).to.deep.equal(['msg_taken']);
        });

        it('stores the end row and a delivery whose body is over its bound, cut down: the result left out, truncated, task_url', async () => {
          const store = open({ flushDelayMs: 0, maxDeliveryBytes: 4096, taskUrl: (id) => `https://hub.example/tasks/${id}` });
          const view = { task_id: 'big', status: 'succeeded', attempts: 1, message: null, event: 'completed' };
          const within = JSON.stringify({ ...view, result: 'a'.repeat(4096 - JSON.stringify({ ...view, result: '' }).length) });
          expect(Buffer.byteLength(within)).to.equal(4096);
          const over = JSON.stringify({ ...view, result: 'a'.repeat(4096 - JSON.stringify({ ...view, result: '' }).length + 1) });
          const s = stored();
          store.save(ended('big'), s.cb, [delivery('msg_within', 'big', { body: within }), delivery('msg_over', 'big', { body: over })]);
          expect(await s.done).to.equal(false);
          expect(await ids(db(), 'tasks')).to.deep.equal(['big']);
          const bodies = Object.fromEntries(
            ((await db()('webhook_deliveries').select('id', 'body')) as Array<{ id: string; body: string }>).map((r) => [r.id, r.body]),
          );
          expect(bodies.msg_within).to.equal(within);
          expect(JSON.parse(bodies.msg_over)).to.deep.equal({ ...view, truncated: true, task_url: 'https://hub.example/tasks/big' });
        });

        it('stores the end row with a delivery whose body would be over MySQL max_allowed_packet (default bound)', async function () {
          this.timeout(60_000);
          let limit = 16 * 1024 * 1024;
          if (backend.name === 'mysql') {
            const [[{ max }]] = (await db().raw('select @@max_allowed_packet as max')) as [[{ max: number }]];
            if (Number(max) > 64 * 1024 * 1024) this.skip(); // too large to exceed in a test
            limit = Number(max);
          }
          const errors: Array<{ ids: string[]; dropped: boolean }> = [];
          const store = open({ flushDelayMs: 0, retryMinMs: 1, retryMaxMs: 5, onError: (_err, info) => errors.push(info) });
          const body = JSON.stringify({ task_id: 'huge', status: 'succeeded', event: 'completed', result: 'a'.repeat(limit) });
          const s = stored();
          store.save(ended('huge'), s.cb, [delivery('msg_huge', 'huge', { body })]);
          expect(await s.done).to.equal(false);
          expect(errors).to.deep.equal([]);
          expect(await ids(db(), 'tasks')).to.deep.equal(['huge']);
          const written = JSON.parse((await db()('webhook_deliveries').where({ id: 'msg_huge' }).first()).body);
          expect(written).to.deep.equal({ task_id: 'huge', status: 'succeeded', event: 'completed', truncated: true, task_url: '/tasks/huge' });
        });

        it('passes the outbox rows of a replaced row on to the newer one', async () => {
          const store = open({ flushDelayMs: 60_000 });
          store.save(row('t3', { status: 'running', started_at: 1_700_000_000_100 }), undefined, [delivery('msg_started', 't3', { event: 'started' })]);
          store.save(ended('t3'), undefined, [delivery('msg_done', 't3')]);
          await store.flush();
          expect(await ids(db(), 'webhook_deliveries')).to.deep.equal(['msg_done', 'msg_started']);
          expect((await db()('tasks').where({ id: 't3' }).first()).status).to.equal('succeeded');
        });

        it('writes outbox rows alone and outcomes, and tells its watchers', async () => {
          const store = open({ flushDelayMs: 0 });
          let told = 0;
          store.watchOutbox(() => told++);
          store.saveDeliveries([delivery('msg_a', 'x'), delivery('msg_b', 'x')]);
          await store.flush();
          expect(told).to.equal(1);
          store.recordDelivery({ id: 'msg_a', status: 'pending', attempts: 1, next_at: 5000, last_status: 500, last_error: 'HTTP 500', updated_at: 2000 });
          store.recordDelivery({ id: 'msg_a', status: 'delivered', attempts: 2, next_at: 6000, last_status: 200, last_error: null, updated_at: 6000 });
          await store.flush();
          const a = await db()('webhook_deliveries').where({ id: 'msg_a' }).first();
          expect([a.status, Number(a.attempts), a.last_status, a.last_error]).to.deep.equal(['delivered', 2, 200, null]);
          expect(told).to.equal(1);
        });
      });

      describe('#claim', () => {
        it('writes the key and its task row together when it wins; a repeat loses to it and writes no row', async () => {
          const store = open({ flushDelayMs: 50 });
          expect(await store.claim(key('win'), row('win'), 0)).to.deep.equal({ won: true });
          const k = key('lose');
          const lost = await store.claim(k, row('lose'), 0);
          expect(lost.won).to.equal(false);
          expect(lost.won === false && lost.row.task_id).to.equal('win');
          expect(await ids(db(), 'tasks')).to.deep.equal(['win']);
        });

        it('lets one of two stores (two hubs) claiming one key at once win, by the unique index', async () => {
          const a = open({ flushDelayMs: 0 });
          const b = open({ flushDelayMs: 0 });
          for (let round = 0; round < 5; round++) {
            const k = `race-${round}`;
            const out = await Promise.all([
              a.claim(key(`a${round}`, { key: k }), row(`a${round}`), 0),
              b.claim(key(`b${round}`, { key: k }), row(`b${round}`), 0),
            ]);
            expect(out.filter((o) => o.won)).to.have.length(1);
            const winner = out[0].won ? `a${round}` : `b${round}`;
            const loser = out.find((o) => !o.won)!;
            expect(loser.won === false && loser.row.task_id).to.equal(winner);
            expect((await db()('idempotency_keys').where({ key: k }).first()).task_id).to.equal(winner);
          }
          expect(await ids(db(), 'tasks')).to.have.length(5);
        });

        it('takes an expired key over, with its new task row', async () => {
          const store = open({ flushDelayMs: 0 });
          await store.claim(key('old', { created_at: 10 }), row('old'), 0);
          expect(await store.claim(key('new', { created_at: 5000 }), row('new'), 1000)).to.deep.equal({ won: true });
          const held = await db()('idempotency_keys').where({ key: 'the-key' }).first();
          expect([held.task_id, Number(held.created_at)]).to.deep.equal(['new', 5000]);
          expect(await ids(db(), 'tasks')).to.deep.equal(['new', 'old']);
        });

        it('claims many keys in one write alongside task rows and outbox rows', async () => {
          const store = open({ flushDelayMs: 0 });
          await store.claim(key('held', { key: 'k1' }), row('held'), 0);
          store.save(ended('held'), undefined, [delivery('msg_held', 'held')]);
          const claims = Array.from({ length: 20 }, (_, i) => store.claim(key(`c${i}`, { key: `k${i % 10}` }), row(`c${i}`), 0));
          const out = await Promise.all(claims);
          // k1 was held already; of the other keys each went to its first claim.
          expect(out.filter((o) => o.won)).to.have.length(9);
          expect((await ids(db(), 'tasks')).length).to.equal(10);
          expect(await ids(db(), 'webhook_deliveries')).to.deep.equal(['msg_held']);
        });
      });

      describe('#leaseDeliveries', () => {
        it('leases each due row once, leaving out rows not due and those asked to skip', async () => {
          await db()('webhook_deliveries').insert([
            delivery('msg_1', 't', { next_at: 100 }),
            delivery('msg_2', 't', { next_at: 200 }),
            delivery('msg_3', 't', { next_at: 300 }),
            delivery('msg_late', 't', { next_at: 10_000 }),
            delivery('msg_done', 't', { status: 'delivered', next_at: 0 }),
          ]);
          const a = open();
          const b = open();
          const [x, y] = await Promise.all([a.leaseDeliveries(1000, 10, 50_000, ['msg_2']), b.leaseDeliveries(1000, 10, 50_000, [])]);
          const taken = [...x, ...y].map((r) => r.id).sort();
          expect(taken).to.deep.equal(['msg_1', 'msg_2', 'msg_3']);
          expect(x.map((r) => r.id)).to.not.include('msg_2');
          const leased = await db()('webhook_deliveries').whereIn('id', taken);
          expect(leased.map((r: { next_at: number | string }) => Number(r.next_at))).to.deep.equal([50_000, 50_000, 50_000]);
          expect(await a.leaseDeliveries(1000, 10, 60_000, [])).to.deep.equal([]);
        });

        it('takes at most `limit` rows, soonest first', async () => {
          await db()('webhook_deliveries').insert([
            delivery('msg_b', 't', { next_at: 200 }),
            delivery('msg_a', 't', { next_at: 100 }),
            delivery('msg_c', 't', { next_at: 300 }),
          ]);
          const rows = await open().leaseDeliveries(1000, 2, 50_000, []);
          expect(rows.map((r) => r.id)).to.deep.equal(['msg_a', 'msg_b']);
          expect(rows[0]).to.deep.include({ task_id: 't', event: 'completed', status: 'pending', attempts: 0, next_at: 100 });
        });
      });
    });
  }
});
