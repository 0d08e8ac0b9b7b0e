import { expect } from 'chai';
import { TASK_ID_LENGTH, newTaskId, timePrefix } from '../../server/src/core/task-id.js';

const URL_SAFE = /^[A-Za-z0-9_-]+$/;
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('task ids', () => {
  it('are 21 URL-safe characters, like a nanoid, and never repeat', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const id = newTaskId();
      expect(id).to.have.length(TASK_ID_LENGTH).and.match(URL_SAFE);
      seen.add(id);
    }
    expect(seen.size).to.equal(100_000);
    // Each of the 13 random characters takes every one of the 64 values.
    for (let pos = 8; pos < TASK_ID_LENGTH; pos++) {
      expect(new Set([...seen].map((id) => id[pos])).size, `character ${pos}`).to.equal(64);
    }
  });

  it('sort in byte order by the millisecond they were made in', () => {
    const times = [
      0,
      1,
      63,
      64,
      4095,
      4096,
      Date.parse('2026-12-01T00:00:00Z'),
      Date.parse('2026-12-01T00:00:00.001Z'),
      Date.parse('2100-01-01T00:00:00Z'),
      2 ** 48 - 1,
    ];
    const ids = times.map((t) => newTaskId(t));
    expect([...ids].sort(byteOrder)).to.deep.equal(ids);
    // Random times, compared pairwise: the id of the later one sorts after.
    for (let i = 0; i < 2000; i++) {
      const a = Math.floor(Math.random() * 2 ** 44);
      const b = a + 1 + Math.floor(Math.random() * 1000);
      expect(byteOrder(newTaskId(a), newTaskId(b))).to.equal(-1);
    }
  });

  it('spell the time in their first 8 characters, the rest random', () => {
    const t = Date.parse('2026-12-01T12:34:56.789Z');
    expect(timePrefix(t)).to.have.length(8);
    const a = newTaskId(t);
    const b = newTaskId(t);
    expect(a.slice(0, 8)).to.equal(b.slice(0, 8)).and.equal(timePrefix(t));
    expect(a.slice(8)).to.not.equal(b.slice(8));
  });
});
