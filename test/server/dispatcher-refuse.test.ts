/**
 * The dispatcher's `refuse` hook (docs/protocol.md, "Frame limits"): a task the picked connection
 * cannot take ends `failed` with the hook's error at once, without an attempt or a slot, and the
 * queue goes on; `removeConnection(id, why)` names the close in `worker_lost`.
 */
import { expect } from 'chai';
import { HubError } from '@utils-hub/protocol';
import { Dispatcher, type DispatcherSink, type TaskEvent, type TaskRecord } from '../../server/src/core/dispatcher.js';

function setup(refuse: (conn: string, task: TaskRecord<string>) => HubError | null, maxAttempts = 1) {
  const events: Array<{ id: string; event: TaskEvent; attempt: number }> = [];
  const assigns: string[] = [];
  const sink: DispatcherSink<string> = {
    assign: (_conn, task) => assigns.push(task.id),
    refuse,
    cancel: () => {},
    event: (task, event) => events.push({ id: task.id, event, attempt: task.attempt }),
  };
  const d = new Dispatcher<string>({ queueLimit: 10, maxAttempts, now: () => 1000 }, sink);
  const submit = (id: string) => d.submit({ id, serviceId: 1, payload: id, timeoutMs: 60_000, queueTimeoutMs: 30_000 });
  return { d, events, assigns, submit };
}

describe('Dispatcher refuse hook and lost-connection reason', () => {
  const big = (_conn: string, task: TaskRecord<string>) => (task.payload.startsWith('big') ? new HubError('payload_too_large', 'too big for it') : null);

  it('fails a refused task at once without an attempt, and it takes no slot', () => {
    const f = setup(big);
    f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
    f.submit('big1');
    expect(f.events.map((e) => e.event.type)).to.deep.equal(['failed']);
    const failed = f.events[0].event as Extract<TaskEvent, { type: 'failed' }>;
    expect(failed.error.code).to.equal('payload_too_large');
    expect(f.events[0].attempt).to.equal(0);
    expect(f.d.task('big1')).to.equal(undefined);
    expect(f.d.connections()[0].inFlight).to.equal(0);
    f.submit('small1');
    expect(f.assigns).to.deep.equal(['small1']);
  });

  it('takes a refused task out of the queue and starts the next one', () => {
    const f = setup(big);
    f.submit('small0');
    f.submit('big1');
    f.submit('small2');
    f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 2 });
    expect(f.assigns).to.deep.equal(['small0', 'small2']);
    expect(f.events.filter((e) => e.id === 'big1').map((e) => e.event.type)).to.deep.equal(['failed']);
    expect(f.d.queueLength(1)).to.equal(0);
  });

  it('names how the connection closed in worker_lost', () => {
    const f = setup(() => null);
    f.d.addConnection({ id: 'a', serviceId: 1, concurrency: 1 });
    f.submit('t');
    f.d.removeConnection('a', 'close 1009 "message too big"');
    const last = f.events.at(-1)!.event as Extract<TaskEvent, { type: 'failed' }>;
    expect(last.error.code).to.equal('worker_lost');
    expect(last.error.message).to.equal('the connection running the task was lost (close 1009 "message too big") and no attempt is left');
  });
});
