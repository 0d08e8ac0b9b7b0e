import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mapBytes, MediaPool } from '../../server/src/core/media-pool.js';
import { fakeClient, fakeWorker, me, startHub, type TestHub } from '../helpers/hub.js';

describe('MediaPool (where a held task keeps its media)', () => {
  const KiB = 1024;

  it('copies large bytes into a slab and keeps small and oversize ones as they are', () => {
    const pool = new MediaPool(1024 * KiB, 2, 64 * KiB);
    const small = new Uint8Array(10);
    expect(pool.take(small)).to.equal(small);
    const huge = new Uint8Array(2048 * KiB);
    expect(pool.take(huge)).to.equal(huge);
    const big = randomBytes(100 * KiB);
    const copy = pool.take(big);
    expect(copy).to.not.equal(big);
    expect(Buffer.from(copy).equals(big)).to.equal(true);
    big.fill(0); // the copy is the pool's own
    expect(copy[0] | copy[1] | copy[2]).to.not.equal(0);
    expect(pool.size).to.deep.equal({ views: 1, slabBytes: 1024 * KiB });
  });

  it('reuses a slab only once every view cut from it is released by every holder', () => {
    const pool = new MediaPool(256 * KiB, 1, 64 * KiB);
    const a = pool.take(randomBytes(100 * KiB));
    const bBytes = randomBytes(100 * KiB);
    const b = pool.take(bBytes);
    // The slab is full: a third one stays outside the pool.
    const c = randomBytes(100 * KiB);
    expect(pool.take(c)).to.equal(c);
    expect(pool.retain(b)).to.equal(true); // a socket writes b
    expect(pool.retain(c)).to.equal(false);
    pool.release(a);
    pool.release(b); // its task ended; the write still holds it
    expect(pool.take(c)).to.equal(c); // nothing reused yet
    expect(Buffer.from(b).equals(bBytes)).to.equal(true);
    pool.release(b); // written
    expect(pool.size.views).to.equal(0);
    const d = pool.take(c);
    expect(d).to.not.equal(c);
    expect(d.byteOffset).to.equal(a.byteOffset); // from the start of the slab again
    pool.release(c); // not the pool's: ignored
    expect(pool.size.views).to.equal(1);
  });

  it('mapBytes finds the bytes anywhere in args and puts what the function answers in their place', () => {
    const one = new Uint8Array(3);
    const two = new Uint8Array(4);
    const args = { img: { mime: 'image/png', data: one }, list: [1, { data: two }, 'x'], n: null };
    const seen: Uint8Array[] = [];
    mapBytes(args, (b) => {
      seen.push(b);
      return b === one ? new Uint8Array([9]) : b;
    });
    expect(seen).to.have.members([one, two]);
    expect(Array.from(args.img.data)).to.deep.equal([9]);
    expect((args.list[1] as { data: Uint8Array }).data).to.equal(two);
  });
});

describe("A held task's media through the pool (real hub)", () => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startHub();
  });
  afterEach(() => hub.close());

  it('sends every task its own bytes, on its first worker and again on the next one after that worker is lost, round after round', async () => {
    const service = me('pool_svc', [{ argument_name: 'file', type: 'file' }]);
    const lost = await fakeWorker(hub, service, { concurrency: 8 });
    const c = await fakeClient(hub);
    const sid = lost.welcome.service_id;
    const sent = new Map<string, Buffer>();
    const submit = async (ref: string) => {
      const data = randomBytes(300 * 1024 + Math.floor(Math.random() * 1000));
      c.send({ type: 'add_task', ref, service_id: sid, args: [{ mime: 'application/octet-stream', name: `${ref}.bin`, data }] });
      const acc = await c.next((m) => m.type === 'accepted' && m.ref === ref);
      sent.set(acc.task_id, data);
    };
    for (let i = 0; i < 8; i++) await submit(`a${i}`);
    // The first worker gets each task's bytes, and is lost without answering.
    for (let i = 0; i < 8; i++) {
      const t = await lost.nextOf('task');
      expect(Buffer.from(t.args.file.data).equals(sent.get(t.task_id)!)).to.equal(true);
    }
    await lost.close();
    const next = await fakeWorker(hub, service, { concurrency: 8 });
    const answer = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const t = await next.nextOf('task');
        expect(Buffer.from(t.args.file.data).equals(sent.get(t.task_id)!), `bytes of ${t.task_id} (attempt ${t.attempt})`).to.equal(true);
        next.send({ type: 'result', task_id: t.task_id, result: { size: t.args.file.data.length } });
      }
    };
    await answer(8);
    // Their slabs are reused by the next tasks: every task still gets its own bytes.
    for (let round = 0; round < 3; round++) {
      const refs = Array.from({ length: 8 }, (_, i) => `r${round}-${i}`);
      await Promise.all(refs.map(submit));
      await answer(8);
    }
    for (const [taskId, data] of sent) expect((await c.nextOf('result', taskId)).result).to.deep.equal({ size: data.length });
  });
});
