import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import sharp from 'sharp';
import type { Service } from '@utils-hub/worker-client';
import { echoService } from '../../examples/services/echo.js';
import { imageService } from '../../examples/services/image.js';
import { sleepService } from '../../examples/services/sleep.js';
import type { HubSide } from '../helpers/fake-hub.js';
import { fakeHub, sleep, teardown } from './support.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SAMPLE = readFileSync(`${ROOT}examples/assets/sample.png`);

async function serve(service: Service, options: { instance?: string } = {}): Promise<HubSide> {
  teardown(() => service.close({ graceMs: 100 }));
  const hub = await fakeHub();
  await service.connect(hub.url, options);
  return hub.connection(0);
}

/** Runs `examples/run.ts` with `args`; resolves with the process once its first stdout line came. */
function runExample(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', `${ROOT}examples/run.ts`, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  teardown(() => child.exitCode === null && child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout.on('data', () => stdout.includes('\n') && resolve(stdout.split('\n')[0]));
    void exited.then((code) => reject(new Error(`exited ${code} before a line: ${stderr}`)));
  });
  return { child, exited, firstLine, output: () => ({ stdout, stderr }) };
}

describe('examples', () => {
  describe('image_transform_service', () => {
    const picture = { mime: 'image/png', name: 'sample.png', data: SAMPLE };

    it('rotates the sample by 90 degrees by default, in PNG, with progress per step', async () => {
      const conn = await serve(imageService());
      conn.task('t-1', { image: picture });
      const answer = await conn.answer('t-1', 15_000);
      expect(answer.type, JSON.stringify(answer.error)).to.equal('result');
      expect(answer.result).to.include({ mime: 'image/png', name: 'sample-rotate.png' });
      const meta = await sharp(answer.result.data).metadata();
      expect([meta.format, meta.width, meta.height]).to.deep.equal(['png', 48, 64]);
      expect(conn.peek('progress').map((p) => p.message)).to.include.members(['reading', 'done']);
    });

    it('resizes to a width, keeping the proportion, and refuses a resize without one', async () => {
      const conn = await serve(imageService());
      conn.task('t-1', { image: picture, operation: 'resize', width: 32 });
      conn.task('t-2', { image: picture, operation: 'resize' });
      const meta = await sharp((await conn.answer('t-1', 15_000)).result.data).metadata();
      expect([meta.width, meta.height]).to.deep.equal([32, 24]);
      expect((await conn.answer('t-2')).error.code).to.equal('missing_width');
    });

    it('greys and blurs, and answers a JPEG for a JPEG', async () => {
      const conn = await serve(imageService());
      const jpeg = await sharp(SAMPLE).jpeg().toBuffer();
      conn.task('t-1', { image: { mime: 'image/jpeg', data: jpeg }, operation: 'grayscale' });
      conn.task('t-2', { image: picture, operation: 'blur', sigma: 3 });
      const grey = (await conn.answer('t-1', 15_000)).result;
      expect(grey).to.include({ mime: 'image/jpeg', name: 'image-grayscale.jpg' });
      const stats = await sharp(grey.data).stats();
      expect(stats.isOpaque).to.equal(true);
      const [r, g] = stats.channels;
      expect(Math.abs(r.mean - g.mean)).to.be.below(2);
      const blurred = (await conn.answer('t-2', 15_000)).result;
      expect((await sharp(blurred.data).metadata()).width).to.equal(64);
      expect(Buffer.compare(blurred.data, SAMPLE)).to.not.equal(0);
    });

    it('fails bad_image for bytes that are not a picture, and invalid_args for a GIF', async () => {
      const conn = await serve(imageService());
      conn.task('t-1', { image: { mime: 'image/png', data: Buffer.from('not a png') } });
      conn.task('t-2', { image: { mime: 'image/gif', data: Buffer.from('GIF89a') } });
      expect((await conn.answer('t-1')).error.code).to.equal('bad_image');
      expect((await conn.answer('t-2')).error.code).to.equal('invalid_args');
    });
  });

  describe('echo', () => {
    it('answers its args back after a progress message', async () => {
      const conn = await serve(echoService());
      conn.task('t-1', { value: { hello: ['world'] }, text: 'hi' });
      expect((await conn.answer('t-1')).result).to.deep.equal({ value: { hello: ['world'] }, text: 'hi' });
      expect(conn.peek('progress')).to.have.length(1);
    });
  });

  describe('sleep', () => {
    it('sleeps in steps with progress and names its instance', async () => {
      const conn = await serve(sleepService(), { instance: 'sleeper-1' });
      conn.task('t-1', { seconds: 0.2, steps: 2 });
      const { result } = await conn.answer('t-1');
      expect(result.instance).to.equal('sleeper-1');
      expect(result.slept_ms).to.be.within(190, 1000);
      expect(conn.peek('progress').map((p) => p.progress)).to.deep.equal([0.5, 1]);
    });

    it('stops at once when canceled', async () => {
      const conn = await serve(sleepService());
      conn.task('t-1', { seconds: 60 });
      await sleep(50);
      const started = Date.now();
      conn.cancel('t-1');
      const answer = await conn.answer('t-1');
      expect(Date.now() - started).to.be.below(500);
      expect(answer.error.code).to.equal('canceled');
    });
  });

  describe('run.ts', () => {
    it('prints one line once connected, and exits 0 on SIGTERM', async () => {
      const hub = await fakeHub();
      const run = runExample(['echo', '--hub', hub.url, '--token', 't0k', '--concurrency', '3', '--instance', 'ex-1']);
      expect(await run.firstLine).to.equal(`echo connected to ${hub.url}`);
      const hello = await (await hub.connection(0)).hello;
      expect(hello).to.deep.include({ concurrency: 3, instance: 'ex-1' });
      expect(hub.connections[0].authorization).to.equal('Bearer t0k');
      run.child.kill('SIGTERM');
      expect(await run.exited).to.equal(0);
      expect(run.output().stdout).to.equal(`echo connected to ${hub.url}\n`);
    });

    it('prints one line once listening, serves /me, and exits 0 on SIGINT', async () => {
      const run = runExample(['sleep', '--listen', '0', '--secret', 'dial-me']);
      const line = await run.firstLine;
      const m = /^sleep listening on (http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
      expect(m, line).to.not.equal(null);
      expect((await fetch(`${m![1]}/me`)).status).to.equal(401);
      const me = await fetch(`${m![1]}/me`, { headers: { authorization: 'Bearer dial-me' } });
      expect(((await me.json()) as { name: string }).name).to.equal('sleep');
      run.child.kill('SIGINT');
      expect(await run.exited).to.equal(0);
    });

    it('exits 2 with the usage for a wrong command line', async () => {
      const run = runExample(['nope', '--hub', 'ws://127.0.0.1:1/worker']);
      expect(await run.exited).to.equal(2);
      expect(run.output().stderr).to.match(/unknown service "nope"[\s\S]*usage: run\.ts NAME/);
      const both = runExample(['echo']);
      expect(await both.exited).to.equal(2);
      expect(both.output().stderr).to.match(/either --hub URL or --listen PORT/);
    });
  });
});
