import { expect } from 'chai';
import { IdempotentSubmits, argsHash, parseIdempotencyHeader } from '../../server/src/delivery/idempotency.js';
import { claimKey, claimKeys, listKeys } from '../../server/src/store/idempotency-keys.js';
import { dbBackends, useMigratedDb } from '../helpers/db.js';

const backends = await dbBackends();

describe('Idempotency keys: parts', () => {
  it('argsHash: same for equal args whatever the key order, other for other args, service or bytes', () => {
    const a = argsHash({ serviceId: 1, args: { x: 1, y: { b: [1, 2], a: 'z' } } });
    expect(argsHash({ serviceId: 1, args: { y: { a: 'z', b: [1, 2] }, x: 1 } })).to.equal(a);
    expect(argsHash({ serviceId: 2, args: { x: 1, y: { b: [1, 2], a: 'z' } } })).to.not.equal(a);
    expect(argsHash({ serviceId: 1, args: { x: 1, y: { b: [2, 1], a: 'z' } } })).to.not.equal(a);
    expect(argsHash({ serviceId: 1, args: { x: '1', y: { b: [1, 2], a: 'z' } } })).to.not.equal(a);
    const m = (data: Buffer) => argsHash({ serviceId: 1, args: { img: { mime: 'image/png', data } } });
    expect(m(Buffer.from([1, 2, 3]))).to.equal(m(Buffer.from([1, 2, 3])));
    expect(m(Buffer.from([1, 2, 3]))).to.not.equal(m(Buffer.from([1, 2, 4])));
  });

  it('parseIdempotencyHeader: a structured-field string or a bare value; bad_request otherwise', () => {
    expect(parseIdempotencyHeader(undefined)).to.equal(null);
    expect(parseIdempotencyHeader('"8e03978e-40d5"')).to.equal('8e03978e-40d5');
    expect(parseIdempotencyHeader('"a\\"b\\\\c"')).to.equal('a"b\\c');
    expect(parseIdempotencyHeader('plain key')).to.equal('plain key');
    for (const bad of ['', '""', '"x', 'x'.repeat(256), 'é', '"a"b"']) {
      expect(() => parseIdempotencyHeader(bad), bad)
        .to.throw()
        .with.property('code', 'bad_request');
    }
    expect(() => parseIdempotencyHeader(['a', 'b']))
      .to.throw()
      .with.property('code', 'bad_request');
  });
});

for (const backend of backends) {
  backend.describe(`Idempotency keys in the database [${backend.name}]`, () => {
    const db = useMigratedDb(backend);
    const task = { serviceId: 1, args: { x: 1 }, timeoutMs: 1000, queueTimeoutMs: 1000 };

    it('claimKey: the second insert of a key loses and reads the winner; an expired key is taken over', async () => {
      const row = { scope: '', key: 'k', task_id: 'task-1', service_id: 1, args_hash: 'a'.repeat(64), created_at: 1000 };
      expect(await claimKey(db(), row, 0)).to.deep.equal({ won: true });
      const lost = await claimKey(db(), { ...row, task_id: 'task-2', created_at: 2000 }, 0);
      expect(lost).to.deep.equal({ won: false, row });
      expect(await claimKey(db(), { ...row, task_id: 'task-3', created_at: 5000 }, 1001)).to.deep.equal({ won: true });
      expect((await listKeys(db())).map((r) => r.task_id)).to.deep.equal(['task-3']);
    });

    it('claimKeys: a group of new, held and expired keys, in one insert', async () => {
      const base = { scope: 's', service_id: 1, args_hash: 'a'.repeat(64) };
      await claimKey(db(), { ...base, key: 'held', task_id: 'old-held', created_at: 5000 }, 0);
      await claimKey(db(), { ...base, key: 'expired', task_id: 'old-expired', created_at: 10 }, 0);
      const rows = [
        ...Array.from({ length: 700 }, (_, i) => ({ ...base, key: `new-${i}`, task_id: `t-${i}`, created_at: 6000 })),
        { ...base, key: 'held', task_id: 'new-held', created_at: 6000 },
        { ...base, key: 'expired', task_id: 'new-expired', created_at: 6000 },
      ];
      const out = await claimKeys(db(), rows, 1000);
      expect(out.slice(0, 700).every((o) => o.won)).to.equal(true);
      expect(out[700]).to.deep.include({ won: false });
      expect((out[700] as { row: { task_id: string } }).row.task_id).to.equal('old-held');
      expect(out[701]).to.deep.equal({ won: true });
      const keys = await listKeys(db(), 1000);
      expect(keys).to.have.length(702);
      expect(keys.find((k) => k.key === 'expired')!.task_id).to.equal('new-expired');
    });

    it('concurrent submits of many keys through two instances: one task per key', async () => {
      const a = new IdempotentSubmits(db());
      const b = new IdempotentSubmits(db());
      const runs = new Map<string, number>();
      const outcomes = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          (i % 2 ? a : b).submit('', `key-${i % 50}`, task, (id) => {
            runs.set(id, (runs.get(id) ?? 0) + 1);
            return id;
          }),
        ),
      );
      expect(runs.size).to.equal(50);
      expect([...runs.values()].every((n) => n === 1)).to.equal(true);
      expect(new Set(outcomes.map((o) => o.taskId)).size).to.equal(50);
    });

    it('many concurrent submits of one key through two instances (two hubs) run enqueue once', async () => {
      const a = new IdempotentSubmits(db());
      const b = new IdempotentSubmits(db());
      let runs = 0;
      const outcomes = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 ? a : b).submit('', 'same', task, (id) => {
            runs++;
            return id;
          }),
        ),
      );
      expect(runs).to.equal(1);
      expect(new Set(outcomes.map((o) => o.taskId)).size).to.equal(1);
      expect(outcomes.filter((o) => !o.duplicate)).to.have.length(1);
    });

    it('gives the key up when enqueue throws, so a retry makes the task', async () => {
      const s = new IdempotentSubmits(db());
      let err: unknown;
      try {
        await s.submit('', 'k2', task, () => {
          throw new Error('queue_full');
        });
      } catch (e) {
        err = e;
      }
      expect((err as Error).message).to.equal('queue_full');
      const again = await s.submit('', 'k2', task, (id) => id);
      expect(again.duplicate).to.equal(false);
    });

    it('keeps its cache of recent keys within its byte bound, and purges expired keys', async () => {
      let now = 1_000_000;
      const s = new IdempotentSubmits(db(), { cacheBytes: 4096, ttlMs: 10_000, now: () => now });
      for (let i = 0; i < 50; i++) await s.submit('', `key-${i}-${'p'.repeat(100)}`, task, (id) => id);
      expect(s.cacheSize.bytes).to.be.at.most(4096);
      expect(s.cacheSize.entries).to.be.within(1, 49);
      // A key that fell out of the cache is still answered, from the database.
      const first = await s.submit('', `key-0-${'p'.repeat(100)}`, task, () => 'second run');
      expect(first.duplicate).to.equal(true);
      now += 20_000;
      expect(await s.purge()).to.equal(50);
      expect(s.cacheSize.entries).to.equal(0);
    });
  });
}
