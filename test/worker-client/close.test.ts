import { expect } from 'chai';
import type { TaskContext } from '@utils-hub/worker-client';
import { dialWorker } from '../helpers/fake-hub.js';
import { fakeHub, sleep, teardown, testService, until } from './support.js';

describe('worker-client', () => {
  describe('#close', () => {
    it('sends drain, lets the task in flight finish and answer, then closes the socket', async () => {
      const hub = await fakeHub();
      const service = testService(async () => {
        await sleep(150);
        return 'finished';
      });
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      conn.task('t-1', { value: 1 });
      await sleep(20);
      const closing = service.close();
      const drain = await conn.next((m) => m.type === 'drain', 1000);
      expect(drain).to.deep.equal({ type: 'drain' });
      expect((await conn.answer('t-1')).result).to.equal('finished');
      const closed = await conn.closed;
      expect(closed.code).to.equal(1000);
      await closing;
    });

    it('runs a task that arrives while draining (the hub sent it before it read drain)', async () => {
      const hub = await fakeHub();
      const service = testService(async ({ value }) => {
        await sleep(50);
        return value;
      });
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      conn.task('t-1', { value: 1 });
      await sleep(10);
      const closing = service.close();
      await conn.next((m) => m.type === 'drain', 1000);
      conn.task('t-2', { value: 2 });
      expect((await conn.answer('t-2')).result).to.equal(2);
      await closing;
    });

    it('aborts tasks still running after the grace with shutdown and drops their answers', async () => {
      const hub = await fakeHub();
      let ctx: TaskContext | undefined;
      const service = testService((_a, c) => {
        ctx = c;
        return new Promise((resolve) => c.signal.addEventListener('abort', () => resolve('aborted')));
      });
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      conn.task('t-1', { value: 1 });
      await until(() => ctx !== undefined, 'the handler', 2000);
      const started = Date.now();
      await service.close({ graceMs: 100 });
      expect(Date.now() - started).to.be.within(90, 2000);
      expect(ctx!.abortReason).to.equal('shutdown');
      await conn.closed;
      expect(conn.peek('result')).to.deep.equal([]);
      expect(conn.peek('failed')).to.deep.equal([]);
    });

    it('returns the same promise when called twice, and closes at once with nothing in flight', async () => {
      const hub = await fakeHub();
      const service = testService();
      await service.connect(hub.url);
      const a = service.close();
      const b = service.close({ graceMs: 1 });
      expect(a).to.equal(b);
      await a;
      expect(service.closed).to.equal(true);
    });

    it('stops redialing and refuses connect and listen afterwards', async () => {
      const hub = await fakeHub();
      const service = testService();
      await service.connect(hub.url, { minDelayMs: 10, maxDelayMs: 20 });
      await service.close();
      await sleep(100);
      expect(hub.connections).to.have.length(1);
      const refusal = (p: Promise<unknown>) =>
        p.then(
          () => new Error('resolved'),
          (e: Error) => e,
        );
      expect((await refusal(service.connect(hub.url))).message).to.match(/closed/);
      expect((await refusal(service.listen({ port: 0 }))).message).to.match(/closed/);
    });

    it('drains the connections of a listening worker and closes its server', async () => {
      const service = testService(async () => {
        await sleep(80);
        return 'ok';
      });
      const addr = await service.listen({ port: 0 });
      const hub = await dialWorker(addr.url);
      teardown(() => hub.drop());
      await hub.hello;
      hub.task('t-1', { value: 1 });
      await sleep(10);
      const closing = service.close();
      await hub.next((m) => m.type === 'drain', 1000);
      expect((await hub.answer('t-1')).result).to.equal('ok');
      await closing;
      let refused = false;
      await fetch(`${addr.url}/me`).catch(() => (refused = true));
      expect(refused).to.equal(true);
    });
  });
});
