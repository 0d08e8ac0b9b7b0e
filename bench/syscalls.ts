/**
 * Counts the system calls of the hub, then of the baseline, under one scenario's load, with
 * `strace -c -f` attached to the server for a fixed window: how many socket writes each makes
 * per task (issue 15: "count writes and bytes per tick in both under the same load").
 *
 *   node --import tsx bench/syscalls.ts [--inflight 64] [--media 0] [--seconds 5] [--peer hub,baseline]
 *
 * strace slows the traced process a lot: the counts per task are what to read, not the rates.
 */
import { spawn } from 'node:child_process';
import { cleanupOnExit, stop } from './procs.js';
import { loadProcess, runTrial, sqliteStore, startBaseline, startEchoWorkers, startHub, startLoad, stopLoad, type Server } from './peers.js';
import { CLK_TCK } from './procs.js';
import { numFlag, parseFlags } from './wire.js';

const flags = parseFlags(process.argv.slice(2));
const inflight = numFlag(flags, 'inflight', 64);
const media = numFlag(flags, 'media', 0);
const seconds = numFlag(flags, 'seconds', 5);
const peers = (flags.get('peer') ?? 'hub,baseline').split(',');

async function measure(peer: string): Promise<void> {
  const store = sqliteStore();
  const server: Server = peer === 'hub' ? await startHub(store) : await startBaseline();
  const worker = await startEchoWorkers(server, 1, Math.max(inflight, 8));
  const load = await startLoad(loadProcess(server, { inflight, connections: 1, media }));
  try {
    const out: string[] = [];
    const st = spawn(
      'strace',
      ['-c', '-f', '-e', 'trace=write,writev,pwrite64,pwritev,sendmsg,read,readv,pread64,futex,epoll_wait', '-p', String(server.child.pid)],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    st.stderr.on('data', (d: Buffer) => out.push(d.toString()));
    await new Promise((r) => setTimeout(r, 500));
    const trial = await runTrial(
      { peer: server.peer, serverPid: server.child.pid, workerPid: worker.pid, load },
      { scenario: 'syscalls', round: 1, clkTck: CLK_TCK },
      { warmup: 200, duration: seconds * 1000 },
    );
    st.kill('SIGINT');
    await new Promise((r) => st.on('exit', r));
    const text = out.join('');
    process.stdout.write(`## ${peer}: ${trial.tasks} tasks in the window (traced, slowed)\n${text}\n`);
    const per = (name: string) => {
      const m = text.match(new RegExp(`^\\s*[\\d.]+\\s+[\\d.]+\\s+\\d+\\s+(\\d+)\\s+(?:\\d+\\s+)?${name}$`, 'm'));
      return m ? (Number(m[1]) / trial.tasks).toFixed(2) : '0';
    };
    process.stdout.write(
      `${peer}: per task: writev ${per('writev')}, write ${per('write')}, pwrite64 ${per('pwrite64')}, read ${per('read')}, epoll_wait ${per('epoll_wait')}, futex ${per('futex')}\n\n`,
    );
  } finally {
    await stopLoad(load);
    await stop(worker);
    await stop(server.child, 'SIGTERM', 10_000);
    await store.drop();
  }
}

cleanupOnExit();
for (const p of peers) await measure(p);
process.exit(0);
