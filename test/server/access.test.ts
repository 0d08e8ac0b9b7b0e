import { expect } from 'chai';
import { Writable } from 'node:stream';
import type { Knex } from 'knex';
import { WsPeer } from '../helpers/ws-peer.js';
import { startHub, fakeWorker, http, me, sleep, tempSqlite, type TestHub } from '../helpers/hub.js';
import { forEachDatabase } from '../helpers/backends.js';
import { openDb, migrate } from '../../server/src/db/index.js';
import { createToken, revokeToken } from '../../server/src/store/tokens.js';

/** The hub's answer to a hello, or `{type: 'refused', status}` when the upgrade itself was refused (no valid token). */
async function hello(hub: TestHub, name: string, token?: string) {
  const opened = await WsPeer.open(`${hub.wsUrl}/worker`, token ? { authorization: `Bearer ${token}` } : {}).catch((err: { status?: number }) => err);
  if (!(opened instanceof WsPeer)) return { type: 'refused', status: opened.status };
  const peer = opened;
  peer.send({ type: 'hello', protocol: 1, me: me(name) });
  const answer = await peer.next((m) => m.type === 'welcome' || m.type === 'error');
  await peer.close();
  return answer;
}

forEachDatabase('Who may connect', (dbUrl) => {
  let hub: TestHub;
  let db: Knex;
  let logs: string[];
  beforeEach(async () => {
    const url = await dbUrl();
    db = openDb(url);
    await migrate(db);
    logs = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        logs.push(String(chunk));
        cb();
      },
    });
    hub = await startHub({ db: url, logger: { level: 'debug', stream } });
  });
  afterEach(async () => {
    await hub.close();
    await db.destroy();
  });

  describe('worker tokens', () => {
    it('admits loopback workers while no token exists, and says so in the log', async () => {
      expect((await hello(hub, 'open_svc')).type).to.equal('welcome');
      expect(logs.join('')).to.include('only workers on loopback addresses may connect');
    });

    it('limits a token made for one service to that service (forbidden otherwise)', async () => {
      const token = await createToken(db, 'worker', `w_${Date.now()}`, { service: 'scoped_x' });
      expect((await hello(hub, 'scoped_x', token)).type).to.equal('welcome');
      const other = await hello(hub, 'scoped_y', token);
      expect(other).to.include({ type: 'error', code: 'forbidden' });
      // a token exists now: no token at all is refused (401 at the upgrade) even from loopback
      expect(await hello(hub, 'scoped_x')).to.deep.equal({ type: 'refused', status: 401 });
      expect(logs.join('')).to.not.include(token);
    });

    it('stops admitting a revoked token', async () => {
      const name = `rv_${Date.now()}`;
      const token = await createToken(db, 'worker', name);
      await createToken(db, 'worker', `${name}_other`); // so that tokens still exist after the revoke
      expect((await hello(hub, 'rev_svc', token)).type).to.equal('welcome');
      await revokeToken(db, 'worker', name);
      expect(await hello(hub, 'rev_svc', token)).to.deep.equal({ type: 'refused', status: 401 });
    });
  });

  describe('client keys', () => {
    it('needs a key from the database once one exists, on REST and /client; /healthz stays open', async () => {
      const name = `bot_${Date.now()}`;
      const key = await createToken(db, 'client', name);
      await sleep(1100); // the hub caches the key count for a second
      const denied = await http(hub, 'GET', '/services_list');
      expect(denied.status).to.equal(401);
      expect(denied.body.error.code).to.equal('unauthorized');
      expect((await http(hub, 'GET', '/services_list', undefined, { authorization: `Bearer ${key}` })).status).to.equal(200);
      expect((await http(hub, 'GET', '/services_list', undefined, { authorization: 'Bearer wrong' })).status).to.equal(401);
      expect((await http(hub, 'GET', '/healthz')).status).to.equal(200);
      const refused = await WsPeer.open(`${hub.wsUrl}/client`).catch((e) => e);
      expect(refused.status).to.equal(401);
      const ok = await WsPeer.open(`${hub.wsUrl}/client?key=${encodeURIComponent(key)}`);
      expect((await ok.nextOf('services')).services).to.be.an('array');
      await ok.close();
      expect(logs.join('')).to.not.include(key);
      await revokeToken(db, 'client', name);
    });
  });
});

describe('HUB_API_KEYS and HUB_RATE_LIMIT', () => {
  let hub: TestHub;
  afterEach(() => hub.close());

  it('needs one of HUB_API_KEYS on REST and /client', async () => {
    hub = await startHub({ apiKeys: ['k-one', 'k-two'] });
    expect((await http(hub, 'GET', '/services_list')).status).to.equal(401);
    expect((await http(hub, 'GET', '/services_list', undefined, { authorization: 'Bearer k-two' })).status).to.equal(200);
    const w = await fakeWorker(hub, me('keyed')); // workers are not asked for client keys
    const info = await http(hub, 'GET', `/service_info/${w.welcome.service_id}`, undefined, { authorization: 'Bearer k-one' });
    expect(JSON.stringify(info.body)).to.not.include('k-one');
  });

  it('answers 429 rate_limited past HUB_RATE_LIMIT on REST, and rejects add_task on /client', async () => {
    hub = await startHub({ rateLimit: 5 });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await http(hub, 'GET', '/services_list')).status);
    expect(statuses.slice(0, 5)).to.deep.equal([200, 200, 200, 200, 200]);
    expect(statuses).to.include(429);
    const r = await http(hub, 'GET', '/services_list');
    expect(r.body.error.code).to.equal('rate_limited');
    expect((await http(hub, 'GET', '/healthz')).status).to.equal(200);
    await sleep(1100);
    const c = await WsPeer.open(`${hub.wsUrl}/client`);
    for (let i = 0; i < 8; i++) c.send({ type: 'add_task', ref: `r${i}`, service_id: 999, args: [] });
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await c.nextOf('rejected'));
    expect(answers.map((a) => a.error.code)).to.include('rate_limited');
    await c.close();
  });

  it('refuses an unusable option at start naming it', async () => {
    const err = await startHub({ db: tempSqlite(), rateLimit: -1 }).catch((e: Error) => e);
    expect(String(err)).to.include('HUB_RATE_LIMIT');
  });
});
