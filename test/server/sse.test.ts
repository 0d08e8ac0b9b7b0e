import { expect } from 'chai';
import { startHub, fakeWorker, http, me, sleep, until, type TestHub } from '../helpers/hub.js';

interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/** An open event stream: its events as they come, and whether the server ended it. */
async function openStream(hub: TestHub, path: string, headers: Record<string, string> = {}) {
  const ctl = new AbortController();
  const res = await fetch(`${hub.url}${path}`, { headers, signal: ctl.signal });
  const events: SseEvent[] = [];
  let ended = false;
  const reading = (async () => {
    if (!res.body) return;
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev: SseEvent = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) ev.comment = line.slice(1).trim();
            else {
              const [field, ...rest] = line.split(':');
              const value = rest.join(':').replace(/^ /, '');
              if (field === 'data') ev.data = ev.data === undefined ? value : `${ev.data}\n${value}`;
              else if (field === 'id' || field === 'event') ev[field] = value;
            }
          }
          events.push(ev);
        }
      }
      ended = true;
    } catch {
      // aborted by the test
    }
  })();
  const data = () => events.filter((e) => e.data !== undefined).map((e) => ({ id: e.id, event: e.event, ...JSON.parse(e.data!) }));
  return {
    res,
    events,
    data,
    get ended() {
      return ended;
    },
    /** Resolves once `n` data events came; rejects after `ms`. */
    async until(pred: () => boolean, what: string, ms = 5000) {
      const end = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(events)}`);
        await sleep(10);
      }
    },
    close() {
      ctl.abort();
      return reading;
    },
  };
}

describe('GET /tasks/{id}/events (server-sent events)', () => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startHub();
  });
  afterEach(() => hub.close());

  it('streams a snapshot, then each event with id: seq and event: type, and closes after the end', async () => {
    const w = await fakeWorker(hub, me('sse_live'));
    const sub = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] });
    const t = await w.nextOf('task');
    const s = await openStream(hub, `/tasks/${sub.body.task_id}/events`);
    expect(s.res.status).to.equal(200);
    expect(s.res.headers.get('content-type')).to.match(/^text\/event-stream/);
    await s.until(() => s.data().length === 1, 'the snapshot');
    expect(s.data()[0]).to.deep.include({ id: '1', event: 'snapshot', type: 'snapshot', task_id: t.task_id, seq: 1, status: 'running' });
    w.send({ type: 'progress', task_id: t.task_id, progress: 0.5, message: 'half' });
    w.send({ type: 'result', task_id: t.task_id, result: { n: 2 } });
    await s.until(() => s.ended, 'the end of the stream');
    expect(s.data().map((e) => [e.id, e.event])).to.deep.equal([
      ['1', 'snapshot'],
      ['2', 'progress'],
      ['3', 'result'],
    ]);
    expect(s.data()[1]).to.include({ progress: 0.5, message: 'half' });
    expect(s.data()[2].result).to.deep.equal({ n: 2 });
  });

  it('gives an ended task its end event alone; 404 task_not_found for an unknown id; 400 for a bad Last-Event-ID', async () => {
    const w = await fakeWorker(hub, me('sse_ended'));
    const done = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: [1] });
    const t = await w.nextOf('task');
    w.send({ type: 'failed', task_id: t.task_id, error: { code: 'bad', message: 'no' } });
    await done;
    const s = await openStream(hub, `/tasks/${t.task_id}/events`);
    await s.until(() => s.ended, 'the end of the stream');
    expect(s.data()).to.have.length(1);
    expect(s.data()[0]).to.deep.include({ id: '2', event: 'failed', task_id: t.task_id });
    expect(s.data()[0].error).to.include({ code: 'task_failed' });
    const missing = await http(hub, 'GET', '/tasks/nope/events');
    expect(missing.status).to.equal(404);
    expect(missing.body.error.code).to.equal('task_not_found');
    const bad = await http(hub, 'GET', `/tasks/${t.task_id}/events`, undefined, { 'last-event-id': 'abc' });
    expect(bad.status).to.equal(400);
    expect(bad.body.error.code).to.equal('bad_request');
  });

  it('resumes after Last-Event-ID: a snapshot only when something was missed, then the later events; 204 once the end was seen', async () => {
    const w = await fakeWorker(hub, me('sse_resume'));
    const sub = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] });
    const id = sub.body.task_id as string;
    const t = await w.nextOf('task');
    const s1 = await openStream(hub, `/tasks/${id}/events`);
    w.send({ type: 'progress', task_id: t.task_id, progress: 0.1 });
    await s1.until(() => s1.data().length === 2, 'snapshot and progress');
    const lastSeen = s1.data()[1].id as string;
    expect(lastSeen).to.equal('2');
    await s1.close();
    // Nothing happened since seq 2: no snapshot, just what comes next.
    const s2 = await openStream(hub, `/tasks/${id}/events`, { 'last-event-id': lastSeen });
    await sleep(100);
    expect(s2.data()).to.deep.equal([]);
    w.send({ type: 'progress', task_id: t.task_id, progress: 0.2 });
    await s2.until(() => s2.data().length === 1, 'the next progress');
    expect(s2.data()[0]).to.deep.include({ id: '3', event: 'progress', progress: 0.2 });
    await s2.close();
    // Missed seq 4 while away: the snapshot says where the task stands, then the rest.
    w.send({ type: 'progress', task_id: t.task_id, progress: 0.4, message: 'missed' });
    await until(async () => (await http(hub, 'GET', `/tasks/${id}`)).body.progress === 0.4, 'the missed progress to reach the hub');
    const s3 = await openStream(hub, `/tasks/${id}/events`, { 'last-event-id': '3' });
    await s3.until(() => s3.data().length === 1, 'the snapshot');
    expect(s3.data()[0]).to.deep.include({ id: '4', event: 'snapshot', progress: 0.4, message: 'missed' });
    w.send({ type: 'result', task_id: t.task_id, result: 'ok' });
    await s3.until(() => s3.ended, 'the end');
    expect(s3.data().map((e) => e.id)).to.deep.equal(['4', '5']);
    // The end was seen: 204, which tells an EventSource to stop; before it, the end again.
    const seen = await fetch(`${hub.url}/tasks/${id}/events`, { headers: { 'last-event-id': '5' } });
    expect(seen.status).to.equal(204);
    const s4 = await openStream(hub, `/tasks/${id}/events`, { 'last-event-id': '4' });
    await s4.until(() => s4.ended, 'the end');
    expect(s4.data().map((e) => [e.id, e.event])).to.deep.equal([['5', 'result']]);
  });

  it('inlines media as base64 and keeps a pretty-printed worker frame readable', async () => {
    const w = await fakeWorker(hub, me('sse_media'));
    const sub = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] });
    const t = await w.nextOf('task');
    const s = await openStream(hub, `/tasks/${sub.body.task_id}/events`);
    await s.until(() => s.data().length === 1, 'the snapshot');
    w.sendRaw(JSON.stringify({ type: 'progress', task_id: t.task_id, message: 'two\nlines' }, null, 2));
    w.send({ type: 'result', task_id: t.task_id, result: { image: { mime: 'image/png', data: Buffer.from([1, 2, 3]) } } });
    await s.until(() => s.ended, 'the end');
    expect(s.data()[1]).to.include({ event: 'progress', message: 'two\nlines' });
    expect(s.data()[2].result).to.deep.equal({ image: { mime: 'image/png', data: Buffer.from([1, 2, 3]).toString('base64') } });
    expect(s.data()[2]).to.not.have.property('attachments');
  });

  it('takes the client key as a header or ?key=, like REST', async () => {
    await hub.close();
    hub = await startHub({ apiKeys: ['sse-key'] });
    const w = await fakeWorker(hub, me('sse_key'));
    const sub = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] }, { authorization: 'Bearer sse-key' });
    const none = await http(hub, 'GET', `/tasks/${sub.body.task_id}/events`);
    expect(none.status).to.equal(401);
    const s = await openStream(hub, `/tasks/${sub.body.task_id}/events?key=sse-key`);
    expect(s.res.status).to.equal(200);
    await s.until(() => s.data().length === 1, 'the snapshot');
    await s.close();
  });

  it('sends a keep-alive comment on an idle stream every 15 s', async function () {
    this.timeout(25_000);
    const w = await fakeWorker(hub, me('sse_idle'));
    const sub = await http(hub, 'POST', '/add_task?wait=false', { service_id: w.welcome.service_id, args: [1] });
    await w.nextOf('task');
    const s = await openStream(hub, `/tasks/${sub.body.task_id}/events`);
    await s.until(() => s.events.some((e) => e.comment === 'keep-alive'), 'a keep-alive comment', 17_000);
    await s.close();
  });
});
