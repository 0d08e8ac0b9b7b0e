import { expect } from 'chai';
import { EndedTasks, bytesOf, type EndedTask } from '../../server/src/core/ended-tasks.js';

function ended(id: string, finishedAt: number, mediaBytes = 0): EndedTask {
  return {
    id,
    serviceId: 1,
    status: 'succeeded',
    seq: 3,
    text: `{"type":"result","task_id":"${id}"}`,
    binaries: mediaBytes > 0 ? [Buffer.alloc(mediaBytes)] : null,
    progress: null,
    message: null,
    attempts: 1,
    createdAt: finishedAt - 10,
    startedAt: finishedAt - 5,
    finishedAt,
  };
}

describe('EndedTasks (the in-memory cache of ended tasks)', () => {
  let now = 1_000_000;
  const clock = () => now;
  beforeEach(() => {
    now = 1_000_000;
  });

  it('keeps the latest `limit` tasks and drops the oldest first, across many compactions', () => {
    const cache = new EndedTasks(100, 2 ** 40, 60_000, clock);
    for (let i = 0; i < 5000; i++) cache.add(ended(`t${i}`, now));
    expect(cache.size).to.equal(100);
    expect(cache.get('t4899')).to.equal(undefined);
    for (let i = 4900; i < 5000; i++) expect(cache.get(`t${i}`)?.id).to.equal(`t${i}`);
  });

  it('drops the oldest tasks once their media pass the byte bound, and keeps a newest one larger than the bound', () => {
    const cache = new EndedTasks(10_000, 3 * 1024 * 1024, 60_000, clock);
    for (let i = 0; i < 10; i++) cache.add(ended(`m${i}`, now, 1024 * 1024));
    expect(cache.size).to.equal(2); // two of 1 MiB and their texts fit under 3 MiB, a third does not
    expect(cache.heldBytes).to.be.at.most(3 * 1024 * 1024);
    expect(cache.get('m9')).to.not.equal(undefined);
    expect(cache.get('m7')).to.equal(undefined);
    cache.add(ended('huge', now, 8 * 1024 * 1024));
    expect(cache.size).to.equal(1);
    expect(cache.get('huge')?.binaries?.[0]?.length).to.equal(8 * 1024 * 1024);
    cache.add(ended('small', now));
    expect(cache.size).to.equal(1);
    expect(cache.get('small')).to.not.equal(undefined);
  });

  it('counts a task added again once, with its latest state', () => {
    const cache = new EndedTasks(10, 2 ** 40, 60_000, clock);
    cache.add(ended('a', now, 1000));
    cache.add(ended('a', now, 10));
    expect(cache.size).to.equal(1);
    expect(cache.get('a')?.binaries?.[0]?.length).to.equal(10);
    expect(cache.heldBytes).to.equal(bytesOf(ended('a', now, 10)));
    for (let i = 0; i < 10; i++) cache.add(ended(`b${i}`, now));
    expect(cache.get('a')).to.equal(undefined);
    expect(cache.size).to.equal(10);
  });

  it('forgets a task after the TTL, on read and on purge, and gives back its bytes', () => {
    const cache = new EndedTasks(10, 2 ** 40, 1000, clock);
    cache.add(ended('old', now, 100));
    now += 600;
    cache.add(ended('newer', now, 100));
    now += 600;
    expect(cache.get('old')).to.equal(undefined);
    expect(cache.size).to.equal(1);
    now += 600;
    cache.purge();
    expect(cache.size).to.equal(0);
    expect(cache.heldBytes).to.equal(0);
  });

  it('keeps nothing with a limit of 0', () => {
    const cache = new EndedTasks(0, 2 ** 40, 1000, clock);
    cache.add(ended('a', now));
    expect(cache.get('a')).to.equal(undefined);
    expect(cache.size).to.equal(0);
  });
});
