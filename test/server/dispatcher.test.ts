import { expect } from 'chai';
import { HubError } from '@utils-hub/protocol';
import type { CancelReason } from '@utils-hub/protocol';
import { Dispatcher, type DispatcherOptions, type DispatcherSink, type TaskEvent, type TaskRecord, type TaskSpec } from '../../server/src/core/dispatcher.js';
import { DeadlineHeap } from '../../server/src/core/deadline-heap.js';
import { TaskQueue } from '../../server/src/core/task-queue.js';

// ---- helpers ----

type Entry =
  | { kind: 'event'; id: string; event: TaskEvent; status: string }
  | { kind: 'assign'; conn: string; id: string; attempt: number }
  | { kind: 'cancel'; conn: string; id: string; reason: CancelReason };

/** A sink that records every call, with optional hooks for reentrancy. */
class RecordingSink implements DispatcherSink<string> {
  log: Entry[] = [];
  onEvent: ((task: TaskRecord<string>, event: TaskEvent) => void) | null = null;
  onAssign: ((conn: string, task: TaskRecord<string>) => void) | null = null;

  assign(conn: string, task: TaskRecord<string>): void {
    this.log.push({ kind: 'assign', conn, id: task.id, attempt: task.attempt });
    this.onAssign?.(conn, task);
  }
  cancel(conn: string, id: string, reason: CancelReason): void {
    this.log.push({ kind: 'cancel', conn, id, reason });
  }
  event(task: TaskRecord<string>, event: TaskEvent): void {
    this.log.push({ kind: 'event', id: task.id, event, status: task.status });
    this.onEvent?.(task, event);
  }

  events(id?: string): TaskEvent[] {
    return this.log.flatMap((e) => (e.kind === 'event' && (id === undefined || e.id === id) ? [e.event] : []));
  }
  types(id: string): string[] {
    return this.events(id).map((e) => e.type);
  }
  assigns(conn?: string): string[] {
    return this.log.flatMap((e) => (e.kind === 'assign' && (conn === undefined || e.conn === conn) ? [e.id] : []));
  }
  cancels(): Array<{ conn: string; id: string; reason: CancelReason }> {
    return this.log.flatMap((e) => (e.kind === 'cancel' ? [{ conn: e.conn, id: e.id, reason: e.reason }] : []));
  }
  last(id: string): TaskEvent | undefined {
    return this.events(id).at(-1);
  }
  clear(): void {
    this.log = [];
  }
}

interface Fixture {
  d: Dispatcher<string>;
  sink: RecordingSink;
  clock: { t: number };
  advance(ms: number): void;
  submit(id: string, over?: Partial<TaskSpec<string>>): number;
}

function setup(options: Partial<DispatcherOptions> = {}): Fixture {
  const clock = { t: 1_000_000 };
  const sink = new RecordingSink();
  const d = new Dispatcher<string>({ queueLimit: 100, maxAttempts: 2, now: () => clock.t, ...options }, sink);
  return {
    d,
    sink,
    clock,
    advance(ms: number) {
      clock.t += ms;
      d.tick();
    },
    submit(id, over = {}) {
      return d.submit({ id, serviceId: 1, payload: `p-${id}`, timeoutMs: 60_000, queueTimeoutMs: 30_000, ...over });
    },
  };
}

function inFlight(d: Dispatcher<string>, conn: string): number {
  const c = d.connections().find((x) => x.id === conn);
  if (!c) throw new Error(`no connection ${conn}`);
  return c.inFlight;
}

function errorOf(event: TaskEvent | undefined): HubError {
  if (event?.type !== 'failed') throw new Error(`not a failed event: ${JSON.stringify(event)}`);
  return event.error;
}

// ---- tests ----

describe('Dispatcher', () => {
  describe('#constructor', () => {
    it('names the option that is out of range', () => {
      const sink = new RecordingSink();
      expect(() => new Dispatcher({ queueLimit: -1, maxAttempts: 1, now: () => 0 }, sink)).to.throw(/queueLimit/);
      expect(() => new Dispatcher({ queueLimit: 1, maxAttempts: 0, now: () => 0 }, sink)).to.throw(/maxAttempts/);
      expect(() => new Dispatcher({ queueLimit: 1, maxAttempts: 1, cancelGraceMs: -5, now: () => 0 }, sink)).to.throw(/cancelGraceMs/);
    });
  });

  describe('#submit', () => {
    it('starts a task at once on a connection with room: started (attempt 1, startedAt) then assign', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      let seenInEvent: TaskRecord<string> | undefined;
      f.sink.onEvent = (task) => {
        seenInEvent = { ...task };
      };
      expect(f.submit('t1')).to.equal(0);
      expect(f.sink.log.map((e) => e.kind)).to.deep.equal(['event', 'assign']);
      expect(f.sink.events('t1')).to.deep.equal([{ type: 'started', seq: 1, attempt: 1 }]);
      expect(seenInEvent?.startedAt).to.equal(f.clock.t);
      expect(seenInEvent?.status).to.equal('running');
      expect(f.sink.log[1]).to.deep.equal({ kind: 'assign', conn: 'a', id: 't1', attempt: 1 });
      const t = f.d.task('t1');
      expect(t?.status).to.equal('running');
      expect(t?.connectionId).to.equal('a');
      expect(t?.payload).to.equal('p-t1');
      expect(f.d.runningCount).to.equal(1);
    });

    it('prefers the connection with fewest tasks in flight', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 4 });
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 4 });
      f.submit('t1');
      f.submit('t2');
      f.submit('t3');
      // a: t1, t3; b: t2. Ending t2 leaves b empty: the next goes to b though a was assigned longer ago? a has 2.
      f.d.result('b', 't2', null);
      f.submit('t4');
      expect(f.sink.assigns('b')).to.deep.equal(['t2', 't4']);
      expect(f.sink.assigns('a')).to.deep.equal(['t1', 't3']);
    });

    it('breaks a tie by the connection assigned least recently', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 2 });
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 2 });
      f.submit('t1'); // a (both never assigned: first added wins)
      f.submit('t2'); // b
      f.d.result('b', 't2', null);
      f.d.result('a', 't1', null);
      // both empty; a was assigned before b, so a is the least recent
      f.submit('t3');
      expect(f.d.task('t3')?.connectionId).to.equal('a');
      f.submit('t4');
      expect(f.d.task('t4')?.connectionId).to.equal('b');
    });

    it("never goes above a connection's concurrency", () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 3 });
      for (let i = 0; i < 6; i++) f.submit(`t${i}`);
      expect(inFlight(f.d, 'a')).to.equal(1);
      expect(inFlight(f.d, 'b')).to.equal(3);
      expect(f.d.queueLength(1)).to.equal(2);
      expect(f.d.queuedCount).to.equal(2);
      expect(f.d.runningCount).to.equal(4);
    });

    it("only uses connections of the task's service", () => {
      const f = setup();
      f.d.addConnection({ id: 'other', serviceId: 2, concurrency: 5 });
      expect(f.submit('t1')).to.equal(0);
      expect(f.d.task('t1')?.status).to.equal('queued');
      expect(f.sink.log).to.deep.equal([]);
    });

    it('queues when no connection has room and returns how many wait before it', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      expect(f.submit('t1')).to.equal(0);
      expect(f.submit('t2')).to.equal(0);
      expect(f.submit('t3')).to.equal(1);
      expect(f.submit('t4')).to.equal(2);
      expect(f.d.position('t4')).to.equal(2);
      expect(f.d.position('t1')).to.equal(null);
      expect(f.d.task('t3')?.status).to.equal('queued');
      expect(f.sink.events('t3')).to.deep.equal([]);
    });

    it('queues the same way when the service has no live connection', () => {
      const f = setup();
      expect(f.submit('t1')).to.equal(0);
      expect(f.submit('t2')).to.equal(1);
      expect(f.d.queueLength(1)).to.equal(2);
      expect(f.d.nextDeadline()).to.equal(f.clock.t + 30_000);
    });

    it('refuses with queue_full when the queue is at its limit, with no event', () => {
      const f = setup({ queueLimit: 2 });
      f.submit('t1');
      f.submit('t2');
      expect(() => f.submit('t3'))
        .to.throw(HubError)
        .with.property('code', 'queue_full');
      expect(f.d.task('t3')).to.equal(undefined);
      expect(f.sink.log).to.deep.equal([]);
      expect(f.d.queueLength(1)).to.equal(2);
    });

    it('does not count requeued tasks against the queue limit', () => {
      const f = setup({ queueLimit: 1 });
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 2 });
      f.submit('t1');
      f.submit('t2');
      f.d.removeConnection('a');
      expect(f.d.queueLength(1)).to.equal(2);
      expect(f.submit('t3')).to.equal(2);
      expect(() => f.submit('t4'))
        .to.throw(HubError)
        .with.property('code', 'queue_full');
    });

    it('refuses a task id it already knows', () => {
      const f = setup();
      f.submit('t1');
      expect(() => f.submit('t1'))
        .to.throw(HubError)
        .with.property('code', 'internal');
    });
  });

  describe('#addConnection', () => {
    it('dispatches waiting tasks at once, first in first out', () => {
      const f = setup();
      for (let i = 0; i < 4; i++) f.submit(`t${i}`);
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 3 });
      expect(f.sink.assigns('a')).to.deep.equal(['t0', 't1', 't2']);
      expect(f.d.position('t3')).to.equal(0);
      expect(f.d.connections(1)).to.deep.equal([{ id: 'a', serviceId: 1, concurrency: 3, inFlight: 3, draining: false }]);
    });

    it('refuses a connection id it already knows', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      expect(() => f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 })).to.throw(HubError);
    });
  });

  describe('#drainConnection', () => {
    it('sends no more tasks to a draining connection while its tasks go on', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 4 });
      f.submit('t1');
      f.d.drainConnection('a');
      expect(f.submit('t2')).to.equal(0);
      expect(f.d.task('t2')?.status).to.equal('queued');
      expect(f.d.connections(1)[0].draining).to.equal(true);
      expect(f.d.result('a', 't1', 'ok')).to.equal('accepted');
      expect(f.d.task('t2')?.status).to.equal('queued');
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 1 });
      expect(f.d.task('t2')?.connectionId).to.equal('b');
    });
  });

  describe('#result', () => {
    it('ends the task with result, forgets it and frees the slot for the next in line', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      f.submit('t2');
      f.submit('t3');
      f.clock.t += 5;
      expect(f.d.result('a', 't1', { x: 1 })).to.equal('accepted');
      expect(f.sink.events('t1')).to.deep.equal([
        { type: 'started', seq: 1, attempt: 1 },
        { type: 'result', seq: 2, result: { x: 1 } },
      ]);
      expect(f.d.task('t1')).to.equal(undefined);
      expect(f.sink.assigns('a')).to.deep.equal(['t1', 't2']);
      expect(f.d.position('t3')).to.equal(0);
    });

    it('gives the ended record its status and finishedAt', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      let ended: TaskRecord<string> | undefined;
      f.sink.onEvent = (task, event) => {
        if (event.type === 'result') ended = { ...task };
      };
      f.submit('t1');
      f.clock.t += 7;
      f.d.result('a', 't1', 1);
      expect(ended?.status).to.equal('succeeded');
      expect(ended?.finishedAt).to.equal(f.clock.t);
    });
  });

  describe('#failed', () => {
    it("ends the task failed with task_failed carrying the worker's error", () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      expect(f.d.failed('a', 't1', { code: 'bad_image', message: 'cannot decode' })).to.equal('accepted');
      const error = errorOf(f.sink.last('t1'));
      expect(error).to.be.instanceOf(HubError);
      expect(error.code).to.equal('task_failed');
      expect(error.message).to.equal('the service failed: cannot decode');
      expect(error.details).to.deep.equal({ worker_error: { code: 'bad_image', message: 'cannot decode' } });
      expect(f.d.task('t1')).to.equal(undefined);
      expect(inFlight(f.d, 'a')).to.equal(0);
    });
  });

  describe('#progress', () => {
    it("emits progress and updates the task's progress and message", () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      expect(f.d.progress('a', 't1', 0.4, 'resizing', { preview: 1 })).to.equal('accepted');
      expect(f.sink.last('t1')).to.deep.equal({ type: 'progress', seq: 2, update: { preview: 1 } });
      expect(f.d.task('t1')?.progress).to.equal(0.4);
      expect(f.d.task('t1')?.message).to.equal('resizing');
      f.d.progress('a', 't1', undefined, undefined, null);
      expect(f.d.task('t1')?.progress).to.equal(0.4);
      expect(f.d.task('t1')?.message).to.equal('resizing');
      expect(f.sink.last('t1')?.seq).to.equal(3);
    });
  });

  describe('late and foreign answers', () => {
    it('drops answers about a task not in flight on that connection, with no event', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 1 });
      f.submit('t1'); // on a
      f.submit('t2'); // on b
      f.submit('t3'); // queued
      f.sink.clear();
      expect(f.d.result('b', 't1', 1)).to.equal('dropped');
      expect(f.d.failed('b', 't1', { code: 'x', message: 'y' })).to.equal('dropped');
      expect(f.d.progress('b', 't1', 0.5, undefined, null)).to.equal('dropped');
      expect(f.d.result('a', 'nope', 1)).to.equal('dropped');
      expect(f.d.result('zzz', 't1', 1)).to.equal('dropped');
      expect(f.d.result('a', 't3', 1)).to.equal('dropped');
      expect(f.sink.log).to.deep.equal([]);
      expect(f.d.task('t1')?.status).to.equal('running');
      expect(f.d.task('t3')?.status).to.equal('queued');
    });

    it('drops a second answer about an ended task, never twice', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      expect(f.d.result('a', 't1', 1)).to.equal('accepted');
      expect(f.d.result('a', 't1', 2)).to.equal('dropped');
      expect(f.d.failed('a', 't1', { code: 'x', message: 'y' })).to.equal('dropped');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'result']);
    });
  });

  describe('run deadline', () => {
    it('fails the task with timeout past timeoutMs and sends cancel (timeout)', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1', { timeoutMs: 1000 });
      expect(f.d.nextDeadline()).to.equal(f.clock.t + 1000);
      f.advance(999);
      expect(f.d.task('t1')?.status).to.equal('running');
      f.advance(1);
      expect(errorOf(f.sink.last('t1')).code).to.equal('timeout');
      expect(f.sink.cancels()).to.deep.equal([{ conn: 'a', id: 't1', reason: 'timeout' }]);
      expect(f.d.task('t1')).to.equal(undefined);
      expect(f.d.runningCount).to.equal(0);
    });

    it('keeps the slot until the worker answers that task; the answer is dropped and frees it', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1', { timeoutMs: 1000 });
      f.submit('t2');
      f.advance(1000);
      expect(inFlight(f.d, 'a')).to.equal(1);
      expect(f.d.task('t2')?.status).to.equal('queued');
      expect(f.d.result('a', 't1', 'late')).to.equal('dropped');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'failed']);
      expect(f.d.task('t2')?.connectionId).to.equal('a');
      expect(inFlight(f.d, 'a')).to.equal(1);
      expect(f.d.result('a', 't1', 'again')).to.equal('dropped');
      expect(inFlight(f.d, 'a')).to.equal(1);
    });

    it('frees the slot on a late progress or failed as well', () => {
      for (const answer of ['progress', 'failed'] as const) {
        const f = setup();
        f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
        f.submit('t1', { timeoutMs: 10 });
        f.advance(10);
        const outcome = answer === 'progress' ? f.d.progress('a', 't1', 0.9, 'x', null) : f.d.failed('a', 't1', { code: 'c', message: 'm' });
        expect(outcome).to.equal('dropped');
        expect(inFlight(f.d, 'a')).to.equal(0);
        expect(f.sink.types('t1')).to.deep.equal(['started', 'failed']);
      }
    });

    it('frees the slot cancelGraceMs after the timeout when the worker stays silent (default 10000)', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1', { timeoutMs: 1000 });
      f.submit('t2');
      f.advance(1000);
      expect(f.d.nextDeadline()).to.equal(f.clock.t + 10_000);
      f.advance(9_999);
      expect(f.d.task('t2')?.status).to.equal('queued');
      f.advance(1);
      expect(f.d.task('t2')?.status).to.equal('running');
      expect(f.d.result('a', 't1', 'late')).to.equal('dropped');
      expect(f.sink.types('t2')).to.deep.equal(['started']);
    });

    it('honours a custom cancelGraceMs', () => {
      const f = setup({ cancelGraceMs: 50 });
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1', { timeoutMs: 100 });
      f.advance(100);
      expect(inFlight(f.d, 'a')).to.equal(1);
      f.advance(50);
      expect(inFlight(f.d, 'a')).to.equal(0);
    });

    it('bounds each attempt from its own start', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1', { timeoutMs: 1000 });
      f.advance(600);
      f.d.removeConnection('a');
      f.advance(300);
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 1 });
      f.advance(900);
      expect(f.d.task('t1')?.status).to.equal('running');
      f.advance(100);
      expect(errorOf(f.sink.last('t1')).code).to.equal('timeout');
    });
  });

  describe('queue timeout', () => {
    it('fails a waiting task with no_worker after its queue timeout, via tick', () => {
      const f = setup();
      f.submit('t1', { queueTimeoutMs: 500 });
      f.submit('t2', { queueTimeoutMs: 800 });
      f.clock.t += 10_000;
      expect(f.sink.log).to.deep.equal([]); // nothing happens without tick
      f.d.tick();
      expect(errorOf(f.sink.last('t1')).code).to.equal('no_worker');
      expect(errorOf(f.sink.last('t2')).code).to.equal('no_worker');
      expect(f.sink.events('t1')).to.have.length(1);
      expect(f.sink.events('t1')[0].seq).to.equal(1);
      expect(f.d.queueLength(1)).to.equal(0);
      expect(f.d.nextDeadline()).to.equal(null);
    });

    it('does not fail a task before its queue timeout, nor once it started', () => {
      const f = setup();
      f.submit('t1', { queueTimeoutMs: 500 });
      f.advance(499);
      expect(f.d.task('t1')?.status).to.equal('queued');
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.advance(100);
      expect(f.sink.types('t1')).to.deep.equal(['started']);
    });

    it('counts from the requeue after a lost connection', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1', { queueTimeoutMs: 500 });
      f.advance(2000);
      f.d.removeConnection('a');
      f.advance(499);
      expect(f.d.task('t1')?.status).to.equal('queued');
      f.advance(1);
      expect(errorOf(f.sink.last('t1')).code).to.equal('no_worker');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'queued', 'failed']);
    });
  });

  describe('#removeConnection', () => {
    it('puts its tasks back at the front of the queue in their order, with queued and their positions', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 2 });
      f.submit('t1');
      f.submit('t2');
      f.submit('t3');
      f.submit('t4');
      f.sink.clear();
      f.d.removeConnection('a', 'close 1006');
      const reason = { code: 'worker_lost', message: 'the connection running attempt 1 was lost (close 1006)' };
      expect(f.sink.events('t1')).to.deep.equal([{ type: 'queued', seq: 2, position: 0, reason }]);
      expect(f.sink.events('t2')).to.deep.equal([{ type: 'queued', seq: 2, position: 1, reason }]);
      expect(f.d.position('t3')).to.equal(2);
      expect(f.d.position('t4')).to.equal(3);
      expect(f.d.task('t1')?.status).to.equal('queued');
      expect(f.d.task('t1')?.connectionId).to.equal(null);
      expect(f.d.runningCount).to.equal(0);
      expect(f.d.connections()).to.deep.equal([]);
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 4 });
      expect(f.sink.assigns('b')).to.deep.equal(['t1', 't2', 't3', 't4']);
      expect(f.sink.events('t1').at(-1)).to.deep.equal({ type: 'started', seq: 3, attempt: 2 });
    });

    it('says in no_worker that the attempt before was lost with its connection', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1', { queueTimeoutMs: 100 });
      f.d.removeConnection('a', 'close 1006');
      f.sink.clear();
      f.advance(101);
      const [ended] = f.sink.events('t1') as Array<{ type: string; error: HubError }>;
      expect(ended.type).to.equal('failed');
      expect(ended.error.code).to.equal('no_worker');
      expect(ended.error.message).to.include('within its queue timeout of 100 ms').and.to.include('attempt 1 was lost (close 1006)');
    });

    it('ends a task failed worker_lost when no attempt is left', () => {
      const f = setup({ maxAttempts: 2 });
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      f.d.removeConnection('a');
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 1 });
      f.d.removeConnection('b');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'queued', 'started', 'failed']);
      expect(errorOf(f.sink.last('t1')).code).to.equal('worker_lost');
      expect(f.d.task('t1')).to.equal(undefined);
    });

    it('with maxAttempts 1 never requeues', () => {
      const f = setup({ maxAttempts: 1 });
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      f.d.removeConnection('a');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'failed']);
    });

    it('dispatches the requeued tasks to other connections with room at once', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 2 });
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 2 });
      f.submit('t1'); // a
      f.submit('t2'); // b
      f.submit('t3'); // a
      f.d.removeConnection('a');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'queued', 'started']);
      expect(f.d.task('t1')?.connectionId).to.equal('b');
      expect(f.d.task('t3')?.status).to.equal('queued');
      expect(f.d.position('t3')).to.equal(0);
    });

    it('does not count tasks that already ended and only hold a slot', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 2 });
      f.submit('t1', { timeoutMs: 10 });
      f.submit('t2');
      f.advance(10); // t1 ended, slot held
      f.d.removeConnection('a');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'failed']);
      expect(f.sink.types('t2')).to.deep.equal(['started', 'queued']);
      expect(f.d.nextDeadline()).to.equal(f.clock.t + 30_000); // the grace is gone with the connection
    });

    it('ignores unknown ids', () => {
      const f = setup();
      f.d.removeConnection('nope');
      expect(f.sink.log).to.deep.equal([]);
    });
  });

  describe('#cancel', () => {
    it('takes a queued task out of its queue and ends it canceled at once', () => {
      const f = setup();
      f.submit('t1');
      f.submit('t2');
      f.submit('t3');
      expect(f.d.cancel('t2')).to.equal(true);
      expect(f.sink.events('t2')).to.deep.equal([{ type: 'canceled', seq: 1 }]);
      expect(f.sink.cancels()).to.deep.equal([]);
      expect(f.d.queueLength(1)).to.equal(2);
      expect(f.d.position('t3')).to.equal(1);
      expect(f.d.task('t2')).to.equal(undefined);
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 5 });
      expect(f.sink.assigns()).to.deep.equal(['t1', 't3']);
    });

    it('sends cancel (client) for a running task, ends it canceled at once, keeps the slot until the worker answers', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      f.submit('t2');
      expect(f.d.cancel('t1')).to.equal(true);
      expect(f.sink.cancels()).to.deep.equal([{ conn: 'a', id: 't1', reason: 'client' }]);
      expect(f.sink.types('t1')).to.deep.equal(['started', 'canceled']);
      expect(f.d.runningCount).to.equal(0);
      expect(inFlight(f.d, 'a')).to.equal(1);
      expect(f.d.task('t2')?.status).to.equal('queued');
      expect(f.d.failed('a', 't1', { code: 'canceled', message: 'stopped' })).to.equal('dropped');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'canceled']);
      expect(f.d.task('t2')?.status).to.equal('running');
    });

    it('frees the slot of a canceled running task after the grace', () => {
      const f = setup({ cancelGraceMs: 200 });
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      f.submit('t2');
      f.d.cancel('t1');
      f.advance(199);
      expect(f.d.task('t2')?.status).to.equal('queued');
      f.advance(1);
      expect(f.d.task('t2')?.status).to.equal('running');
    });

    it('returns false for an ended or unknown task', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      f.d.result('a', 't1', 1);
      expect(f.d.cancel('t1')).to.equal(false);
      expect(f.d.cancel('nope')).to.equal(false);
      expect(f.sink.types('t1')).to.deep.equal(['started', 'result']);
    });
  });

  describe('#shutdown', () => {
    it('refuses new tasks with shutting_down and ends every queued task failed shutting_down', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      f.submit('t2');
      f.submit('t3', { serviceId: 7 });
      f.d.shutdown();
      expect(errorOf(f.sink.last('t2')).code).to.equal('shutting_down');
      expect(errorOf(f.sink.last('t3')).code).to.equal('shutting_down');
      expect(f.d.task('t1')?.status).to.equal('running');
      expect(f.d.queuedCount).to.equal(0);
      expect(() => f.submit('t4'))
        .to.throw(HubError)
        .with.property('code', 'shutting_down');
      expect(f.d.nextDeadline()).to.equal(f.clock.t + 60_000); // only t1's run deadline remains
    });

    it('fails a task whose connection is lost during the shutdown instead of requeueing it', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      f.d.shutdown();
      f.d.removeConnection('a');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'failed']);
      expect(errorOf(f.sink.last('t1')).code).to.equal('shutting_down');
    });
  });

  describe('#failRunning', () => {
    it('ends every running task failed shutting_down and sends cancel (shutdown)', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 2 });
      f.d.addConnection({ id: 'b', serviceId: 2, concurrency: 1 });
      f.submit('t1');
      f.submit('t2', { serviceId: 2 });
      f.submit('t3');
      f.d.shutdown();
      f.d.failRunning('shutting_down');
      for (const id of ['t1', 't2', 't3']) {
        expect(f.sink.types(id)).to.deep.equal(['started', 'failed']);
        expect(errorOf(f.sink.last(id)).code).to.equal('shutting_down');
      }
      expect(f.sink.cancels()).to.have.deep.members([
        { conn: 'a', id: 't1', reason: 'shutdown' },
        { conn: 'b', id: 't2', reason: 'shutdown' },
        { conn: 'a', id: 't3', reason: 'shutdown' },
      ]);
      expect(f.d.runningCount).to.equal(0);
    });
  });

  describe('events', () => {
    it("numbers each task's events from 1 and ends with exactly one end event, after which the task is forgotten", () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      f.d.progress('a', 't1', 0.1, 'a', null);
      f.d.removeConnection('a');
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 1 });
      f.d.progress('b', 't1', 0.5, 'b', null);
      f.d.result('b', 't1', 'done');
      f.d.cancel('t1');
      f.d.result('b', 't1', 'again');
      const events = f.sink.events('t1');
      expect(events.map((e) => e.type)).to.deep.equal(['started', 'progress', 'queued', 'started', 'progress', 'result']);
      expect(events.map((e) => e.seq)).to.deep.equal([1, 2, 3, 4, 5, 6]);
      expect(f.d.task('t1')).to.equal(undefined);
    });

    it('clears progress and message when a task goes back to the queue', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1');
      f.d.progress('a', 't1', 0.7, 'nearly', null);
      f.d.removeConnection('a');
      expect(f.d.task('t1')?.progress).to.equal(null);
      expect(f.d.task('t1')?.message).to.equal(null);
    });
  });

  describe('reentrancy', () => {
    it('sends no task when the started event cancels it, and frees its slot at once', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.sink.onEvent = (task, event) => {
        if (event.type === 'started' && task.id === 't1') f.d.cancel('t1');
      };
      f.submit('t1');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'canceled']);
      expect(f.sink.assigns()).to.deep.equal([]);
      expect(f.sink.cancels()).to.deep.equal([]);
      expect(inFlight(f.d, 'a')).to.equal(0);
      f.sink.onEvent = null;
      f.submit('t2');
      expect(f.sink.assigns()).to.deep.equal(['t2']);
    });

    it('lets an end event submit a task that takes the freed slot', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.sink.onEvent = (task, event) => {
        if (event.type === 'result' && task.id === 't1') f.submit('t2');
      };
      f.submit('t1');
      f.d.result('a', 't1', 1);
      expect(f.d.task('t2')?.status).to.equal('running');
      expect(inFlight(f.d, 'a')).to.equal(1);
    });

    it('keeps the order of events when a queued event cancels another requeued task', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 2 });
      f.submit('t1');
      f.submit('t2');
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 2 });
      f.sink.onEvent = (task, event) => {
        if (event.type === 'queued' && task.id === 't1') f.d.cancel('t2');
      };
      f.d.removeConnection('a');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'queued', 'started']);
      expect(f.sink.types('t2')).to.deep.equal(['started', 'canceled']);
      expect(f.d.task('t1')?.connectionId).to.equal('b');
    });

    it('sends nothing for a task whose connection is lost inside its started event', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.d.addConnection({ id: 'b', serviceId: 1, concurrency: 1 });
      f.sink.onEvent = (task, event) => {
        if (event.type === 'started' && task.connectionId === 'a') f.d.removeConnection('a');
      };
      f.submit('t1');
      expect(f.sink.types('t1')).to.deep.equal(['started', 'queued', 'started']);
      expect(f.sink.log.filter((e) => e.kind === 'assign')).to.deep.equal([{ kind: 'assign', conn: 'b', id: 't1', attempt: 2 }]);
    });

    it('shows a consistent state to the sink during an end event', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      const seen: Array<[number, number | null]> = [];
      f.sink.onEvent = (task, event) => {
        if (event.type === 'result') seen.push([f.d.runningCount, f.d.task(task.id) ? 1 : null]);
      };
      f.submit('t1');
      f.d.result('a', 't1', 1);
      expect(seen).to.deep.equal([[0, null]]);
    });
  });

  describe('#nextDeadline', () => {
    it('gives the earliest pending deadline and null when none', () => {
      const f = setup();
      expect(f.d.nextDeadline()).to.equal(null);
      f.submit('t1', { queueTimeoutMs: 300 });
      f.submit('t2', { queueTimeoutMs: 100 });
      f.submit('t3', { queueTimeoutMs: 200 });
      expect(f.d.nextDeadline()).to.equal(f.clock.t + 100);
      f.d.cancel('t2');
      expect(f.d.nextDeadline()).to.equal(f.clock.t + 200);
      f.d.cancel('t3');
      f.d.cancel('t1');
      expect(f.d.nextDeadline()).to.equal(null);
    });

    it('applies due deadlines in time order within one tick', () => {
      const f = setup();
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1', { timeoutMs: 100 });
      f.submit('t2', { queueTimeoutMs: 300 });
      f.submit('t3', { queueTimeoutMs: 50 });
      f.sink.clear();
      f.clock.t += 1000;
      f.d.tick();
      const ends = f.sink.log.flatMap((e) => (e.kind === 'event' ? [`${e.id}:${errorOf(e.event).code}`] : []));
      expect(ends).to.deep.equal(['t3:no_worker', 't1:timeout', 't2:no_worker']);
    });

    it('starts the cancel grace when the timeout is applied', () => {
      const f = setup({ cancelGraceMs: 100 });
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
      f.submit('t1', { timeoutMs: 100 });
      f.clock.t += 1000;
      f.d.tick();
      expect(f.d.nextDeadline()).to.equal(f.clock.t + 100);
    });
  });

  describe('with 10 000 queued tasks', () => {
    it('keeps submit, tick, cancel and dispatch cheap', function () {
      this.timeout(10_000);
      const f = setup({ queueLimit: 20_000 });
      const started = performance.now();
      for (let i = 0; i < 10_000; i++) expect(f.submit(`t${i}`, { queueTimeoutMs: 1_000_000 + i })).to.equal(i);
      for (let i = 0; i < 10_000; i++) {
        f.clock.t += 1;
        f.d.tick();
      }
      for (let i = 0; i < 10_000; i += 2) f.d.cancel(`t${i}`);
      expect(f.d.queueLength(1)).to.equal(5_000);
      expect(f.d.position('t9999')).to.equal(4_999);
      f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1024 });
      for (let i = 1; i < 10_000; i += 2) f.d.result('a', `t${i}`, null);
      const elapsed = performance.now() - started;
      expect(f.d.queuedCount).to.equal(0);
      expect(f.sink.assigns()).to.have.length(5_000);
      expect(f.sink.assigns().slice(0, 3)).to.deep.equal(['t1', 't3', 't5']);
      // A coarse guard only: an O(n) scan per operation would show as seconds here.
      expect(elapsed).to.be.below(5_000);
    });
  });

  describe('randomized operations', () => {
    for (const seed of [1, 2, 3, 42, 1234]) {
      it(`keeps its invariants over thousands of random operations (seed ${seed})`, function () {
        this.timeout(20_000);
        runRandom(seed, 4000);
      });
    }
  });
});

describe('DeadlineHeap', () => {
  it('pops live entries by time, then by insertion, skipping invalidated ones', () => {
    const h = new DeadlineHeap<string>();
    const entries = [h.push(5, 'a'), h.push(1, 'b'), h.push(5, 'c'), h.push(3, 'd'), h.push(0, 'e')];
    h.invalidate(entries[4]);
    h.invalidate(entries[4]);
    expect(h.size).to.equal(4);
    const out: string[] = [];
    for (let e = h.pop(); e; e = h.pop()) out.push(e.value);
    expect(out).to.deep.equal(['b', 'd', 'a', 'c']);
    expect(h.peek()).to.equal(undefined);
  });

  it('stays ordered through compactions', () => {
    const h = new DeadlineHeap<number>();
    const rand = prng(7);
    const kept: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const at = Math.floor(rand() * 1000);
      const e = h.push(at, at);
      if (rand() < 0.8) h.invalidate(e);
      else kept.push(at);
    }
    expect(h.size).to.equal(kept.length);
    const out: number[] = [];
    for (let e = h.pop(); e; e = h.pop()) out.push(e.value);
    expect(out).to.deep.equal(kept.sort((a, b) => a - b));
  });
});

describe('TaskQueue', () => {
  interface Item {
    n: number;
    inQueue: boolean;
    fresh: boolean;
  }
  const item = (n: number, fresh = true): Item => ({ n, inQueue: false, fresh });

  it('is first in first out with a front door and removal from the middle', () => {
    const q = new TaskQueue<Item>();
    const items = Array.from({ length: 100 }, (_, i) => item(i));
    for (const it of items) q.pushBack(it);
    for (let i = 0; i < 100; i += 3) q.remove(items[i]);
    const front = item(-1, false);
    q.pushFront(front);
    expect(q.length).to.equal(1 + 100 - 34);
    expect(q.freshLength).to.equal(100 - 34);
    expect(q.positionOf(items[2])).to.equal(2);
    expect(q.positionOf(items[0])).to.equal(null);
    const out: number[] = [];
    for (let t = q.popFront(); t; t = q.popFront()) out.push(t.n);
    expect(out).to.deep.equal([-1, ...items.filter((_, i) => i % 3 !== 0).map((t) => t.n)]);
    expect(q.length).to.equal(0);
  });
});

// ---- randomized invariant test ----

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function runRandom(seed: number, operations: number): void {
  const rand = prng(seed);
  const pick = <T>(xs: T[]): T | undefined => (xs.length ? xs[Math.floor(rand() * xs.length)] : undefined);
  const clock = { t: 0 };
  const maxAttempts = 1 + Math.floor(rand() * 3);
  const services = [1, 2, 3];

  const submitted = new Set<string>();
  const events = new Map<string, TaskEvent[]>();
  const ended = new Set<string>();
  /** What workers were sent: task id -> connection, never removed (so late answers happen too). */
  const sent = new Map<string, string>();
  /** Tasks in flight now as the workers see them: task id -> connection. */
  const current = new Map<string, string>();
  const live = new Map<string, { serviceId: number; concurrency: number }>();
  let nextTask = 0;
  let nextConn = 0;
  let reentrantCancels = true;
  const stats = { dropped: 0 };

  const check = (cond: boolean, what: string): void => {
    if (!cond) throw new Error(`seed ${seed}: ${what}`);
  };
  let d!: Dispatcher<string>;
  const checkConnections = (): void => {
    for (const c of d.connections()) {
      check(c.inFlight >= 0, `inFlight of ${c.id} negative`);
      check(c.inFlight <= c.concurrency, `connection ${c.id} above its concurrency: ${c.inFlight} > ${c.concurrency}`);
    }
    check(d.runningCount >= 0, 'runningCount negative');
  };

  const sink: DispatcherSink<string> = {
    assign(conn, task) {
      check(live.has(conn), `assign to a dead connection ${conn}`);
      check(!ended.has(task.id), `assign of an ended task ${task.id}`);
      check(task.status === 'running' && task.connectionId === conn, `assign of ${task.id} not running on ${conn}`);
      check(task.attempt >= 1 && task.attempt <= maxAttempts, `attempt ${task.attempt} out of range`);
      sent.set(task.id, conn);
      current.set(task.id, conn);
      checkConnections();
    },
    cancel(conn, id) {
      check(sent.get(id) === conn, `cancel of ${id} on ${conn} where it was not sent`);
    },
    event(task, event) {
      check(submitted.has(task.id), `event of an unknown task ${task.id}`);
      check(!ended.has(task.id), `event ${event.type} after the end of ${task.id}`);
      const list = events.get(task.id) ?? [];
      check(event.seq === list.length + 1, `seq of ${task.id} jumps from ${list.length} to ${event.seq}`);
      check(task.seq === event.seq, 'record seq differs from the event');
      list.push(event);
      events.set(task.id, list);
      if (event.type !== 'progress' && event.type !== 'started') current.delete(task.id);
      if (event.type === 'result' || event.type === 'failed' || event.type === 'canceled') {
        ended.add(task.id);
        check(d.task(task.id) === undefined, `ended task ${task.id} still known`);
      }
      checkConnections();
      // Reentrancy: now and then the hub cancels some task from inside an event.
      if (reentrantCancels && rand() < 0.03) {
        const victim = pick([...submitted]);
        if (victim) d.cancel(victim);
      }
    },
  };
  d = new Dispatcher<string>({ queueLimit: 30, maxAttempts, cancelGraceMs: 500, now: () => clock.t }, sink);

  // Mostly answers about tasks in flight; some late ones about tasks that ended or moved.
  const answerable = (): Array<[string, string]> => [...(rand() < 0.8 ? current : sent).entries()];

  for (let op = 0; op < operations; op++) {
    const r = rand();
    let dropped: { id: string; before: number } | null = null;
    if (r < 0.3) {
      const id = `t${nextTask++}`;
      const serviceId = pick(services) as number;
      submitted.add(id);
      try {
        const position = d.submit({
          id,
          serviceId,
          payload: id,
          timeoutMs: 50 + Math.floor(rand() * 2000),
          queueTimeoutMs: Math.floor(rand() * 3000),
        });
        check(position >= 0, 'negative position');
      } catch (err) {
        check(err instanceof HubError && err.code === 'queue_full', `submit threw ${String(err)}`);
        check(!events.has(id), 'a refused task had events');
        submitted.delete(id);
      }
    } else if (r < 0.36) {
      const id = `c${nextConn++}`;
      const info = { serviceId: pick(services) as number, concurrency: 1 + Math.floor(rand() * 4) };
      live.set(id, info);
      d.addConnection({ id, ...info });
    } else if (r < 0.4) {
      const id = pick([...live.keys()]);
      if (id) {
        live.delete(id);
        for (const [t, c] of current) if (c === id) current.delete(t);
        d.removeConnection(id);
      }
    } else if (r < 0.42) {
      const id = pick([...live.keys()]);
      if (id) d.drainConnection(id);
    } else if (r < 0.5) {
      const id = rand() < 0.8 ? pick([...submitted].filter((t) => !ended.has(t))) : pick([...submitted]);
      if (id) {
        const known = d.task(id) !== undefined;
        check(d.cancel(id) === known, 'cancel result differs from task()');
      }
    } else if (r < 0.8) {
      const pair = pick(answerable());
      if (pair) {
        const [id, conn0] = pair;
        // Now and then a foreign connection answers.
        const conn = rand() < 0.1 ? (pick([...live.keys()]) ?? conn0) : conn0;
        const kind = rand();
        const outcome =
          kind < 0.3 ? d.progress(conn, id, rand(), 'm', null) : kind < 0.75 ? d.result(conn, id, id) : d.failed(conn, id, { code: 'oops', message: 'broke' });
        if (outcome === 'dropped') dropped = { id, before: events.get(id)?.length ?? 0 };
        if (kind >= 0.3 && outcome === 'accepted') sent.delete(id);
      }
    } else {
      clock.t += Math.floor(rand() * 400);
      d.tick();
    }
    if (dropped) {
      // No event for the task answered about (but a reentrant cancel may have ended it meanwhile).
      const after = (events.get(dropped.id) ?? []).slice(dropped.before);
      check(
        after.every((e) => e.type === 'canceled'),
        `a dropped answer made an event for ${dropped.id}`,
      );
      stats.dropped++;
    }

    // Between operations: nothing waits while a live connection of its service has room.
    checkConnections();
    for (const serviceId of services) {
      if (d.queueLength(serviceId) === 0) continue;
      for (const c of d.connections(serviceId)) {
        check(c.draining || c.inFlight >= c.concurrency, `service ${serviceId} has waiting tasks while ${c.id} has room`);
      }
    }
    const next = d.nextDeadline();
    check(next === null || next >= 0, 'bad next deadline');
  }

  // Wind down: everything must end.
  reentrantCancels = false;
  d.shutdown();
  d.failRunning('shutting_down');
  check(d.queuedCount === 0 && d.runningCount === 0, 'tasks left after the shutdown');
  clock.t += 1_000_000;
  d.tick();
  check(d.nextDeadline() === null, 'deadlines left');
  for (const c of d.connections()) check(c.inFlight === 0, `slot still held on ${c.id}`);

  for (const id of submitted) {
    const list = events.get(id) ?? [];
    const ends = list.filter((e) => e.type === 'result' || e.type === 'failed' || e.type === 'canceled');
    check(ends.length === 1, `task ${id} has ${ends.length} end events`);
    check(ends[0] === list.at(-1), `the end of ${id} is not its last event`);
    list.forEach((e, i) => {
      check(e.seq === i + 1, `seq of ${id} not 1..n`);
    });
  }
  // The run must have gone through every path to mean anything.
  const count = (pred: (e: TaskEvent) => boolean): number => [...events.values()].reduce((n, l) => n + l.filter(pred).length, 0);
  const codes = new Set([...events.values()].flatMap((l) => l.flatMap((e) => (e.type === 'failed' ? [e.error.code] : []))));
  if (process.env.DISPATCHER_STATS) {
    console.log(
      seed,
      submitted.size,
      stats,
      [...codes],
      count((e) => e.type === 'queued'),
      count((e) => e.type === 'result'),
      count((e) => e.type === 'canceled'),
    );
  }
  check(submitted.size > 500, 'too few tasks');
  check(stats.dropped > 20, 'too few dropped answers');
  if (maxAttempts > 1) check(count((e) => e.type === 'queued') > 5, 'too few requeues');
  else check(codes.has('worker_lost'), 'no worker_lost at all');
  check(count((e) => e.type === 'result') > 50 && count((e) => e.type === 'canceled') > 50, 'too few results or cancels');
  for (const code of ['timeout', 'no_worker', 'task_failed'] as const) check(codes.has(code), `no ${code} at all`);
}
