import { expect } from 'chai';
import { Writable } from 'node:stream';
import { startHub, tempSqlite, fakeWorker, http, me, sleep, until, type TestHub } from '../helpers/hub.js';
import { startHubProcess, type Proc } from '../helpers/processes.js';

type Line = Record<string, any>;

/** Runs one task on `w` with `progressCount` progress messages, then the given end. */
async function runTask(hub: Pick<TestHub, 'url'>, w: Awaited<ReturnType<typeof fakeWorker>>, progressCount: number, end: 'result' | 'failed'): Promise<string> {
  const added = http(hub as TestHub, 'POST', '/add_task', { service_id: w.welcome.service_id, args: { x: 1 } });
  const task = await w.nextOf('task');
  for (let i = 1; i <= progressCount; i++) w.send({ type: 'progress', task_id: task.task_id, progress: i / (progressCount + 1), message: `step ${i}` });
  if (end === 'result') w.send({ type: 'result', task_id: task.task_id, result: { ok: true } });
  else w.send({ type: 'failed', task_id: task.task_id, error: { code: 'broken', message: 'it broke' } });
  await added;
  return task.task_id as string;
}

describe('Operator', () => {
  describe('logs', () => {
    describe('in process', () => {
      let hub: TestHub;
      let lines: Line[];
      beforeEach(async () => {
        lines = [];
        const stream = new Writable({
          write(chunk, _enc, cb) {
            for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Line);
            cb();
          },
        });
        hub = await startHub({ logger: { level: 'info', stream } });
      });
      afterEach(() => hub.close());

      it('writes one info line per task end with task_id, service and connection_id, none per progress message', async () => {
        const w = await fakeWorker(hub, me('logs_ok'));
        const ok = await runTask(hub, w, 20, 'result');
        const failed = await runTask(hub, w, 3, 'failed');
        const ended = (id: string) => lines.some((l) => l.task_id === id && l.msg === 'task ended');
        await until(() => ended(ok) && ended(failed), "both tasks' end lines");
        for (const [id, status, code] of [
          [ok, 'succeeded', undefined],
          [failed, 'failed', 'task_failed'],
        ] as const) {
          const about = lines.filter((l) => l.task_id === id);
          expect(about, JSON.stringify(about)).to.have.length(1);
          expect(about[0]).to.include({ level: 30, msg: 'task ended', service: 'logs_ok', connection_id: w.welcome.connection_id, status });
          expect(about[0].code).to.equal(code);
        }
        expect(lines.filter((l) => /progress/i.test(JSON.stringify(l)))).to.deep.equal([]);
        // The worker's own lines carry its connection_id too.
        expect(lines.find((l) => l.msg === 'worker connected')).to.include({ connection_id: w.welcome.connection_id, service: 'logs_ok' });
        // Every line names the hub.
        expect(lines.filter((l) => l.hub_id !== hub.app.hub.hubId)).to.deep.equal([]);
        await w.close();
      });

      it('logs no line per request', async () => {
        const before = lines.length;
        for (let i = 0; i < 5; i++) await http(hub, 'GET', '/services_list');
        await http(hub, 'GET', '/metrics');
        await http(hub, 'GET', '/api/overview');
        expect(lines.slice(before)).to.deep.equal([]);
      });
    });

    describe('HUB_LOG_LEVEL', () => {
      let proc: (Proc & { url: string }) | undefined;
      afterEach(async () => {
        proc?.kill('SIGTERM');
        await proc?.exited;
        proc = undefined;
      });

      for (const [level, expectEnd] of [
        ['info', true],
        ['warn', false],
      ] as const) {
        it(`${level}: ${expectEnd ? 'writes' : 'leaves out'} the task end lines`, async () => {
          proc = await startHubProcess(tempSqlite(), { HUB_LOG_LEVEL: level });
          const target = { url: proc.url, wsUrl: proc.url.replace(/^http/, 'ws') } as TestHub;
          const w = await fakeWorker(target, me(`logs_level_${level}`));
          const id = await runTask(target, w, 5, 'result');
          if (expectEnd) {
            const [line] = await proc.waitFor(new RegExp(`\\{[^\\n]*"task_id":"${id}"[^\\n]*\\}`));
            expect(JSON.parse(line)).to.include({ msg: 'task ended', service: `logs_level_${level}`, connection_id: w.welcome.connection_id });
          } else {
            await sleep(300);
            expect(proc.output()).not.to.include(id);
            expect(proc.output()).not.to.include('"level":30');
          }
          await w.close();
        });
      }
    });
  });
});
