/**
 * The cluster's NATS-facing parts, each against the real NATS server (docs/cluster.md): liveness
 * in KV with a TTL, load reports, the event relay's dedupe and gap detection, the work-queue
 * stream's pull-with-room, redelivery and removal, and dialed-worker leases.
 */
import { expect } from 'chai';
import { Broker } from '../../server/src/cluster/broker.js';
import { clusterNames } from '../../server/src/cluster/names.js';
import { Membership } from '../../server/src/cluster/membership.js';
import { LoadReports, type ServiceLoad } from '../../server/src/cluster/load-reports.js';
import { EventRelay, encodeEvent, decodeEvent, type RelayedEvent } from '../../server/src/cluster/event-relay.js';
import { TaskStream, type HeldTask, type StreamTask } from '../../server/src/cluster/task-stream.js';
import { DialLeases } from '../../server/src/cluster/dial-leases.js';
import { NATS_URL, natsSkipReason, uniqueCluster } from '../helpers/nats.js';

/** Resolves once `check()` is true, polling every 20 ms; rejects after `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function task(id: string, serviceId = 7): StreamTask {
  return { id, serviceId, args: { x: 1 }, timeoutMs: 1000, queueDeadline: Date.now() + 60_000, createdAt: Date.now(), attempts: 0, seq: 1, from: 'a' };
}

describe('cluster modules (real NATS)', () => {
  const brokers: Broker[] = [];
  const open = async (name: string) => {
    const b = await Broker.connect({ url: NATS_URL, name, pingIntervalMs: 500 });
    brokers.push(b);
    return b;
  };

  before(async function () {
    const why = await natsSkipReason();
    if (why) {
      console.log(`    skipped: ${why}`);
      this.skip();
    }
  });
  afterEach(async () => {
    await Promise.all(brokers.splice(0).map((b) => b.close()));
  });

  describe('clusterNames', () => {
    it('refuses a name NATS subjects or buckets cannot hold', () => {
      for (const bad of ['', 'a.b', 'a b', 'a*', 'a>', 'x'.repeat(65)]) expect(() => clusterNames(bad), bad).to.throw(/HUB_CLUSTER/);
      expect(clusterNames('utils-hub').task(3, 'abc')).to.equal('utils-hub.task.3.abc');
    });
  });

  describe('Membership', () => {
    it('sees a hub join, and sees it dead once its key is not renewed for 3 heartbeats', async () => {
      const n = clusterNames(uniqueCluster());
      const a = await Membership.join(await open('a'), n.hubsBucket, { id: 'a', url: null, startedAt: 1 }, 200);
      const bBroker = await open('b');
      const b = await Membership.join(bBroker, n.hubsBucket, { id: 'b', url: null, startedAt: 2 }, 200);
      await until(() => a.live.has('b') && b.live.has('a'), 2000, 'both alive');
      expect((await a.record('b'))?.startedAt).to.equal(2);
      const dead: string[] = [];
      a.on('dead', (id) => dead.push(id));
      // As after a SIGKILL: the connection goes, the key is not deleted, only not renewed.
      const t0 = Date.now();
      await bBroker.nc.close();
      await until(() => dead.includes('b'), 4000, 'b dead');
      expect(Date.now() - t0).to.be.below(2000);
      expect(a.live.has('a')).to.equal(true);
      await a.leave();
      await b.leave();
    });

    it('sees a hub that leaves at its next beat', async () => {
      const n = clusterNames(uniqueCluster());
      const a = await Membership.join(await open('a'), n.hubsBucket, { id: 'a', url: null, startedAt: 1 }, 150);
      const b = await Membership.join(await open('b'), n.hubsBucket, { id: 'b', url: null, startedAt: 2 }, 150);
      await until(() => a.live.has('b'), 2000, 'b alive');
      await b.leave();
      await until(() => !a.live.has('b'), 1000, 'b gone');
      await a.leave();
    });
  });

  describe('LoadReports', () => {
    it('hears the other hubs, gives the lowest load with room, and forgets a silent hub', async () => {
      const n = clusterNames(uniqueCluster());
      const load = (bestLoad: number | null): Record<string, ServiceLoad> => ({
        7: { connections: 1, inFlight: 1, capacity: 4, bestLoad, queued: 0, name: 's' },
      });
      let bLoad: number | null = 0.25;
      const a = new LoadReports(await open('a'), n.load, 'a', () => load(0.5), { intervalMs: 100, maxSilenceMs: 300 });
      const b = new LoadReports(await open('b'), n.load, 'b', () => load(bLoad), { intervalMs: 100, maxSilenceMs: 300 });
      try {
        await until(() => a.bestRemoteLoad(7) === 0.25 && b.bestRemoteLoad(7) === 0.5, 2000, 'reports');
        expect(a.reports().map((r) => r.hub)).to.deep.equal(['b']);
        expect(a.bestRemoteLoad(8)).to.equal(null);
        bLoad = null;
        b.publishSoon();
        await until(() => a.bestRemoteLoad(7) === null, 1000, 'b full');
        b.close();
        await until(() => a.reports().length === 0, 1000, 'b forgotten');
      } finally {
        a.close();
        b.close();
      }
    });
  });

  describe('EventRelay', () => {
    it('encodes text and binary frames without base64 and refuses bytes it did not make', () => {
      const ev: RelayedEvent = { seq: 5, text: '{"type":"progress","seq":5,"é":1}', binaries: [Buffer.from([1, 2, 3]), Buffer.alloc(0)], end: false };
      const back = decodeEvent(encodeEvent(ev));
      expect(back.seq).to.equal(5);
      expect(back.text).to.equal(ev.text);
      expect(back.binaries!.map((b) => [...b])).to.deep.equal([[1, 2, 3], []]);
      expect(decodeEvent(encodeEvent({ seq: 1, text: 'x', binaries: null, end: true }))).to.include({ end: true, binaries: null });
      expect(() => decodeEvent(Buffer.from('garbage'))).to.throw();
      expect(() => decodeEvent(encodeEvent(ev).subarray(0, 20))).to.throw();
    });

    it('passes each seq once and in order, reports a gap, and stops after the end', async () => {
      const n = clusterNames(uniqueCluster());
      const pub = new EventRelay(await open('a'), n.events);
      const sub = new EventRelay(await open('b'), n.events);
      const got: number[] = [];
      const gaps: Array<[number, number]> = [];
      const f = await sub.follow('t1', 1, { event: (e) => got.push(e.seq), gap: (a, b) => gaps.push([a, b]) });
      const send = (seq: number, end = false) => pub.publish('t1', { seq, text: `{"seq":${seq}}`, binaries: null, end });
      send(1); // already seen (afterSeq 1)
      send(2);
      send(2); // duplicate
      send(3);
      send(5); // 4 lost
      send(6, true);
      send(7); // after the end: not followed any more
      await until(() => got.length >= 4, 2000, 'events');
      await new Promise((r) => setTimeout(r, 100));
      expect(got).to.deep.equal([2, 3, 5, 6]);
      expect(gaps).to.deep.equal([[4, 5]]);
      expect(f.lastSeq).to.equal(6);
    });
  });

  describe('TaskStream', () => {
    it('hands a task to the hub that has room, not to the one without', async () => {
      const n = clusterNames(uniqueCluster());
      const sa = await TaskStream.open(await open('a'), n, { ackWaitMs: 3000, pullExpiresMs: 1000 });
      const sb = await TaskStream.open(await open('b'), n, { ackWaitMs: 3000, pullExpiresMs: 1000 });
      const gotA: HeldTask[] = [];
      const gotB: HeldTask[] = [];
      const pa = await sa.puller(7, (h) => {
        gotA.push(h);
        return true;
      });
      const pb = await sb.puller(7, (h) => {
        gotB.push(h);
        return true;
      });
      try {
        pa.setRoom(0);
        pb.setRoom(1);
        const t0 = Date.now();
        await sa.publish(task('t1'));
        await until(() => gotB.length === 1, 2000, 'b got it');
        expect(Date.now() - t0).to.be.below(200);
        expect(gotA).to.have.length(0);
        expect(gotB[0].task.id).to.equal('t1');
        expect(gotB[0].deliveries).to.equal(1);
        expect(await gotB[0].ack()).to.equal(true);
        // A second publish with the same attempt is the same message (JetStream's duplicate window).
        await sa.publish(task('t2', 8));
        await sa.publish(task('t2', 8));
        await sa.puller(8, () => false);
        expect(await sa.pending(8)).to.equal(1);
      } finally {
        pa.close();
        pb.close();
        sa.close();
        sb.close();
      }
    });

    it('gives a task held by a dead hub to another hub after ack_wait, as a new delivery', async () => {
      const n = clusterNames(uniqueCluster());
      const aBroker = await open('a');
      const sa = await TaskStream.open(aBroker, n, { ackWaitMs: 600, pullExpiresMs: 1000 });
      const sb = await TaskStream.open(await open('b'), n, { ackWaitMs: 600, pullExpiresMs: 1000 });
      const gotA: HeldTask[] = [];
      const gotB: HeldTask[] = [];
      const pa = await sa.puller(7, (h) => {
        gotA.push(h);
        return true;
      });
      pa.setRoom(1);
      await sb.publish(task('t1'));
      await until(() => gotA.length === 1, 2000, 'a got it');
      // While a is alive its in-progress marks keep the task there past ack_wait.
      const pb = await sb.puller(7, (h) => {
        gotB.push(h);
        return true;
      });
      pb.setRoom(1);
      await new Promise((r) => setTimeout(r, 1000));
      expect(gotB).to.have.length(0);
      // a dies: no more marks, no ack.
      pa.close();
      sa.close();
      await aBroker.nc.close();
      await until(() => gotB.length === 1, 3000, 'b got it');
      expect(gotB[0].task.id).to.equal('t1');
      expect(gotB[0].deliveries).to.equal(2);
      expect(await gotB[0].ack()).to.equal(true);
      pb.close();
      sb.close();
    });

    it('removes a waiting task so that no hub gets it, and says when it was no longer there', async () => {
      const n = clusterNames(uniqueCluster());
      const s = await TaskStream.open(await open('a'), n, { ackWaitMs: 3000, pullExpiresMs: 1000 });
      await s.publish(task('t1'));
      await s.publish(task('t2'));
      expect(await s.remove(7, 't1')).to.equal(true);
      expect(await s.remove(7, 't1')).to.equal(false);
      expect(await s.remove(7, 'never')).to.equal(false);
      const got: string[] = [];
      const p = await s.puller(7, (h) => {
        got.push(h.task.id);
        void h.ack();
        return true;
      });
      p.setRoom(2);
      await until(() => got.length === 1, 2000, 't2');
      await new Promise((r) => setTimeout(r, 200));
      expect(got).to.deep.equal(['t2']);
      p.close();
      s.close();
    });

    it('hands a task it cannot place to the next puller at once', async () => {
      const n = clusterNames(uniqueCluster());
      const sa = await TaskStream.open(await open('a'), n, { ackWaitMs: 5000, pullExpiresMs: 1000 });
      const sb = await TaskStream.open(await open('b'), n, { ackWaitMs: 5000, pullExpiresMs: 1000 });
      const gotB: HeldTask[] = [];
      const pa = await sa.puller(7, () => false);
      pa.setRoom(1);
      await sa.publish(task('t1'));
      await new Promise((r) => setTimeout(r, 100));
      pa.close();
      const pb = await sb.puller(7, (h) => {
        gotB.push(h);
        return true;
      });
      pb.setRoom(1);
      await until(() => gotB.length === 1, 1500, 'b got it');
      pb.close();
      sa.close();
      sb.close();
    });
  });

  describe('DialLeases', () => {
    it('lets one hub dial a URL, and another once the holder is dead', async () => {
      const n = clusterNames(uniqueCluster());
      const aBroker = await open('a');
      const lost: string[] = [];
      const a = await DialLeases.open(aBroker, n.dialsBucket, 'a', 200, (u) => lost.push(u));
      const b = await DialLeases.open(await open('b'), n.dialsBucket, 'b', 200, () => undefined);
      const url = 'ws://127.0.0.1:9/worker?x=1';
      expect(await a.acquire(url)).to.equal(true);
      expect(await b.acquire(url)).to.equal(false);
      // Renewed past the TTL (600 ms): still a's.
      await new Promise((r) => setTimeout(r, 900));
      expect(await b.acquire(url)).to.equal(false);
      expect(await b.holder(url)).to.equal('a');
      // a dies: its lease lapses within 3 heartbeats.
      await aBroker.nc.close();
      await until(() => b.acquire(url), 3000, 'b wins');
      expect(await b.holder(url)).to.equal('b');
      await b.release(url);
      expect(await b.holder(url)).to.equal(null);
      await b.close();
      // a, cut off, gives the URL up itself once it could not renew for 2 heartbeats.
      await until(() => lost.length > 0, 3000, 'a gives it up');
      expect(lost).to.deep.equal([url]);
    });
  });
});
