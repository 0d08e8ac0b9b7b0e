import { expect } from 'chai';
import { defineService, HubError, type TaskContext } from '@utils-hub/worker-client';
import { http, startHub } from '../helpers/hub.js';
import { teardown, uniqueName, until } from './support.js';

describe('worker-client', () => {
  describe('against the hub in process', () => {
    it('runs a REST task with media both ways', async () => {
      const hub = await startHub();
      teardown(() => hub.close());
      const service = defineService({
        name: uniqueName('flip'),
        description: 'reverses the bytes of a file',
        input: [{ argument_name: 'file', type: 'file' }],
        handler: async ({ file }, ctx) => {
          if (!('data' in file)) throw new Error('bytes expected');
          await ctx.progress(0.5, 'flipping');
          return { file: { mime: file.mime, name: `flipped-${file.name}`, data: Buffer.from(file.data).reverse() } };
        },
      });
      teardown(() => service.close());
      const info = await service.connect(`${hub.wsUrl}/worker`);
      const res = await http(hub, 'POST', '/add_task', {
        service_id: info.serviceId,
        args: { file: { mime: 'text/plain', name: 'a.txt', data: Buffer.from('abc').toString('base64') } },
      });
      expect(res.status, JSON.stringify(res.body)).to.equal(200);
      expect(res.body.result.file).to.deep.equal({ mime: 'text/plain', name: 'flipped-a.txt', data: Buffer.from('cba').toString('base64') });
    });

    it('fires the signal when a client cancels, and frees the slot for the next task', async () => {
      const hub = await startHub();
      teardown(() => hub.close());
      let ctx: TaskContext | undefined;
      const service = defineService({
        name: uniqueName('wait'),
        description: '',
        input: [{ argument_name: 'ms', type: 'int' }],
        handler: ({ ms }, c) => {
          ctx = c;
          return new Promise((resolve, reject) => {
            const t = setTimeout(resolve, ms, 'slept');
            c.signal.addEventListener('abort', () => {
              clearTimeout(t);
              reject(c.signal.reason);
            });
          });
        },
      });
      teardown(() => service.close());
      const { serviceId } = await service.connect(`${hub.wsUrl}/worker`);
      const queued = await http(hub, 'POST', '/add_task?wait=false', { service_id: serviceId, args: { ms: 60_000 } });
      await until(() => ctx !== undefined, 'the handler', 3000);
      const canceled = await http(hub, 'DELETE', `/tasks/${queued.body.task_id}`);
      expect(canceled.body.status).to.equal('canceled');
      await until(() => ctx!.signal.aborted, 'the abort', 3000);
      expect(ctx!.abortReason).to.equal('client');
      const next = await http(hub, 'POST', '/add_task', { service_id: serviceId, args: { ms: 1 }, queue_timeout_ms: 2000 });
      expect(next.body).to.include({ status: 'succeeded', result: 'slept' });
    });

    it('reports service_conflict for a second description of a live service', async () => {
      const hub = await startHub();
      teardown(() => hub.close());
      const name = uniqueName('twin');
      const one = defineService({ name, description: 'one', input: [], handler: () => 1 });
      teardown(() => one.close());
      await one.connect(`${hub.wsUrl}/worker`);
      const two = defineService({ name, description: 'two', input: [], handler: () => 2 });
      teardown(() => two.close());
      const errors: Error[] = [];
      two.on('error', (e) => errors.push(e));
      void two.connect(`${hub.wsUrl}/worker`, { minDelayMs: 5000 });
      await until(() => errors.length > 0, 'the refusal', 3000);
      expect(errors[0]).to.be.instanceOf(HubError);
      expect((errors[0] as HubError).code).to.equal('service_conflict');
    });
  });
});
