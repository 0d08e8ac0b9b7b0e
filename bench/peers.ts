/**
 * Starting the systems under test as their own processes, and running one measured trial of
 * load against them: the hub (its real command), the baseline, the echo workers, BullMQ's worker
 * and producer; the task store's database for the hub (a SQLite file, or a fresh MariaDB
 * database dropped afterwards).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { TestCluster } from './cluster.js';
import type { LoadReport } from './load.js';
import { cpuSeconds, rssBytes, start, stop, syscalls, waitLine, type Child } from './procs.js';
import type { Peer, Trial } from './report.js';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NODE = process.execPath;
const TSX = ['--import', 'tsx'];

/** A server under test, with the URL base its workers and clients dial. */
export interface Server {
  peer: Peer;
  child: Child;
  /** `ws://127.0.0.1:PORT` */
  wsBase: string;
}

/** Where the hub keeps its tasks. */
export interface Store {
  url: string;
  drop(): Promise<void>;
}

/** A fresh SQLite file in a temporary folder. */
export function sqliteStore(): Store {
  const dir = mkdtempSync(path.join(tmpdir(), 'uh-bench-'));
  return { url: `sqlite:${path.join(dir, 'hub.sqlite')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
}

/** A fresh MariaDB database `uh_bench_<random>` on 127.0.0.1:3306 (root, no password), dropped by `drop`. */
export async function mysqlStore(base = 'mysql://root@127.0.0.1:3306'): Promise<Store> {
  const { default: mysql } = await import('mysql2/promise');
  const name = `uh_bench_${randomBytes(4).toString('hex')}`;
  const conn = await mysql.createConnection(`${base}/`);
  await conn.query(`CREATE DATABASE \`${name}\``);
  await conn.end();
  return {
    url: `${base}/${name}`,
    drop: async () => {
      const c = await mysql.createConnection(`${base}/`);
      try {
        await c.query(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * Runs `utils-hub start` on a free port, quiet; `nodeFlags` go to node (such as --cpu-prof).
 * `corked`: the experiment of bench/experiments/cork-ws.ts (peer `hub-cork`); `async`: with
 * `HUB_COMMIT=async` (peer `hub-async`).
 */
export async function startHub(store: Store, nodeFlags: string[] = [], corked = false, async = false, delivery = false): Promise<Server> {
  const peer: Peer = corked ? 'hub-cork' : async ? 'hub-async' : delivery ? 'hub-delivery' : 'hub';
  // hub-delivery: webhooks signed and allowed to the local receiver.
  const webhookEnv = delivery ? { HUB_WEBHOOK_SECRET: `whsec_${randomBytes(24).toString('base64')}`, HUB_WEBHOOK_ALLOW_PRIVATE: '1' } : {};
  // The default configuration is what the targets judge: a HUB_COMMIT of the caller's shell is not passed on.
  const { HUB_COMMIT: _ignored, ...env } = process.env;
  // The experiment loads bench/experiments/cork-ws.ts into the hub's process (tsx for the .ts).
  const preload = corked ? ['--import', 'tsx', '--import', pathToFileURL(path.join(ROOT, 'bench/experiments/cork-ws.ts')).href] : [];
  const child = start(
    peer,
    NODE,
    [...nodeFlags, ...preload, path.join(ROOT, 'server/bin/utils-hub.js'), 'start', '--host', '127.0.0.1', '--port', '0', '--db', store.url],
    {
      cwd: ROOT,
      env: { ...env, HUB_LOG_LEVEL: process.env.HUB_LOG_LEVEL ?? 'warn', ...(async ? { HUB_COMMIT: 'async' } : {}), ...webhookEnv },
    },
  );
  const m = await waitLine(child, /utils-hub listening on http:\/\/([^\s]+)/, 60_000);
  return { peer, child, wsBase: `ws://${m[1]}` };
}

/**
 * Runs `n` hubs of one cluster (`HUB_BROKER`, `HUB_CLUSTER` and the database of `cluster`), named
 * `<peer>-a`, `<peer>-b`, ...: the first migrates the database, the others start once it is up.
 */
export async function startClusterHubs(cluster: TestCluster, n: number, peer: Peer): Promise<Server[]> {
  const { HUB_COMMIT: _ignored, ...env } = process.env;
  const one = async (i: number): Promise<Server> => {
    const id = `${peer}-${String.fromCharCode(97 + i)}`;
    const child = start(id, NODE, [path.join(ROOT, 'server/bin/utils-hub.js'), 'start', '--host', '127.0.0.1', '--port', '0', '--db', cluster.db], {
      cwd: ROOT,
      env: { ...env, HUB_LOG_LEVEL: process.env.HUB_LOG_LEVEL ?? 'warn', HUB_BROKER: cluster.broker, HUB_CLUSTER: cluster.name, HUB_ID: id },
    });
    const m = await waitLine(child, /utils-hub listening on http:\/\/([^\s]+)/, 60_000);
    return { peer, child, wsBase: `ws://${m[1]}` };
  };
  const first = await one(0);
  return [first, ...(await Promise.all(Array.from({ length: n - 1 }, (_, i) => one(i + 1))))];
}

/** `path` on each server, comma-separated: connection i of a worker or load process goes to server i mod n. */
const urlsOf = (servers: Server | Server[], p: string) =>
  ([] as Server[])
    .concat(servers)
    .map((s) => `${s.wsBase}${p}`)
    .join(',');

/** Runs the baseline on a free port (`naive`: one write per frame, see wire.ts). */
export async function startBaseline(nodeFlags: string[] = [], naive = false): Promise<Server> {
  const peer: Peer = naive ? 'baseline-naive' : 'baseline';
  const child = start(peer, NODE, [...nodeFlags, ...TSX, path.join(ROOT, 'bench/baseline.ts'), '--port', '0', ...(naive ? ['--naive'] : [])], { cwd: ROOT });
  const m = await waitLine(child, /baseline listening on http:\/\/([^\s]+)/, 30_000);
  return { peer, child, wsBase: `ws://${m[1]}` };
}

/** Starts one echo-worker process with `connections` connections and waits until all are welcomed. */
export async function startEchoWorkers(servers: Server | Server[], connections: number, concurrency: number, timeoutMs = 120_000): Promise<Child> {
  const server = ([] as Server[]).concat(servers)[0];
  const child = start(
    `echo-worker(${server.peer})`,
    NODE,
    [
      ...TSX,
      path.join(ROOT, 'bench/echo-worker.ts'),
      '--url',
      urlsOf(servers, '/worker'),
      '--connections',
      String(connections),
      '--concurrency',
      String(concurrency),
    ],
    { cwd: ROOT },
  );
  await waitLine(child, /^ready \d+/, timeoutMs);
  return child;
}

/** The echo worker's counts, printed when it is stopped. */
export interface EchoStats {
  tasks: number;
  withAttachments: number;
  attachmentBytes: number;
  base64Strings: number;
  errors: number;
  closed: number;
}

/** Stops an echo worker and returns what it saw. */
export async function stopEchoWorkers(child: Child): Promise<EchoStats | null> {
  await stop(child, 'SIGTERM', 3000);
  for (const line of child.lines) {
    if (line.startsWith('{"stats"')) return (JSON.parse(line) as { stats: EchoStats }).stats;
  }
  return null;
}

/** Starts a BullMQ worker process on `queue` and waits until it listens. */
export async function startBullmqWorker(queue: string, concurrency: number): Promise<Child> {
  const child = start(
    'bullmq-worker',
    NODE,
    [...TSX, path.join(ROOT, 'bench/bullmq-peer.ts'), 'worker', '--queue', queue, '--concurrency', String(concurrency)],
    { cwd: ROOT },
  );
  await waitLine(child, /^ready/, 30_000);
  return child;
}

/** Removes a BullMQ queue's keys from Redis. */
export async function cleanBullmq(queue: string): Promise<void> {
  const child = start('bullmq-clean', NODE, [...TSX, path.join(ROOT, 'bench/bullmq-peer.ts'), 'clean', '--queue', queue], { cwd: ROOT });
  const timer = setTimeout(() => void stop(child, 'SIGKILL'), 15_000);
  await child.exited;
  clearTimeout(timer);
}

/** Busy jiffies of the whole machine (all cores) so far, in seconds. */
export function machineBusySeconds(clkTck: number): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return (total - f[3] - (f[4] ?? 0)) / clkTck;
}

/**
 * Waits, up to `maxMs`, until the machine is quiet: busy below `thresholdPct` (of one core) over
 * half a second, while the bench's own processes idle between trials. Other people's builds and
 * tests on a 2-core machine skew every number; this keeps the trials out of the worst of it.
 * Returns the busy % last seen.
 */
export async function waitQuiet(clkTck: number, maxMs: number, thresholdPct = 30): Promise<number> {
  const deadline = performance.now() + maxMs;
  for (;;) {
    const b0 = machineBusySeconds(clkTck);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 500));
    const busy = ((machineBusySeconds(clkTck) - b0) / ((performance.now() - t0) / 1000)) * 100;
    if (busy < thresholdPct || performance.now() >= deadline) return busy;
  }
}

/** What one trial is run against. */
export interface TrialTarget {
  peer: Peer;
  /** The server process (hub, baseline, redis-server), or null when unknown. */
  serverPid: number | null;
  /** Every hub of a cluster (their CPU summed as the server's, and each reported); serverPid is the first. */
  hubPids?: number[];
  /** NATS and MariaDB, whose CPU a cluster scenario reports beside the hubs'. */
  enginePids?: { nats: number | null; db: number | null };
  workerPid: number;
  /** The load generator (or producer), started with `--serve` (see startLoad). */
  load: Child;
}

export interface TrialSpec {
  scenario: string;
  round: number;
  clkTck: number;
}

/** Runs one trial: starts the load, reads CPU over its measuring window, returns its numbers. */
export async function runTrial(target: TrialTarget, spec: TrialSpec, o: { warmup: number; duration: number }): Promise<Trial> {
  const { load } = target;
  const since = load.lines.length;
  const pids = { server: target.serverPid, worker: target.workerPid };
  const hubPids = target.hubPids ?? [];
  const engines = target.enginePids ?? { nats: null, db: null };
  type Snap = {
    t: number;
    server: number;
    /** The server's main thread (its event loop). */
    serverMain: number;
    worker: number;
    machine: number;
    io: { reads: number; writes: number };
    hubs: number[];
    nats: number;
    db: number;
  };
  const snap = (): Snap => {
    const hubs = hubPids.map(cpuSeconds);
    return {
      t: performance.now(),
      io: pids.server ? syscalls(pids.server) : { reads: NaN, writes: NaN },
      server: hubs.length ? hubs.reduce((a, b) => a + b, 0) : pids.server ? cpuSeconds(pids.server) : NaN,
      serverMain: pids.server ? cpuSeconds(pids.server, pids.server) : NaN,
      worker: cpuSeconds(pids.worker),
      machine: machineBusySeconds(spec.clkTck),
      hubs,
      nats: engines.nats ? cpuSeconds(engines.nats) : NaN,
      db: engines.db ? cpuSeconds(engines.db) : NaN,
    };
  };
  let a: Snap | null = null;
  let b: Snap | null = null;
  let rss = NaN;
  const off = load.onLine((line) => {
    if (line === 'window start') a = snap();
    else if (line === 'window end') {
      b = snap();
      rss = pids.server ? rssBytes(pids.server) : NaN;
    }
  });
  load.proc.stdin!.write(`run ${o.warmup} ${o.duration}\n`);
  try {
    const m = await waitLine(load, /^\{"tasks".*\}$/, o.warmup + o.duration + 60_000, since);
    const r = JSON.parse(m[0]) as LoadReport;
    const s0 = a as Snap | null;
    const s1 = b as Snap | null;
    const secs = s0 && s1 ? (s1.t - s0.t) / 1000 : NaN;
    const pct = (k: 'server' | 'serverMain' | 'worker' | 'machine' | 'nats' | 'db') => (s0 && s1 ? ((s1[k] - s0[k]) / secs) * 100 : NaN);
    return {
      scenario: spec.scenario,
      peer: target.peer,
      round: spec.round,
      tasks: r.tasks,
      tasksPerSec: r.tasksPerSec,
      p50: r.p50,
      p99: r.p99,
      bytesPerSec: r.bytesPerSec,
      errors: r.errors,
      serverRss: rss,
      serverCpu: pct('server'),
      serverMainCpu: pct('serverMain'),
      workerCpu: pct('worker'),
      loadCpu: r.cpuPct,
      machineCpu: pct('machine'),
      serverWritesPerTask: s0 && s1 ? (s1.io.writes - s0.io.writes) / r.tasks : NaN,
      serverReadsPerTask: s0 && s1 ? (s1.io.reads - s0.io.reads) / r.tasks : NaN,
      otherCpu:
        pct('machine') -
        (pids.server ? pct('server') : 0) -
        pct('worker') -
        r.cpuPct -
        // NATS and MariaDB work for the cluster under test: not "other" processes.
        (target.enginePids ? (Number.isFinite(pct('nats')) ? pct('nats') : 0) + (Number.isFinite(pct('db')) ? pct('db') : 0) : 0),
      resultsWithAttachments: r.resultsWithAttachments,
      base64Results: r.base64Results,
      endedSinceStart: r.endedSinceStart,
      ...(hubPids.length > 1 ? { hubCpus: hubPids.map((_, i) => (s0 && s1 ? ((s1.hubs[i] - s0.hubs[i]) / secs) * 100 : NaN)) } : {}),
      ...(target.enginePids ? { natsCpu: pct('nats'), dbCpu: pct('db') } : {}),
    };
  } finally {
    off();
  }
}

/** Starts a load process in `--serve` mode and waits until it is connected and ready. */
export async function startLoad(child: Child): Promise<Child> {
  await waitLine(child, /^serving$/, 60_000);
  return child;
}

/** Ends a load process started by startLoad. */
export async function stopLoad(child: Child): Promise<void> {
  child.proc.stdin?.end('quit\n');
  await Promise.race([child.exited, new Promise((r) => setTimeout(r, 5000))]);
  await stop(child, 'SIGKILL');
}

/** The webhook receiver of the `hub-delivery` peer; resolves with it and its URL. */
export async function startReceiver(): Promise<{ child: Child; url: string }> {
  const child = start('webhook-receiver', NODE, [...TSX, path.join(ROOT, 'bench/webhook-receiver.ts')], { cwd: ROOT });
  const m = await waitLine(child, /receiver listening on (http:\/\/\S+)/, 30_000);
  return { child, url: `${m[1]}/hook` };
}

/** The load generator against a hub or the baseline, in `--serve` mode (`webhook`: keys and webhooks on every task). */
export function loadProcess(servers: Server | Server[], o: { inflight: number; connections: number; media: number; webhook?: string }): Child {
  const server = ([] as Server[]).concat(servers)[0];
  return start(
    `load(${server.peer})`,
    NODE,
    [
      ...TSX,
      path.join(ROOT, 'bench/load.ts'),
      '--serve',
      '--url',
      urlsOf(servers, '/client'),
      '--inflight',
      String(o.inflight),
      '--connections',
      String(o.connections),
      '--media',
      String(o.media),
      ...(o.webhook ? ['--keys', '--webhook', o.webhook] : []),
    ],
    { cwd: ROOT, stdin: true },
  );
}

/** The BullMQ producer, in `--serve` mode. */
export function producerProcess(queue: string, o: { inflight: number }): Child {
  return start(
    'bullmq-producer',
    NODE,
    [...TSX, path.join(ROOT, 'bench/bullmq-peer.ts'), 'producer', '--serve', '--queue', queue, '--inflight', String(o.inflight)],
    { cwd: ROOT, stdin: true },
  );
}

/** Idle client processes: `total` connections split over `procs` processes; resolves once all are up. */
export async function startIdleClients(server: Server, total: number, procs: number, timeoutMs: number): Promise<Child[]> {
  const children: Child[] = [];
  const per = Math.ceil(total / procs);
  for (let i = 0, left = total; left > 0; i++, left -= per) {
    const n = Math.min(per, left);
    children.push(
      start(`idle-clients(${server.peer})#${i}`, NODE, [...TSX, path.join(ROOT, 'bench/load.ts'), '--url', `${server.wsBase}/client`, '--idle', String(n)], {
        cwd: ROOT,
      }),
    );
  }
  await Promise.all(children.map((c) => waitLine(c, /^ready \d+/, timeoutMs)));
  return children;
}
