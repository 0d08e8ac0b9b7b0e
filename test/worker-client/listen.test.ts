import { expect } from 'chai';
import { dialWorker } from '../helpers/fake-hub.js';
import { sleep, teardown, testService, until } from './support.js';

describe('worker-client', () => {
  describe('#listen', () => {
    it('serves GET /me and resolves with the bound address of port 0', async () => {
      const service = testService();
      const addr = await service.listen({ port: 0 });
      expect(addr.host).to.equal('127.0.0.1');
      expect(addr.port).to.be.above(0);
      expect(addr.url).to.equal(`http://127.0.0.1:${addr.port}`);
      const res = await fetch(`${addr.url}/me`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.match(/application\/json/);
      expect(await res.json()).to.deep.equal(service.me);
      expect((await fetch(`${addr.url}/other`)).status).to.equal(404);
    });

    it('says hello to a hub that dials /ws, waits for welcome, and runs its tasks', async () => {
      const service = testService(({ value }) => ({ echoed: value }), { concurrency: 2 });
      const connected: boolean[] = [];
      service.on('connected', (info) => connected.push(info.dialed));
      const addr = await service.listen({ port: 0, instance: 'listener-1' });
      const hub = await dialWorker(addr.url);
      teardown(() => hub.drop());
      expect(await hub.hello).to.deep.include({ type: 'hello', protocol: 1, concurrency: 2, instance: 'listener-1' });
      await until(() => connected.length === 1, 'connected', 2000);
      expect(connected).to.deep.equal([false]);
      hub.task('t-1', { value: 42 });
      expect((await hub.answer('t-1')).result).to.deep.equal({ echoed: 42 });
    });

    it('takes several hubs at once, each with its own hello', async () => {
      const service = testService();
      const addr = await service.listen({ port: 0 });
      const a = await dialWorker(addr.url);
      teardown(() => a.drop());
      const b = await dialWorker(addr.url);
      teardown(() => b.drop());
      await Promise.all([a.hello, b.hello]);
      a.task('t-a', { value: 'a' });
      b.task('t-b', { value: 'b' });
      expect((await a.answer('t-a')).result).to.deep.equal({ value: 'a' });
      expect((await b.answer('t-b')).result).to.deep.equal({ value: 'b' });
    });

    it('with a secret, answers 401 to a hub without it, on /ws and /me', async () => {
      const service = testService();
      const addr = await service.listen({ port: 0, secret: 's3cret' });
      let err: { status?: number } | undefined;
      await dialWorker(addr.url).catch((e) => (err = e));
      expect(err?.status).to.equal(401);
      await dialWorker(addr.url, { secret: 'wrong' }).catch((e) => (err = e));
      expect(err?.status).to.equal(401);
      expect((await fetch(`${addr.url}/me`)).status).to.equal(401);
      const me = await fetch(`${addr.url}/me`, { headers: { authorization: 'Bearer s3cret' } });
      expect(me.status).to.equal(200);
    });

    it('with a secret, lets in a hub that presents it', async () => {
      const service = testService();
      const addr = await service.listen({ port: 0, secret: 's3cret' });
      const hub = await dialWorker(addr.url, { secret: 's3cret' });
      teardown(() => hub.drop());
      expect((await hub.hello).type).to.equal('hello');
    });

    it('answers 404 to an upgrade at another path', async () => {
      const service = testService();
      const addr = await service.listen({ port: 0 });
      let err: { status?: number } | undefined;
      await dialWorker(`${addr.url}/elsewhere`).catch((e) => (err = e));
      expect(err?.status).to.equal(404);
    });

    it('aborts the tasks of a hub that goes away, and keeps listening', async () => {
      let aborted: string | undefined;
      const service = testService((_a, ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve((aborted = ctx.abortReason)))));
      const addr = await service.listen({ port: 0 });
      const hub = await dialWorker(addr.url);
      await hub.hello;
      hub.task('t-1', { value: 1 });
      await sleep(20);
      hub.drop();
      await until(() => aborted !== undefined, 'the abort', 2000);
      expect(aborted).to.equal('connection_lost');
      const again = await dialWorker(addr.url);
      teardown(() => again.drop());
      expect((await again.hello).type).to.equal('hello');
    });

    it('cuts a dialing hub that stops pinging', async () => {
      const service = testService();
      const addr = await service.listen({ port: 0 });
      const hub = await dialWorker(addr.url, { heartbeatMs: 40 });
      teardown(() => hub.drop());
      await hub.hello;
      await sleep(60);
      hub.stopPinging();
      const closed = await hub.closed;
      expect(closed.code).to.equal(1006);
    });

    it('rejects a port in use and bad options', async () => {
      const service = testService();
      const addr = await service.listen({ port: 0 });
      let err: NodeJS.ErrnoException | undefined;
      await service.listen({ port: addr.port }).catch((e) => (err = e));
      expect(err?.code).to.equal('EADDRINUSE');
      let bad: Error | undefined;
      await service.listen({ port: -1 }).catch((e) => (bad = e));
      expect(bad).to.be.instanceOf(TypeError);
      expect(bad!.message).to.match(/listen option port/);
    });
  });
});
