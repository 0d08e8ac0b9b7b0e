import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import sharp from 'sharp';
import { ROOT, CLI, run, startExample, startHubProcess, type Proc } from '../helpers/processes.js';
import { sleep } from '../helpers/hub.js';

const sqlite = () => `sqlite:${join(mkdtempSync(join(tmpdir(), 'uh-ex-')), 'hub.sqlite')}`;

async function post(url: string, path: string, body: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}
async function get(url: string, path: string): Promise<any> {
  return (await fetch(`${url}${path}`)).json();
}
async function serviceId(url: string, name: string, timeoutMs = 10_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const list = (await get(url, '/services_list')) as Array<{ service_id: number; service_name: string }>;
    const s = list.find((x) => x.service_name === name);
    if (s) return s.service_id;
    if (Date.now() > end) throw new Error(`${name} never listed`);
    await sleep(100);
  }
}
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe('Example workers as processes against the hub command', function () {
  this.timeout(90_000);
  let hub: Proc & { url: string };
  let db: string;
  const procs: Proc[] = [];
  const ws = () => `${hub.url.replace(/^http/, 'ws')}/worker`;

  beforeEach(async () => {
    db = sqlite();
    hub = await startHubProcess(db);
  });
  afterEach(async () => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    hub.kill('SIGTERM');
    await hub.exited;
  });

  it('image rotates a real PNG', async () => {
    procs.push(await startExample('image', ['--hub', ws()]));
    const id = await serviceId(hub.url, 'image_transform_service');
    const png = readFileSync(join(ROOT, 'examples/assets/sample.png'));
    const r = await post(hub.url, '/add_task', { service_id: id, args: { image: `data:image/png;base64,${png.toString('base64')}`, angle: 90 } });
    expect(r.status).to.equal(200);
    const out = Buffer.from(r.body.result.data, 'base64');
    const meta = await sharp(out).metadata();
    expect([meta.format, meta.width, meta.height]).to.deep.equal(['png', 48, 64]);
  });

  it('two sleep workers share the load by fewest in flight', async () => {
    procs.push(await startExample('sleep', ['--hub', ws(), '--instance', 'a']));
    procs.push(await startExample('sleep', ['--hub', ws(), '--instance', 'b']));
    const id = await serviceId(hub.url, 'sleep');
    const t0 = Date.now();
    const results = await Promise.all([0, 1, 2, 3].map(() => post(hub.url, '/add_task', { service_id: id, args: { seconds: 0.5, steps: 2 } })));
    const took = Date.now() - t0;
    const instances = results.map((r) => r.body.result.instance as string).sort();
    expect(instances).to.deep.equal(['a', 'a', 'b', 'b']);
    expect(took).to.be.below(1900); // two at a time, not four in a row
  });

  it('sends a task to the other worker when its worker is killed with SIGKILL', async () => {
    const a = await startExample('sleep', ['--hub', ws(), '--instance', 'a']);
    procs.push(a);
    const id = await serviceId(hub.url, 'sleep');
    const { body } = await post(hub.url, '/add_task?wait=false', { service_id: id, args: { seconds: 1.5, steps: 3 } });
    for (let i = 0; i < 50 && (await get(hub.url, `/tasks/${body.task_id}`)).status !== 'running'; i++) await sleep(50);
    const b = await startExample('sleep', ['--hub', ws(), '--instance', 'b']);
    procs.push(b);
    a.kill('SIGKILL');
    let view: any;
    for (let i = 0; i < 100; i++) {
      view = await get(hub.url, `/tasks/${body.task_id}`);
      if (view.finished_at) break;
      await sleep(100);
    }
    expect(view.status).to.equal('succeeded');
    expect(view.result.instance).to.equal('b');
    expect(view.attempts).to.equal(2);
  });

  it('serves tasks from a worker started with --listen and listed with utils-hub workers add', async () => {
    const port = await freePort();
    procs.push(await startExample('echo', ['--listen', String(port)]));
    const add = run(process.execPath, [CLI, 'workers', 'add', `http://127.0.0.1:${port}`, '--db', db]);
    expect(await add.exited).to.equal(0);
    const id = await serviceId(hub.url, 'echo', 15_000);
    const r = await post(hub.url, '/add_task', { service_id: id, args: { value: { n: 1 } } });
    expect(r.status).to.equal(200);
    expect(JSON.stringify(r.body.result)).to.include('"n":1');
  });
});
