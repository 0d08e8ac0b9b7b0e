import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import type { Knex } from 'knex';
import { TaskStore, attachmentPieces, packAttachments, unpackAttachments, type TaskRow, type TaskStoreOptions } from '../../server/src/store/tasks.js';
import { dbBackends, useTaskStores, watchTaskInserts } from '../helpers/db.js';
import { sleep, until } from '../helpers/wait.js';

const backends = await dbBackends();

async function tableRows(db: Knex): Promise<number> {
  const [{ n }] = (await db('tasks').count({ n: '*' })) as { n: number | string }[];
  return Number(n);
}

describe('packAttachments', () => {
  it('round-trips buffers, empty ones included', () => {
    const parts = [Buffer.from('abc'), Buffer.alloc(0), Buffer.alloc(70_000, 9)];
    const packed = packAttachments(parts);
    expect(packed.length).to.equal(4 + 3 * 4 + 3 + 70_000);
    expect(unpackAttachments(packed).map((b) => b.toString('hex'))).to.deep.equal(parts.map((b) => b.toString('hex')));
  });

  it('packs an empty list', () => {
    expect(unpackAttachments(packAttachments([]))).to.deep.equal([]);
  });

  it('refuses a malformed blob in unpackAttachments', () => {
    const packed = packAttachments([Buffer.from('abcdef')]);
    expect(() => unpackAttachments(packed.subarray(0, 2))).to.throw(/too short/);
    expect(() => unpackAttachments(packed.subarray(0, packed.length - 1))).to.throw(/truncated/);
    expect(() => unpackAttachments(Buffer.concat([packed, Buffer.from('x')]))).to.throw(/trailing/);
    expect(() => unpackAttachments(Buffer.from([0xff, 0xff, 0xff, 0xff]))).to.throw(/truncated/);
  });
});

describe('TaskStore', () => {
  for (const backend of backends) {
    backend.describe(`on ${backend.name}`, () => {
      const { db, open, row } = useTaskStores(backend);

      describe('#constructor', () => {
        it('refuses an unknown option or a bad value, naming it', () => {
          expect(() => new TaskStore(db(), { batchsize: 5 } as TaskStoreOptions)).to.throw(/"batchsize"/);
          expect(() => new TaskStore(db(), { batchSize: 0 })).to.throw(/"batchSize"/);
          expect(() => new TaskStore(db(), { flushDelayMs: -1 })).to.throw(/"flushDelayMs"/);
        });
      });

      describe('#save', () => {
        it('writes many rows in one statement', async () => {
          const statements = watchTaskInserts(db());
          const store = open();
          for (let i = 0; i < 200; i++) store.save(row(`t${i}`));
          await store.flush();
          expect(statements).to.deep.equal([200]);
          expect(await tableRows(db())).to.equal(200);
        });

        it('writes batches of any size with every row as saved', async () => {
          const statements = watchTaskInserts(db());
          const store = open();
          for (const n of [1, 5, 13, 100]) {
            const ids = Array.from({ length: n }, (_, i) => `n${n}-${i}`);
            ids.forEach((id, i) => {
              store.save(row(id, { status: 'running', attempts: 1, message: `m${i}` }));
            });
            await store.flush();
            const read = (await db()('tasks').whereIn('id', ids).select('id', 'message')) as Array<{ id: string; message: string }>;
            expect(read.map((r) => `${r.id}:${r.message}`).sort()).to.deep.equal(ids.map((id, i) => `${id}:m${i}`).sort());
          }
          expect(statements).to.deep.equal([1, 5, 13, 100]);
          expect(await tableRows(db())).to.equal(119);
        });

        it('coalesces the saves of one task into its latest row', async () => {
          const statements = watchTaskInserts(db());
          const store = open();
          for (let i = 1; i <= 5; i++) store.save(row('t1', { status: 'running', progress: i / 5, message: `step ${i}` }));
          await store.flush();
          expect(statements).to.deep.equal([1]);
          expect(await db()('tasks').where({ id: 't1' }).first()).to.include({ progress: 1, message: 'step 5' });
        });

        it('writes on its own after the flush delay, without flush()', async () => {
          const store = open({ flushDelayMs: 20 });
          store.save(row('t1'));
          expect(await tableRows(db())).to.equal(0);
          await until(async () => (await tableRows(db())) === 1, 'tableRows(db()) === 1');
        });

        it('writes at once when a batch is full, before the delay', async () => {
          const statements = watchTaskInserts(db());
          const store = open({ batchSize: 10, flushDelayMs: 60_000 });
          for (let i = 0; i < 10; i++) store.save(row(`t${i}`));
          await until(async () => (await tableRows(db())) === 10, 'tableRows(db()) === 10');
          // The rows can be seen from another connection a moment before the write's answer.
          await until(() => store.pendingCount === 0, 'store.pendingCount === 0');
          expect(statements).to.deep.equal([10]);
        });

        it('splits more rows than a batch into statements of batchSize', async () => {
          const statements = watchTaskInserts(db());
          const store = open({ batchSize: 10, flushDelayMs: 60_000 });
          for (let i = 0; i < 25; i++) store.save(row(`t${i}`));
          await store.flush();
          expect(statements.reduce((a, b) => a + b, 0)).to.equal(25);
          expect(Math.max(...statements)).to.equal(10);
          expect(await tableRows(db())).to.equal(25);
        });

        it('refuses a row the table cannot hold', () => {
          const store = open();
          expect(() => store.save(row('x'.repeat(33)))).to.throw(TypeError, /id/);
          expect(() => store.save(row('t1', { status: 'done' as TaskRow['status'] }))).to.throw(TypeError, /status/);
          expect(() => store.save(row('t1', { progress: Number.NaN }))).to.throw(TypeError, /progress/);
          expect(() => store.save(row('t1', { result: { n: 1n } }))).to.throw(TypeError);
          expect(store.pendingCount).to.equal(0);
        });

        it('refuses a save after close()', async () => {
          const store = open();
          await store.close();
          expect(() => store.save(row('t1'))).to.throw(/closed/);
        });
      });

      describe('#get', () => {
        it('reads a row saved but not yet written', async () => {
          const statements = watchTaskInserts(db());
          const store = open({ flushDelayMs: 60_000 });
          store.save(row('t1', { status: 'running', attempts: 1 }));
          expect(await store.get('t1')).to.deep.include({ id: 't1', status: 'running', attempts: 1 });
          expect(statements).to.deep.equal([]);
        });

        it('reads back every field from the table', async () => {
          const attachments = packAttachments([Buffer.from([0, 1, 2, 255])]);
          const full = row('t1', {
            status: 'succeeded',
            attempts: 2,
            seq: 7,
            progress: 0.25,
            message: 'done',
            error: null,
            result: { image: { $attachment: 0, mime: 'image/png', name: 'x.png' }, list: [1, 'two', null] },
            attachments,
            started_at: 1_700_000_000_500,
            finished_at: 1_700_000_001_000,
          });
          const writer = open();
          writer.save(full);
          await writer.flush();
          const read = await open().get('t1');
          // A row saved without an owner reads back with owner null (no key was required).
          expect(read).to.deep.equal({ ...full, owner: null });
          expect(unpackAttachments(read!.attachments!)[0]).to.deep.equal(Buffer.from([0, 1, 2, 255]));
        });

        it('keeps a null result apart from no result, and reads an error object', async () => {
          const writer = open();
          writer.save(row('null-result', { status: 'succeeded', result: null }));
          writer.save(row('no-result', { status: 'failed', error: { code: 'task_failed', message: 'no', worker_error: { code: 'x', message: 'y' } } }));
          await writer.flush();
          const reader = open();
          const a = await reader.get('null-result');
          const b = await reader.get('no-result');
          expect(a).to.have.property('result', null);
          expect(b).to.not.have.property('result');
          expect(b!.error).to.deep.equal({ code: 'task_failed', message: 'no', worker_error: { code: 'x', message: 'y' } });
          expect(b!.seq).to.equal(undefined);
        });

        it('stores a result media of megabytes unchanged', async () => {
          const media = Buffer.alloc(2 * 1024 * 1024);
          for (let i = 0; i < media.length; i++) media[i] = (i * 31) & 0xff;
          const writer = open();
          writer.save(row('big', { status: 'succeeded', result: { $attachment: 0 }, attachments: packAttachments([media]) }));
          await writer.flush();
          const read = await open().get('big');
          expect(unpackAttachments(read!.attachments!)[0].equals(media)).to.equal(true);
        });

        it('stores media given as the pieces of the blob, read back the same before and after the write', async () => {
          const parts = [Buffer.alloc(300_000, 7), Buffer.from('second'), Buffer.alloc(0)];
          const store = open();
          store.save(row('pieces', { status: 'succeeded', result: [{ $attachment: 0 }], attachments: attachmentPieces(parts) }));
          const before = await store.get('pieces');
          expect(unpackAttachments(before!.attachments!).map((b) => b.toString('hex'))).to.deep.equal(parts.map((b) => b.toString('hex')));
          await store.flush();
          const after = await open().get('pieces');
          expect(after!.attachments!.equals(packAttachments(parts))).to.equal(true);
        });

        it('on SQLite, keeps media in a file beside the database rather than in the table, and purge deletes it', async function () {
          if (backend.name !== 'sqlite') this.skip(); // MySQL keeps them in the table
          const filename = (db().client.config.connection as { filename: string }).filename;
          const media = Buffer.alloc(500_000, 3);
          const store = open();
          store.save(
            row('../evil/id', { status: 'succeeded', result: { $attachment: 0 }, attachments: attachmentPieces([media]), finished_at: 1_700_000_001_000 }),
          );
          await store.flush();
          const raw = (await db()('tasks').where({ id: '../evil/id' }).first()) as { attachments: Buffer | null; media_file: string };
          expect(raw.attachments).to.equal(null);
          expect(raw.media_file).to.match(/^[0-9a-f]{64}$/); // the id's characters never reach the file system
          const file = path.join(`${filename}-media`, raw.media_file);
          expect(fs.readFileSync(file).equals(packAttachments([media]))).to.equal(true);
          expect(unpackAttachments((await open().get('../evil/id'))!.attachments!)[0]!.equals(media)).to.equal(true);

          expect(await store.purgeEnded(1_700_000_002_000)).to.equal(1);
          expect(fs.existsSync(file)).to.equal(false);
          expect(await store.get('../evil/id')).to.equal(null);
        });

        it('refuses attachments that are neither a Buffer nor a list of Buffers', () => {
          const store = open();
          expect(() => store.save(row('t1', { attachments: 'abc' as unknown as Buffer }))).to.throw(TypeError, /attachments/);
          expect(() => store.save(row('t1', { attachments: [Buffer.from('a'), 'b'] as unknown as Buffer[] }))).to.throw(TypeError, /attachments/);
          expect(store.pendingCount).to.equal(0);
        });

        it('returns null for an unknown id', async () => {
          expect(await open().get('nope')).to.equal(null);
        });
      });

      describe('#flush', () => {
        it('keeps the rows of a failed write and writes them once the table is back', async () => {
          const errors: { ids: string[]; dropped: boolean }[] = [];
          const store = open({ retryMinMs: 20, retryMaxMs: 50, onError: (_e, info) => errors.push(info) });
          await db().schema.renameTable('tasks', 'tasks_off');
          for (const id of ['a', 'b', 'c']) store.save(row(id));
          let failure: unknown = null;
          await store.flush().catch((e: unknown) => (failure = e));
          expect(failure).to.be.instanceOf(Error);
          expect(store.pendingCount).to.equal(3);
          expect(errors[0]).to.deep.equal({ ids: ['a', 'b', 'c'], dropped: false });
          await until(() => errors.length >= 3, 'errors.length >= 3'); // retried in the background, with backoff
          await db().schema.renameTable('tasks_off', 'tasks');
          await until(async () => (await tableRows(db())) === 3, 'tableRows(db()) === 3');
          // The rows can be seen from another connection a moment before the write's answer.
          await until(() => store.pendingCount === 0, 'store.pendingCount === 0');
          expect(errors.every((e) => !e.dropped)).to.equal(true);
        });

        it('lets a newer save win over a row kept for retry', async () => {
          const errors: unknown[] = [];
          const store = open({ retryMinMs: 20, retryMaxMs: 50, onError: (e) => errors.push(e) });
          await db().schema.renameTable('tasks', 'tasks_off');
          store.save(row('t1', { status: 'running' }));
          store.save(row('t2', { status: 'running' }));
          await store.flush().catch(() => {});
          store.save(row('t1', { status: 'succeeded', finished_at: 1_700_000_009_000 }));
          await until(() => errors.length >= 2, 'errors.length >= 2');
          await db().schema.renameTable('tasks_off', 'tasks');
          await until(async () => (await tableRows(db())) === 2, 'tableRows(db()) === 2');
          expect((await open().get('t1'))!.status).to.equal('succeeded');
          expect((await store.get('t1'))!.status).to.equal('succeeded');
        });

        it('drops a row the database refuses on its own and writes the others', async () => {
          const errors: { ids: string[]; dropped: boolean }[] = [];
          const store = open({ onError: (_e, info) => errors.push(info) });
          store.save(row('good1'));
          store.save(row('bad', { service_id: 999_999 })); // no such service: a foreign key violation
          store.save(row('good2'));
          await store.flush();
          expect((await db()('tasks').select('id').orderBy('id')).map((r: { id: string }) => r.id)).to.deep.equal(['good1', 'good2']);
          expect(errors).to.deep.equal([{ ids: ['bad'], dropped: true }]);
          expect(store.pendingCount).to.equal(0);
        });
        it('drops a row refused alone after three attempts', async () => {
          const errors: { ids: string[]; dropped: boolean }[] = [];
          const store = open({ retryMinMs: 10, retryMaxMs: 20, onError: (_e, info) => errors.push(info) });
          store.save(row('bad', { service_id: 999_999 }));
          await store.flush().catch(() => {});
          await until(() => store.pendingCount === 0, 'store.pendingCount === 0');
          expect(errors).to.deep.equal([
            { ids: ['bad'], dropped: false },
            { ids: ['bad'], dropped: false },
            { ids: ['bad'], dropped: true },
          ]);
          expect(await tableRows(db())).to.equal(0);
        });

        it('says when the rows waiting to be written pass backlogBytes, and when they are down to half of it', async () => {
          const changes: boolean[] = [];
          const store = open({ backlogBytes: 1000, retryMinMs: 10, retryMaxMs: 20 });
          store.watchBacklog((b) => changes.push(b));
          await db().schema.renameTable('tasks', 'tasks_off');
          store.save(row('a', { message: 'm'.repeat(600) }));
          expect(store.pendingBytes).to.equal(600);
          store.save(row('a', { message: 'm'.repeat(700) })); // a newer save replaces, not adds
          expect(store.pendingBytes).to.equal(700);
          expect(changes).to.deep.equal([]);
          store.save(row('b', { message: 'm'.repeat(400) }));
          expect(changes).to.deep.equal([true]);
          await sleep(50); // failed writes keep the rows and their bytes
          expect(store.pendingBytes).to.equal(1100);
          await db().schema.renameTable('tasks_off', 'tasks');
          await until(() => store.pendingCount === 0, 'store.pendingCount === 0');
          expect(store.pendingBytes).to.equal(0);
          expect(changes).to.deep.equal([true, false]);
        });

        it('keeps a lone row for as long as the table is missing', async () => {
          const errors: { ids: string[]; dropped: boolean }[] = [];
          const store = open({ retryMinMs: 10, retryMaxMs: 20, onError: (_e, info) => errors.push(info) });
          await db().schema.renameTable('tasks', 'tasks_off');
          store.save(row('t1'));
          await until(() => errors.length >= 5, 'errors.length >= 5');
          await db().schema.renameTable('tasks_off', 'tasks');
          await until(async () => (await tableRows(db())) === 1, 'tableRows(db()) === 1');
          expect(errors.every((e) => !e.dropped)).to.equal(true);
        });

        it('drops a row over MySQL max_allowed_packet and writes the others', async function () {
          if (backend.name !== 'mysql') this.skip(); // SQLite has no packet limit
          const [[{ max }]] = (await db().raw('select @@max_allowed_packet as max')) as [[{ max: number }]];
          if (Number(max) > 64 * 1024 * 1024) this.skip(); // too large to exceed in a test
          const errors: { ids: string[]; dropped: boolean }[] = [];
          const store = open({ retryMinMs: 10, retryMaxMs: 20, onError: (_e, info) => errors.push(info) });
          store.save(row('before'));
          store.save(row('huge', { status: 'succeeded', attachments: Buffer.alloc(Number(max), 1) }));
          store.save(row('after'));
          await store.flush().catch(() => {});
          await until(() => store.pendingCount === 0, 'store.pendingCount === 0', 10_000);
          expect((await db()('tasks').select('id').orderBy('id')).map((r: { id: string }) => r.id)).to.deep.equal(['after', 'before']);
          expect(errors.filter((e) => e.dropped)).to.deep.equal([{ ids: ['huge'], dropped: true }]);
        });
      });

      describe('#markInterrupted', () => {
        it('fails every queued or running task with interrupted and leaves ended ones', async () => {
          const store = open();
          store.save(row('q', { status: 'queued' }));
          store.save(row('r', { status: 'running', attempts: 1, progress: 0.5 }));
          store.save(row('s', { status: 'succeeded', result: 1, finished_at: 10 }));
          store.save(row('f', { status: 'failed', error: { code: 'timeout', message: 't' }, finished_at: 10 }));
          store.save(row('c', { status: 'canceled', finished_at: 10 }));
          await store.flush();
          expect(await store.markInterrupted(5000)).to.equal(2);
          for (const id of ['q', 'r']) {
            const t = (await store.get(id))!;
            expect(t).to.include({ status: 'failed', finished_at: 5000 });
            expect(t.error).to.have.property('code', 'interrupted');
            expect(t.error!.message).to.be.a('string').and.not.equal('');
          }
          expect((await store.get('r'))!.progress).to.equal(0.5);
          expect(await store.get('s')).to.include({ status: 'succeeded', finished_at: 10 });
          expect((await store.get('f'))!.error).to.deep.equal({ code: 'timeout', message: 't' });
          expect(await store.markInterrupted(6000)).to.equal(0);
        });

        it('counts rows saved but not yet written', async () => {
          const store = open({ flushDelayMs: 60_000 });
          store.save(row('q'));
          expect(await store.markInterrupted(5000)).to.equal(1);
        });

        if (backend.name === 'sqlite') {
          it('finds the unfinished tasks through the partial index, which holds no ended task', async () => {
            const store = open();
            store.save(row('q', { status: 'queued' }));
            store.save(row('r', { status: 'running', attempts: 1 }));
            store.save(row('s', { status: 'succeeded', result: 1, finished_at: 10 }));
            await store.flush();
            const inIndex = async () =>
              (
                (await db().raw("select count(*) as n from `tasks` indexed by `tasks_unfinished_index` where `status` in ('queued', 'running')")) as Array<{
                  n: number;
                }>
              )[0].n;
            const plan = (await db().raw("explain query plan update `tasks` set `status` = 'failed' where `status` in ('queued', 'running')")) as Array<{
              detail: string;
            }>;
            expect(plan.map((p) => p.detail).join('; ')).to.include('tasks_unfinished_index');
            expect(await inIndex()).to.equal(2);
            expect(await store.markInterrupted(5000)).to.equal(2);
            expect(await inIndex()).to.equal(0);
          });
        }
      });

      describe('#purgeEnded', () => {
        it('deletes the ended tasks finished before the cutoff, and nothing else', async () => {
          const store = open();
          store.save(row('old-s', { status: 'succeeded', finished_at: 100 }));
          store.save(row('old-f', { status: 'failed', finished_at: 200 }));
          store.save(row('old-c', { status: 'canceled', finished_at: 300 }));
          store.save(row('running', { status: 'running' }));
          store.save(row('recent', { status: 'succeeded', finished_at: 1000 }));
          expect(await store.purgeEnded(500)).to.equal(3);
          expect((await db()('tasks').select('id').orderBy('id')).map((r: { id: string }) => r.id)).to.deep.equal(['recent', 'running']);
        });
      });

      describe('#close', () => {
        it('writes what is pending and returns the same promise when called twice', async () => {
          const store = open({ flushDelayMs: 60_000 });
          store.save(row('t1'));
          const first = store.close();
          expect(store.close()).to.equal(first);
          await first;
          expect(await tableRows(db())).to.equal(1);
        });

        it('gives up after closeTimeoutMs and says how many rows were not saved', async () => {
          const store = open({ flushDelayMs: 60_000, retryMinMs: 20, closeTimeoutMs: 200 });
          await db().schema.renameTable('tasks', 'tasks_off');
          store.save(row('t1'));
          store.save(row('t2'));
          const started = Date.now();
          let failure: Error | null = null;
          await store.close().catch((e: Error) => (failure = e));
          expect(Date.now() - started).to.be.lessThan(2000);
          expect(failure).to.be.instanceOf(Error).with.property('message').that.includes('2 task rows not saved');
          await db().schema.renameTable('tasks_off', 'tasks');
        });
      });
    });
  }
});
