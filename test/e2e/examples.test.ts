import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { execFileSync } from 'node:child_process';
import sharp from 'sharp';
import { ROOT, CLI, run, startExample, startHubProcess, type Proc } from '../helpers/processes.js';
import { sleep } from '../helpers/hub.js';
import { until } from '../helpers/wait.js';

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
/** The task's view once it has ended. */
async function ended(url: string, taskId: string, timeoutMs = 15_000): Promise<any> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const view = await get(url, `/tasks/${taskId}`);
    if (view.finished_at) return view;
    if (Date.now() > end) throw new Error(`task ${taskId} still ${view.status} after ${timeoutMs} ms`);
    await sleep(50);
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
    procs.push(await startExample('sleep', ['--hub', ws(), '--instance', 'a', '--concurrency', '1']));
    procs.push(await startExample('sleep', ['--hub', ws(), '--instance', 'b', '--concurrency', '1']));
    const id = await serviceId(hub.url, 'sleep');
    const started = await Promise.all([0, 1, 2, 3].map(() => post(hub.url, '/add_task?wait=false', { service_id: id, args: { seconds: 0.5, steps: 2 } })));
    const views = await Promise.all(started.map((r) => ended(hub.url, r.body.task_id)));
    expect(views.map((v) => v.status)).to.deep.equal(['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    expect(views.map((v) => v.result.instance as string).sort()).to.deep.equal(['a', 'a', 'b', 'b']);
    // From the first submission to the last end, by the hub's clock: two at a time, not four in a row.
    const first = Math.min(...views.map((v) => Date.parse(v.created_at)));
    const last = Math.max(...views.map((v) => Date.parse(v.finished_at)));
    expect(last - first).to.be.below(1500);
  });

  it('sends a task to the other worker when its worker is killed with SIGKILL', async () => {
    const a = await startExample('sleep', ['--hub', ws(), '--instance', 'a']);
    procs.push(a);
    const id = await serviceId(hub.url, 'sleep');
    const { body } = await post(hub.url, '/add_task?wait=false', { service_id: id, args: { seconds: 1.5, steps: 3 } });
    await until(async () => (await get(hub.url, `/tasks/${body.task_id}`)).status === 'running', 'the task running on a', 10_000);
    // Killed while it runs the task; the task goes back to the service's queue and waits there for
    // the next worker of the service (started only now, so that a slow start cannot let `a` finish).
    a.kill('SIGKILL');
    await a.exited;
    procs.push(await startExample('sleep', ['--hub', ws(), '--instance', 'b']));
    const view = await ended(hub.url, body.task_id);
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

describe('npm run demo', function () {
  this.timeout(60_000);

  it('prints a /services_list command that lists the three services, and Ctrl-C stops every child and exits 0', async () => {
    const demo = run(process.execPath, ['--import', 'tsx', `${ROOT}examples/demo.ts`, '--port', '0', '--db', sqlite()]);
    let pids: number[] = [];
    // Alive means running: a child that exited after the demo is re-parented, and a zombie left
    // for a parent that does not reap (PID 1 in some containers) has ended all the same.
    const alive = (pid: number) => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    try {
      await demo.waitFor(/Ctrl-C stops the demo/, 30_000);
      // Every child of the demo, tsx's esbuild service included, must be gone after Ctrl-C.
      const children = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(demo.child.pid)], { encoding: 'utf8' })
        .trim()
        .split('\n');
      pids = children.map((line) => Number.parseInt(line, 10));
      expect(children.filter((c) => /utils-hub\.js start|examples\/run\.ts/.test(c))).to.have.length(4); // the hub and three workers

      const url = demo.output().match(/^ {2}curl -s (http:\/\/\S+\/services_list)$/m)?.[1];
      expect(url, demo.output()).to.be.a('string');
      const list = (await (await fetch(url!)).json()) as Array<{ service_name: string }>;
      expect(list.map((s) => s.service_name).sort()).to.deep.equal(['echo', 'image_transform_service', 'sleep']);
      expect(demo.output()).to.match(/^The dashboard and playground: http:\/\/127\.0\.0\.1:\d+\/ /m);

      demo.kill('SIGINT');
      expect(await demo.exited).to.equal(0);
      // tsx's esbuild service sees its stdin close when the demo exits; give it a moment to go.
      for (let i = 0; i < 40 && pids.some(alive); i++) await sleep(50);
      expect(pids.filter(alive)).to.deep.equal([]);
    } finally {
      demo.kill('SIGKILL');
      for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
    }
  });
});
