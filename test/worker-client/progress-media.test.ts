import { expect } from 'chai';
import { defineService, type MediaFile } from '@utils-hub/worker-client';
import { fakeHub, sleep, teardown, testService, uniqueName } from './support.js';

describe('worker-client', () => {
  describe('progress', () => {
    it('sends progress with its fraction, message and data', async () => {
      const hub = await fakeHub();
      const service = testService(async (_a, ctx) => {
        await ctx.progress(0.25, 'quarter', { step: 1 });
        return 'done';
      });
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      conn.task('t-1', { value: 1 });
      const p = await conn.next((m) => m.type === 'progress');
      expect(p).to.deep.equal({ type: 'progress', task_id: 't-1', progress: 0.25, message: 'quarter', data: { step: 1 } });
      await conn.answer('t-1');
    });

    it('rate-limits a tight loop and always sends the last value before the result', async () => {
      const hub = await fakeHub();
      const service = testService(
        async (_a, ctx) => {
          for (let i = 1; i <= 10_000; i++) void ctx.progress(i / 10_000, `step ${i}`);
          await sleep(120);
          for (let i = 1; i <= 100; i++) void ctx.progress(0.5 + i / 200, `late ${i}`);
          return 'done';
        },
        { progressIntervalMs: 50 },
      );
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      const order: string[] = [];
      conn.ws.on('message', (d, isBinary) => isBinary || order.push(JSON.parse(String(d)).type));
      conn.task('t-1', { value: 1 });
      await conn.answer('t-1');
      const progress = conn.peek('progress');
      // First of the loop at once, its last after the interval, then the first and last of the second loop.
      expect(progress.length).to.be.within(2, 5);
      expect(progress[0].message).to.equal('step 1');
      expect(progress.map((m) => m.message)).to.include('step 10000');
      expect(progress.at(-1)).to.deep.include({ progress: 1, message: 'late 100' });
      // The waiting value went out right before the answer.
      expect(order.slice(-2)).to.deep.equal(['progress', 'result']);
    });

    it('clamps the fraction and leaves NaN out', async () => {
      const hub = await fakeHub();
      const service = testService(async (_a, ctx) => {
        await ctx.progress(7);
        await sleep(60);
        await ctx.progress(Number.NaN, 'no number');
        return null;
      });
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      conn.task('t-1', { value: 1 });
      await conn.answer('t-1');
      expect(conn.peek('progress').map(({ progress, message }) => ({ progress, message }))).to.deep.equal([
        { progress: 1, message: undefined },
        { progress: undefined, message: 'no number' },
      ]);
    });

    it('sends no progress after the task was canceled', async () => {
      const hub = await fakeHub();
      const service = testService(async (_a, ctx) => {
        await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
        await ctx.progress(0.9, 'too late');
        return null;
      });
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      conn.task('t-1', { value: 1 });
      await sleep(20);
      conn.cancel('t-1');
      await conn.answer('t-1');
      expect(conn.peek('progress')).to.deep.equal([]);
    });
  });

  describe('attachments', () => {
    it('hands incoming media to the handler as {mime, name, data: Buffer}', async () => {
      let seen: MediaFile | undefined;
      const service = defineService({
        name: uniqueName(),
        description: '',
        input: [{ argument_name: 'picture', type: 'image', mime: ['image/png'] }],
        handler: ({ picture }) => {
          seen = picture as MediaFile;
          return { size: seen.data.length };
        },
      });
      teardown(() => service.close());
      const hub = await fakeHub();
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
      conn.task('t-1', { picture: { mime: 'image/png', name: 'a.png', data: bytes } });
      expect((await conn.answer('t-1')).result).to.deep.equal({ size: 7 });
      expect(seen!.mime).to.equal('image/png');
      expect(seen!.name).to.equal('a.png');
      expect(Buffer.isBuffer(seen!.data)).to.equal(true);
      expect(seen!.data.equals(bytes)).to.equal(true);
    });

    it('sends Buffers and {mime, name, data} in a result as binary frames', async () => {
      const hub = await fakeHub();
      const service = testService(() => ({
        image: { mime: 'image/png', name: 'out.png', data: Buffer.from('png-bytes') },
        raw: Buffer.from('raw-bytes'),
        note: 'two attachments',
      }));
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      const frames: Buffer[] = [];
      conn.ws.on('message', (d, isBinary) => isBinary && frames.push(d as Buffer));
      conn.task('t-1', { value: 1 });
      const answer = await conn.answer('t-1');
      expect(answer.attachments).to.equal(2);
      expect(answer.result.note).to.equal('two attachments');
      expect(answer.result.image.mime).to.equal('image/png');
      expect(answer.result.image.name).to.equal('out.png');
      expect(answer.result.image.data.toString()).to.equal('png-bytes');
      expect(answer.result.raw.data.toString()).to.equal('raw-bytes');
      expect(frames.map((f) => f.toString())).to.deep.equal(['png-bytes', 'raw-bytes']);
    });

    it('sends a Buffer in progress data as an attachment (a preview)', async () => {
      const hub = await fakeHub();
      const service = testService(async (_a, ctx) => {
        await ctx.progress(0.5, 'preview', { mime: 'image/png', data: Buffer.from('tiny') });
        return null;
      });
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      conn.task('t-1', { value: 1 });
      const p = await conn.next((m) => m.type === 'progress');
      expect(p.attachments).to.equal(1);
      expect(p.data.mime).to.equal('image/png');
      expect(p.data.data.toString()).to.equal('tiny');
    });

    it('fails with internal when a result cannot be encoded (17 attachments)', async () => {
      const hub = await fakeHub();
      const service = testService(() => Array.from({ length: 17 }, () => Buffer.from('x')));
      await service.connect(hub.url);
      const conn = await hub.connection(0);
      conn.task('t-1', { value: 1 });
      const answer = await conn.answer('t-1');
      expect(answer.type).to.equal('failed');
      expect(answer.error.code).to.equal('internal');
      expect(answer.error.message).to.match(/at most 16 attachments/);
    });
  });
});
