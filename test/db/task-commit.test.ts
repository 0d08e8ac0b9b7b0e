/**
 * The task store's commit callbacks and group commit (docs/protocol.md, "What an acknowledgement
 * means"): what the hub waits for before it acknowledges a task or sends its end.
 */
import { expect } from 'chai';
import { dbBackends, useTaskStores, watchTaskInserts } from '../helpers/db.js';
import { sleep, until } from '../helpers/wait.js';

const backends = await dbBackends();

const nextTurn = () => new Promise<void>((r) => setImmediate(r));

describe('TaskStore commit callbacks', () => {
  for (const backend of backends) {
    backend.describe(`on ${backend.name}`, () => {
      const { db, open, row } = useTaskStores(backend);

      /** The row's status as the table holds it (not the store's pending copy). */
      async function tableStatus(id: string): Promise<string | null> {
        const r = (await db()('tasks').where({ id }).first('status')) as { status: string } | undefined;
        return r?.status ?? null;
      }

      it('calls back once the row is in the table, not before', async () => {
        const store = open({ flushDelayMs: 0 });
        const calls: Array<[boolean, string | null]> = [];
        let seenAtCall: Promise<string | null> | null = null;
        store.save(row('a'), (dropped) => {
          calls.push([dropped, null]);
          seenAtCall = tableStatus('a');
        });
        expect(calls).to.deep.equal([]); // never from inside save()
        await until(() => calls.length === 1, 'calls.length === 1');
        expect(calls[0][0]).to.equal(false);
        expect(await seenAtCall).to.equal('queued');
      });

      it('with flushDelayMs 0, writes without flush() and groups the rows saved during a write into the next one', async () => {
        const store = open({ flushDelayMs: 0 });
        const inserts = watchTaskInserts(db());
        let done = 0;
        store.save(row('warm'), () => done++); // the first write also reads MySQL's packet limit
        await until(() => done === 1, 'done === 1');
        store.save(row('a'), () => done++);
        await nextTurn(); // the write of `a` is under way
        for (const id of ['b', 'c', 'd']) store.save(row(id), () => done++);
        await until(() => done === 5, 'done === 5');
        expect(inserts).to.deep.equal([1, 1, 3]);
      });

      it('passes the callbacks of a replaced row on to the newer one, in order, once', async () => {
        const store = open({ flushDelayMs: 20 });
        const calls: string[] = [];
        store.save(row('t'), () => calls.push('queued'));
        store.save(row('t', { status: 'running', started_at: 1_700_000_000_100 }), () => calls.push('running'));
        store.save(row('t', { status: 'succeeded', finished_at: 1_700_000_000_200 }), () => calls.push('succeeded'));
        await store.flush();
        expect(calls).to.deep.equal(['queued', 'running', 'succeeded']);
        expect(await tableStatus('t')).to.equal('succeeded');
        await sleep(50);
        expect(calls).to.have.length(3);
      });

      it('waits while the table cannot be written, and calls back once it can', async () => {
        const store = open({ flushDelayMs: 0, retryMinMs: 20, retryMaxMs: 50, onError: () => {} });
        await db().schema.renameTable('tasks', 'tasks_off');
        const calls: string[] = [];
        store.save(row('t1'), () => calls.push('t1 queued'));
        await sleep(150); // a few failed writes
        store.save(row('t1', { status: 'succeeded', finished_at: 1_700_000_000_200 }), () => calls.push('t1 succeeded'));
        store.save(row('t2'), () => calls.push('t2 queued'));
        await sleep(150);
        expect(calls).to.deep.equal([]);
        await db().schema.renameTable('tasks_off', 'tasks');
        await until(() => calls.length === 3, 'calls.length === 3');
        expect(calls).to.deep.equal(['t1 queued', 't1 succeeded', 't2 queued']);
        expect(await tableStatus('t1')).to.equal('succeeded');
        expect(await tableStatus('t2')).to.equal('queued');
      });

      it('calls back with dropped for a row the database refuses on its own', async () => {
        const store = open({ flushDelayMs: 0, onError: () => {} });
        const calls: string[] = [];
        store.save(row('good'), (dropped) => calls.push(`good ${dropped}`));
        store.save(row('bad', { service_id: 999_999 }), (dropped) => calls.push(`bad ${dropped}`)); // a foreign key violation
        await until(() => calls.length === 2, 'calls.length === 2');
        expect([...calls].sort()).to.deep.equal(['bad true', 'good false']);
      });

      it('survives a callback that throws', async () => {
        const store = open({ flushDelayMs: 0 });
        const calls: string[] = [];
        store.save(row('x'), () => {
          throw new Error('faulty');
        });
        store.save(row('y'), () => calls.push('y'));
        await until(() => calls.length === 1, 'calls.length === 1');
        store.save(row('z'), () => calls.push('z'));
        await until(() => calls.length === 2, 'calls.length === 2');
      });
    });
  }
});
