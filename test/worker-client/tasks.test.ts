import { expect } from 'chai';
import { defineService, ServiceError, TaskAbortedError, type TaskContext } from '@utils-hub/worker-client';
import { fakeHub, sleep, teardown, testService, uniqueName, until } from './support.js';
import type { HubSide } from '../helpers/fake-hub.js';

/** A service connected to a fresh fake hub, with the hub's side of its connection. */
async function connected(service: ReturnType<typeof testService>, hubOptions = {}): Promise<HubSide> {
  const hub = await fakeHub(hubOptions);
  await service.connect(hub.url);
  return hub.connection(0);
}

describe('worker-client', () => {
  describe('tasks', () => {
    it('answers result with what the handler returns, args keyed by name', async () => {
      const conn = await connected(testService(async ({ value, text }) => ({ got: value, text })));
      conn.task('t-1', { value: { a: [1, 2] }, text: 'hi' });
      expect(await conn.answer('t-1')).to.deep.equal({ type: 'result', task_id: 't-1', result: { got: { a: [1, 2] }, text: 'hi' } });
    });

    it('answers null for a handler that returns nothing', async () => {
      const conn = await connected(testService(() => undefined));
      conn.task('t-1', { value: 1 });
      expect((await conn.answer('t-1')).result).to.equal(null);
    });

    it('fills defaults and leaves out optional args that were not given', async () => {
      let seen: Record<string, unknown> = {};
      const service = defineService({
        name: uniqueName(),
        description: '',
        input: [
          { argument_name: 'n', type: 'int', default: 5 },
          { argument_name: 'opt', type: 'str', required: false },
        ],
        handler: (args) => {
          seen = { ...args };
          return args.n * 2;
        },
      });
      teardown(() => service.close());
      const hub = await fakeHub();
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      conn.task('t-1', {});
      expect((await conn.answer('t-1')).result).to.equal(10);
      expect(seen).to.deep.equal({ n: 5 });
    });

    it('fails with invalid_args, without running the handler, when args do not fit', async () => {
      let ran = false;
      const conn = await connected(testService(() => (ran = true)));
      conn.task('t-1', { text: 'no value' });
      const answer = await conn.answer('t-1');
      expect(answer.type).to.equal('failed');
      expect(answer.error).to.deep.equal({ code: 'invalid_args', message: 'value: is required' });
      expect(ran).to.equal(false);
    });

    it('fails with the code of a ServiceError', async () => {
      const conn = await connected(
        testService(() => {
          throw new ServiceError('unsupported_format', 'cannot read TIFF');
        }),
      );
      conn.task('t-1', { value: 1 });
      expect(await conn.answer('t-1')).to.deep.equal({ type: 'failed', task_id: 't-1', error: { code: 'unsupported_format', message: 'cannot read TIFF' } });
    });

    it('fails with internal and the message of any other exception, sync or async', async () => {
      const conn = await connected(
        testService(async ({ value }) => {
          if (value === 'sync') throw new Error('boom');
          await sleep(1);
          throw new TypeError('late boom');
        }),
      );
      conn.task('t-1', { value: 'sync' });
      conn.task('t-2', { value: 'async' });
      expect((await conn.answer('t-1')).error).to.deep.equal({ code: 'internal', message: 'boom' });
      expect((await conn.answer('t-2')).error).to.deep.equal({ code: 'internal', message: 'late boom' });
    });

    it('refuses a ServiceError code that does not fit the wire', () => {
      expect(() => new ServiceError('', 'x')).to.throw(TypeError);
      expect(() => new ServiceError('x'.repeat(129), 'x')).to.throw(TypeError);
    });

    it('fires the signal on cancel, with the reason, and still answers', async () => {
      let ctx: TaskContext | undefined;
      const conn = await connected(
        testService((_args, c) => {
          ctx = c;
          return new Promise((_resolve, reject) => c.signal.addEventListener('abort', () => reject(c.signal.reason)));
        }),
      );
      conn.task('t-1', { value: 1 });
      await until(() => ctx !== undefined, 'the handler', 2000);
      expect(ctx!.signal.aborted).to.equal(false);
      conn.cancel('t-1', 'client');
      const answer = await conn.answer('t-1');
      expect(ctx!.signal.aborted).to.equal(true);
      expect(ctx!.signal.reason).to.be.instanceOf(TaskAbortedError);
      expect((ctx!.signal.reason as TaskAbortedError).reason).to.equal('client');
      expect(ctx!.abortReason).to.equal('client');
      // The answer frees the hub's slot; the hub drops it.
      expect(answer.error.code).to.equal('canceled');
    });

    it('fires the signal with timeout when timeout_ms passes without a cancel', async () => {
      let reason: unknown;
      const conn = await connected(
        testService((_a, c) => new Promise((resolve) => c.signal.addEventListener('abort', () => resolve((reason = c.abortReason))))),
      );
      conn.task('t-1', { value: 1 }, { timeoutMs: 50 });
      await conn.answer('t-1');
      expect(reason).to.equal('timeout');
    });

    it('does not run a task whose cancel came first, and answers it canceled', async () => {
      let ran = false;
      const conn = await connected(testService(() => (ran = true)));
      conn.cancel('t-1', 'client');
      conn.task('t-1', { value: 1 });
      const answer = await conn.answer('t-1');
      expect(answer.error.code).to.equal('canceled');
      expect(ran).to.equal(false);
    });

    it('ignores a second task message with the id of a running task, reporting it', async () => {
      let runs = 0;
      const service = testService(async () => {
        runs++;
        await sleep(100);
        return runs;
      });
      const conn = await connected(service);
      conn.task('t-1', { value: 1 });
      conn.task('t-1', { value: 2 });
      expect((await conn.answer('t-1')).result).to.equal(1);
      await sleep(50);
      expect(conn.peek('result')).to.have.length(0);
      expect(runs).to.equal(1);
      expect(service.errors.map((e) => e.message)).to.deep.include('task t-1 is already running on this connection');
    });

    it('runs tasks side by side up to the concurrency', async () => {
      let running = 0;
      let most = 0;
      const service = testService(
        async () => {
          most = Math.max(most, ++running);
          await sleep(50);
          running--;
          return null;
        },
        { concurrency: 3 },
      );
      const conn = await connected(service);
      for (let i = 0; i < 3; i++) conn.task(`t-${i}`, { value: i });
      await Promise.all([0, 1, 2].map((i) => conn.answer(`t-${i}`)));
      expect(most).to.equal(3);
    });

    it('aborts tasks of a lost connection with connection_lost and drops their answers', async () => {
      let ctx: TaskContext | undefined;
      const hub = await fakeHub();
      const service = testService((_a, c) => {
        ctx = c;
        return new Promise((resolve) => c.signal.addEventListener('abort', () => resolve('late')));
      });
      await service.connect(hub.url, { minDelayMs: 10, maxDelayMs: 20 });
      const first = await hub.connection(0);
      first.task('t-1', { value: 1 });
      await until(() => ctx !== undefined, 'the handler', 2000);
      first.drop();
      await until(() => ctx!.signal.aborted, 'the abort', 2000);
      expect(ctx!.abortReason).to.equal('connection_lost');
      const second = await hub.connection(1, 2000);
      await second.hello;
      await sleep(50);
      expect(second.peek('result')).to.have.length(0);
      expect(service.inFlight).to.equal(0);
    });

    it('reports an error message from the hub as a HubError', async () => {
      const service = testService();
      const conn = await connected(service);
      conn.send({ type: 'error', code: 'bad_message', message: 'what was that', task_id: 't-9' });
      await until(() => service.errors.length > 0, 'the error', 2000);
      expect(service.errors[0]).to.include({ code: 'bad_message', message: 'what was that' });
    });

    it('reports a broken message from the hub and keeps the connection', async () => {
      const service = testService();
      const conn = await connected(service);
      conn.ws.send('{not json');
      conn.send({ type: 'task', task_id: 'x' }); // breaks the schema: no args
      await until(() => service.errors.length >= 2, 'two errors', 2000);
      conn.task('t-1', { value: 'still here' });
      expect((await conn.answer('t-1')).result).to.deep.equal({ value: 'still here' });
    });
  });
});
