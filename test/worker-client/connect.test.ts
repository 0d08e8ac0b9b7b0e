import { expect } from 'chai';
import { HubError, type ConnectedInfo } from '@utils-hub/worker-client';
import { FakeHub } from '../helpers/fake-hub.js';
import { fakeHub, sleep, teardown, testService, until } from './support.js';

describe('worker-client', () => {
  describe('#connect', () => {
    it('says hello with the description, concurrency and instance, with the token as a bearer', async () => {
      const hub = await fakeHub();
      const service = testService(undefined, { concurrency: 3 });
      const info = await service.connect(hub.url, { token: 'tok-1', instance: 'box-1' });
      const conn = await hub.connection(0);
      const hello = await conn.hello;
      expect(hello).to.deep.include({ type: 'hello', protocol: 1, concurrency: 3, instance: 'box-1' });
      expect(hello.me).to.deep.equal(service.me);
      expect(conn.authorization).to.equal('Bearer tok-1');
      expect(info).to.deep.equal({ serviceId: 1, connectionId: conn.id, heartbeatMs: 15_000, peer: hub.url, dialed: true });
    });

    it('lets connect() override the concurrency and announces hostname-pid by default', async () => {
      const hub = await fakeHub();
      const service = testService();
      await service.connect(hub.url, { concurrency: 7 });
      const hello = await (await hub.connection(0)).hello;
      expect(hello.concurrency).to.equal(7);
      expect(hello.instance).to.match(new RegExp(`-${process.pid}$`));
    });

    it('emits connected with the welcome and task with each task', async () => {
      const hub = await fakeHub({ heartbeatMs: 1234 });
      const service = testService();
      const connected: ConnectedInfo[] = [];
      const tasks: Array<[string, number]> = [];
      service.on('connected', (i) => connected.push(i));
      service.on('task', (id, attempt) => tasks.push([id, attempt]));
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      conn.task('t-1', { value: 1 }, { attempt: 2 });
      await conn.answer('t-1');
      expect(connected).to.have.length(1);
      expect(connected[0].heartbeatMs).to.equal(1234);
      expect(tasks).to.deep.equal([['t-1', 2]]);
    });

    it('redials after the hub drops the connection and says hello again', async () => {
      const hub = await fakeHub();
      const service = testService();
      const disconnected: number[] = [];
      service.on('disconnected', (code) => disconnected.push(code));
      await service.connect(hub.url, { minDelayMs: 20, maxDelayMs: 100 });
      (await hub.connection(0)).drop();
      const second = await hub.connection(1, 3000);
      const hello = await second.hello;
      expect(hello.type).to.equal('hello');
      expect(hello.me.name).to.equal(service.name);
      await until(() => disconnected.length === 1, 'disconnected', 2000);
      expect(disconnected[0]).to.equal(1006);
      // The new connection works.
      second.task('t-2', { value: 'again' });
      expect((await second.answer('t-2')).result).to.deep.equal({ value: 'again' });
    });

    it('keeps redialing while the hub is down, then connects', async () => {
      const hub = await fakeHub();
      const url = hub.url;
      await hub.close();
      const service = testService();
      const connecting = service.connect(url, { minDelayMs: 20, maxDelayMs: 50 });
      await until(() => service.errors.length >= 2, 'two failed dials', 3000);
      expect(service.errors[0].message).to.match(/ECONNREFUSED/);
      // A hub comes back on the same port.
      const back = await FakeHub.start({}, Number(new URL(url).port));
      teardown(() => back.close());
      const info = await connecting;
      expect(info.serviceId).to.equal(1);
    });

    it('emits a refusal as a HubError with its code, and retries with backoff', async () => {
      const hub = await fakeHub({ refuse: { code: 'unauthorized', message: 'no valid token' } });
      const service = testService();
      void service.connect(hub.url, { minDelayMs: 20, maxDelayMs: 40 });
      await hub.connection(1, 3000);
      await until(() => service.errors.length >= 2, 'two refusals', 2000);
      const err = service.errors[0] as HubError;
      expect(err).to.be.instanceOf(HubError);
      expect(err.code).to.equal('unauthorized');
      expect(err.message).to.equal('no valid token');
      // The hub lets it in once refusals stop.
      const connected = new Promise((resolve) => service.once('connected', resolve));
      hub.options = {};
      await connected;
    });

    it('turns an HTTP refusal of the upgrade into an error that names the status', async () => {
      const hub = await fakeHub();
      const service = testService();
      void service.connect(hub.url.replace('/worker', '/nope'), { minDelayMs: 1000 });
      await until(() => service.errors.length >= 1, 'an error', 2000);
      expect(service.errors[0].message).to.match(/answered 400|answered 404|Unexpected server response/);
    });

    it('cuts a hub that stops pinging and redials', async () => {
      const hub = await fakeHub({ heartbeatMs: 50 });
      const service = testService();
      await service.connect(hub.url, { minDelayMs: 10, maxDelayMs: 20 });
      const first = await hub.connection(0);
      const started = Date.now();
      first.stopPinging();
      const closed = await first.closed;
      const silentFor = Date.now() - started;
      expect(closed.code).to.equal(1006);
      expect(silentFor).to.be.within(80, 1000);
      expect(service.errors.some((e) => /sent no ping/.test(e.message))).to.equal(true);
      await (await hub.connection(1, 2000)).hello;
    });

    it('keeps a connection whose hub pings', async () => {
      const hub = await fakeHub({ heartbeatMs: 30 });
      const service = testService();
      await service.connect(hub.url);
      await sleep(300);
      expect(hub.connections).to.have.length(1);
      expect(service.errors).to.deep.equal([]);
    });

    it('gives up waiting for welcome after the handshake timeout and redials', async () => {
      const hub = await fakeHub({ autoWelcome: false });
      const service = testService();
      void service.connect(hub.url, { handshakeTimeoutMs: 100, minDelayMs: 10, maxDelayMs: 20 });
      await hub.connection(1, 3000);
      expect(service.errors[0].message).to.match(/no welcome/);
    });

    it('rejects bad options at once, naming them', async () => {
      const service = testService();
      const refusal = (p: Promise<unknown>) =>
        p.then(
          () => new Error('resolved'),
          (e: Error) => e,
        );
      const a = await refusal(service.connect('ftp://x', {}));
      expect(a).to.be.instanceOf(TypeError);
      expect(a.message).to.match(/connect option hubUrl/);
      expect((await refusal(service.connect('ws://127.0.0.1:1/worker', { concurrency: 0 }))).message).to.match(
        /option concurrency: must be a whole number from 1 to 1024, got 0/,
      );
      expect((await refusal(service.connect('ws://127.0.0.1:1/worker', { minDelayMs: 100, maxDelayMs: 10 }))).message).to.match(/option maxDelayMs/);
      expect((await refusal(service.connect([], {}))).message).to.match(/connect option hubUrl: an empty list/);
      expect((await refusal(service.connect(['ws://127.0.0.1:1/worker', 'ftp://x'], {}))).message).to.match(/connect option hubUrl: must be a ws/);
    });

    it('rejects the first-welcome promise when closed before a welcome', async () => {
      const hub = await fakeHub({ autoWelcome: false });
      const service = testService();
      const connecting = service.connect(hub.url);
      await hub.connection(0);
      await service.close();
      let err: unknown;
      await connecting.catch((e) => (err = e));
      expect((err as Error).message).to.match(/closed/);
    });
  });
});
