/**
 * The hub's bounds against hostile peers (docs/security.md): each test here failed before the
 * bound it checks existed.
 */
import { expect } from 'chai';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { EndedTasks, bytesOf, resultOf, type EndedTask } from '../../server/src/core/ended-tasks.js';
import { startHub, fakeWorker, fakeClient, http, me, type TestHub } from '../helpers/hub.js';

/** `depth` nested arrays, as JSON text. */
const deepArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

/** A full garbage collection (`--expose-gc` when given, else turned on for this call). */
function collect(): void {
  let gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
  gc();
}

/** Heap in use after a full collection, in bytes. */
function heapAfterGc(): number {
  collect();
  return process.memoryUsage().heapUsed;
}

const MiB = 1024 * 1024;

/**
 * An ended task as the hub makes it: its end frame (a flat string of its own, as read from a
 * socket), its parsed result, its last progress message.
 */
function endedTask(id: string, resultText: string, message: string | null): EndedTask {
  return {
    id,
    serviceId: 1,
    status: 'succeeded',
    seq: 3,
    text: Buffer.from(`{"type":"result","task_id":"${id}","result":${resultText},"seq":3}`).toString(),
    binaries: null,
    result: JSON.parse(resultText),
    progress: 1,
    message,
    attempts: 1,
    createdAt: 1,
    startedAt: 2,
    finishedAt: Date.now(),
  };
}

/**
 * Heap growth, in bytes, of a cache left holding what `fill` added to it: measured after the
 * same work was done once into a cache that keeps nothing, so that what V8 keeps from the work
 * itself (compiled code, caches) is not blamed on the cache.
 */
function heapGrowth(fill: (cache: EndedTasks) => void, make: () => EndedTasks): { grown: number; cache: EndedTasks } {
  fill(new EndedTasks(0, 0, 3_600_000, Date.now));
  const before = heapAfterGc();
  const cache = make();
  fill(cache);
  return { grown: heapAfterGc() - before, cache };
}

describe('Bounds', () => {
  let hub: TestHub;
  afterEach(() => hub?.close());

  describe('ended-task cache', function () {
    this.timeout(180_000);
    const BOUND = 16 * MiB;

    it('holds 5,000 tasks that each left a 64 KiB progress message within its byte bound, in its count and in the heap', () => {
      for (const char of ['x', 'é']) {
        const { grown, cache } = heapGrowth(
          (c) => {
            for (let i = 0; i < 5000; i++) {
              // 65,536 UTF-16 units, each message its own string.
              const message = char.repeat(Math.ceil(65_536 / char.length)).slice(0, 65_535) + String.fromCharCode(48 + (i % 10));
              c.add(endedTask(`m${i}`, '1', message));
            }
          },
          () => new EndedTasks(10_000, BOUND, 3_600_000, Date.now),
        );
        // The cache's count is honest: what it holds in the heap is within its bound, plus slack.
        expect(grown, `${char}: heap grew ${(grown / MiB).toFixed(1)} MiB`).to.be.below(BOUND * 1.5 + 8 * MiB);
        expect(cache.heldBytes, char).to.be.at.most(BOUND);
        expect(cache.size, char).to.be.below(5000);
        expect(cache.get('m4999')?.message?.length).to.equal(65_536);
      }
    });

    it('holds 3 MB results of [[],[],...] within its byte bound in the heap, and parses one again when read', () => {
      const text = '[' + Array.from({ length: 1_000_000 }, () => '[]').join(',') + ']';
      expect(text.length).to.be.above(2_999_000);
      const { grown, cache } = heapGrowth(
        (c) => {
          for (let i = 0; i < 10; i++) c.add(endedTask(`r${i}`, text, null));
        },
        () => new EndedTasks(10_000, BOUND, 3_600_000, Date.now),
      );
      expect(grown, `heap grew ${(grown / MiB).toFixed(1)} MiB`).to.be.below(BOUND * 1.5 + 8 * MiB);
      expect(cache.heldBytes).to.be.at.most(BOUND);
      const last = cache.get('r9')!;
      expect(bytesOf(last)).to.be.at.least(2 * text.length);
      const result = resultOf(last) as unknown[];
      expect(result).to.have.length(1_000_000);
      expect(result[0]).to.deep.equal([]);
    });
  });

  describe('nesting of worker frames', () => {
    it('refuses a result with a 200,000-deep member beside it, forwards nothing, and takes the good one after', async () => {
      hub = await startHub();
      const worker = await fakeWorker(hub, me('deep_member'));
      const client = await fakeClient(hub);
      client.send({ type: 'add_task', ref: 'r', service_id: worker.welcome.service_id, args: { x: 1 } });
      const accepted = await client.nextOf('accepted');
      const task = await worker.nextOf('task');
      expect(task.task_id).to.equal(accepted.task_id);

      worker.sendRaw(`{"type":"result","task_id":"${task.task_id}","result":1,"x":${deepArrays(200_000)}}`);
      const err = await worker.next((m) => m.type === 'error');
      expect(err).to.include({ code: 'bad_message', task_id: task.task_id });
      // The same depth inside a progress's extra member, and in a failed's.
      worker.sendRaw(`{"type":"progress","task_id":"${task.task_id}","progress":0.5,"y":${deepArrays(65)}}`);
      expect(await worker.next((m) => m.type === 'error')).to.include({ code: 'bad_message', task_id: task.task_id });
      worker.sendRaw(`{"type":"failed","task_id":"${task.task_id}","error":{"code":"x","message":"m"},"z":${deepArrays(65)}}`);
      expect(await worker.next((m) => m.type === 'error')).to.include({ code: 'bad_message', task_id: task.task_id });

      // The task still runs: a good result ends it, and it is the only end the client sees.
      worker.send({ type: 'result', task_id: task.task_id, result: { ok: true } });
      const end = await client.next((m) => m.task_id === task.task_id && ['result', 'failed', 'progress'].includes(m.type));
      expect(end).to.deep.include({ type: 'result', result: { ok: true } });
      expect(end).not.to.have.property('x');
      const view = await http(hub, 'GET', `/tasks/${task.task_id}`);
      expect(view.body).to.deep.include({ status: 'succeeded', result: { ok: true } });
      // A member 63 levels deep (64 with the message) is still fine.
      client.send({ type: 'add_task', ref: 'r2', service_id: worker.welcome.service_id, args: { x: 2 } });
      const t2 = await worker.nextOf('task');
      worker.sendRaw(`{"type":"result","task_id":"${t2.task_id}","result":${deepArrays(63)}}`);
      const end2 = await client.next((m) => m.task_id === t2.task_id && m.type === 'result');
      expect(JSON.stringify(end2.result)).to.equal(deepArrays(63));
      await Promise.all([worker.close(), client.close()]);
    });
  });
});
