import { expect } from 'chai';
import { WsPeer } from '../helpers/ws-peer.js';
import { startHub, fakeWorker, fakeClient, http, me, until, type TestHub } from '../helpers/hub.js';
import { sample } from '../helpers/metrics.js';

async function scrape(hub: TestHub, headers: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${hub.url}/metrics`, { headers });
  expect(res.status).to.equal(200);
  expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
  return res.text();
}

describe('Operator', () => {
  describe('GET /metrics', () => {
    let hub: TestHub;
    beforeEach(async () => {
      hub = await startHub();
    });
    afterEach(() => hub.close());

    it('names the hub in utils_hub_info (HUB_ID, else an id made at start; no cluster alone)', async () => {
      const named = await startHub({ hubId: 'metrics-hub' });
      try {
        expect(sample(await scrape(named), 'utils_hub_info', { hub: 'metrics-hub', cluster: '' })).to.equal(1);
      } finally {
        await named.close();
      }
      const made = (await scrape(hub)).match(/^utils_hub_info\{hub="(hub-[\w-]{8})",cluster=""\} 1$/m);
      expect(made, 'an id made at start').to.not.equal(null);
      const overview = (await http(hub, 'GET', '/api/overview')).body;
      expect(overview).to.include({ hub_id: made![1], cluster: null });
      expect(overview.hubs.map((h: { hub_id: string; self: boolean }) => [h.hub_id, h.self])).to.deep.equal([[made![1], true]]);
    });

    it('counts a finished task by service and status, with its duration and queue wait', async () => {
      const w = await fakeWorker(hub, me('metrics_ok'));
      const add = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: { x: 1 } });
      const task = await w.nextOf('task');
      w.send({ type: 'progress', task_id: task.task_id, progress: 0.5 });
      w.send({ type: 'result', task_id: task.task_id, result: { y: 2 } });
      expect((await add).status).to.equal(200);
      const text = await scrape(hub);
      expect(sample(text, 'utils_hub_tasks_total', { service: 'metrics_ok', status: 'succeeded', code: '' })).to.equal(1);
      expect(sample(text, 'utils_hub_task_duration_seconds_count', { service: 'metrics_ok', status: 'succeeded' })).to.equal(1);
      expect(sample(text, 'utils_hub_task_queue_wait_seconds_count', { service: 'metrics_ok' })).to.equal(1);
      await w.close();
    });

    it('counts failures by error code', async () => {
      const w = await fakeWorker(hub, me('metrics_fail'));
      const add = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: { x: 1 } });
      const task = await w.nextOf('task');
      w.send({ type: 'failed', task_id: task.task_id, error: { code: 'nope', message: 'no' } });
      expect((await add).status).to.equal(502);
      const text = await scrape(hub);
      expect(sample(text, 'utils_hub_tasks_total', { service: 'metrics_fail', status: 'failed', code: 'task_failed' })).to.equal(1);
      await w.close();
    });

    it('moves the queue, in-flight and connection gauges with the hub', async () => {
      const w = await fakeWorker(hub, me('metrics_gauges'), { concurrency: 1 });
      const c = await fakeClient(hub);
      let text = await scrape(hub);
      expect(sample(text, 'utils_hub_connections', { kind: 'worker_outbound' })).to.equal(1);
      expect(sample(text, 'utils_hub_connections', { kind: 'worker_dialed' })).to.equal(0);
      expect(sample(text, 'utils_hub_connections', { kind: 'client' })).to.equal(1);
      expect(sample(text, 'utils_hub_tasks_in_flight', { service: 'metrics_gauges' })).to.equal(0);
      expect(sample(text, 'utils_hub_worker_slots', { service: 'metrics_gauges' })).to.equal(1);

      const sid = w.welcome.service_id;
      const first = await http(hub, 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 1 } });
      await http(hub, 'POST', '/add_task?wait=false', { service_id: sid, args: { x: 2 } });
      const task = await w.nextOf('task');
      expect(task.task_id).to.equal(first.body.task_id);
      text = await scrape(hub);
      expect(sample(text, 'utils_hub_tasks_in_flight', { service: 'metrics_gauges' })).to.equal(1);
      expect(sample(text, 'utils_hub_tasks_running')).to.equal(1);
      expect(sample(text, 'utils_hub_queue_length', { service: 'metrics_gauges' })).to.equal(1);

      w.send({ type: 'result', task_id: task.task_id, result: 1 });
      const second = await w.nextOf('task');
      w.send({ type: 'result', task_id: second.task_id, result: 2 });
      const succeeded = { service: 'metrics_gauges', status: 'succeeded', code: '' };
      await until(async () => sample(await scrape(hub), 'utils_hub_tasks_total', succeeded) === 2, 'both results to be counted');
      await c.close();
      await w.close();
      const connections = (kind: string) => sample(text, 'utils_hub_connections', { kind });
      await until(async () => {
        text = await scrape(hub);
        return connections('worker_outbound') === 0 && connections('client') === 0;
      }, 'both connections to be gone');
      expect(sample(text, 'utils_hub_queue_length', { service: 'metrics_gauges' })).to.equal(0);
      expect(sample(text, 'utils_hub_tasks_in_flight', { service: 'metrics_gauges' })).to.equal(0);
      expect(sample(text, 'utils_hub_connections', { kind: 'worker_outbound' })).to.equal(0);
      expect(sample(text, 'utils_hub_connections', { kind: 'client' })).to.equal(0);
      expect(sample(text, 'utils_hub_tasks_total', { service: 'metrics_gauges', status: 'succeeded', code: '' })).to.equal(2);
    });

    it('counts bad messages, refused handshakes and dial failures', async () => {
      const c = await fakeClient(hub);
      c.sendRaw('not json');
      await c.nextOf('error');
      const bad = await WsPeer.open(`${hub.wsUrl}/worker`);
      bad.send({ type: 'hello', protocol: 99, me: { name: 'x', description: '', input: [] } });
      await bad.closed;
      for (let i = 0; i < 3; i++) hub.app.hub.recordDialFailure(); // the dialer's own tests make real failures; here the wiring counts
      let text = await scrape(hub);
      expect(sample(text, 'utils_hub_bad_messages_total', { side: 'client' })).to.equal(1);
      expect(sample(text, 'utils_hub_bad_messages_total', { side: 'worker' })).to.equal(0);
      expect(sample(text, 'utils_hub_rejected_handshakes_total', { code: 'unsupported_protocol' })).to.equal(1);
      expect(sample(text, 'utils_hub_dial_failures_total')).to.equal(3);
      // A counter read from hub.stats only grows by what was added since the last scrape.
      hub.app.hub.recordDialFailure();
      text = await scrape(hub);
      expect(sample(text, 'utils_hub_dial_failures_total')).to.equal(4);
      await c.close();
    });

    it('keeps each hub apart: two hubs in one process have their own counts', async () => {
      const other = await startHub();
      try {
        const w = await fakeWorker(hub, me('metrics_apart'));
        const add = http(hub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: { x: 1 } });
        const task = await w.nextOf('task');
        w.send({ type: 'result', task_id: task.task_id, result: 1 });
        await add;
        expect(sample(await scrape(hub), 'utils_hub_tasks_total', { service: 'metrics_apart', status: 'succeeded', code: '' })).to.equal(1);
        expect(sample(await scrape(other), 'utils_hub_tasks_total', { service: 'metrics_apart', status: 'succeeded', code: '' })).to.equal(undefined);
        await w.close();
      } finally {
        await other.close();
      }
    });

    it('needs a client key when keys are required', async () => {
      const keyed = await startHub({ apiKeys: ['metrics-key'] });
      try {
        expect((await fetch(`${keyed.url}/metrics`)).status).to.equal(401);
        const text = await scrape(keyed, { authorization: 'Bearer metrics-key' });
        expect(sample(text, 'utils_hub_shutting_down')).to.equal(0);
        expect(text).to.match(/^process_cpu_user_seconds_total \S+$/m);
        expect(text.match(/^# TYPE process_cpu_user_seconds_total /gm)).to.have.length(1);
      } finally {
        await keyed.close();
      }
    });
  });
});
