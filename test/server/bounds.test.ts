/**
 * The hub's bounds against hostile peers (docs/security.md): each test here failed before the
 * bound it checks existed.
 */
import { expect } from 'chai';
import { startHub, fakeWorker, fakeClient, http, me, type TestHub } from '../helpers/hub.js';

/** `depth` nested arrays, as JSON text. */
const deepArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

describe('Bounds', () => {
  let hub: TestHub;
  afterEach(() => hub?.close());

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
