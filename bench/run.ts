/**
 * `npm run bench`: the hub against its baseline and BullMQ, side by side in one run (issue 6).
 *
 * Every system runs as its own process on loopback (the hub as its real command, the baseline,
 * the echo workers, the load generators, BullMQ's worker and producer). Each scenario starts its
 * own hub (fresh task store), baseline and workers, then runs its rounds A B A B: one trial of
 * each peer per round. Prints a markdown table and writes `bench/results/<timestamp>.json`.
 *
 *   npm run bench                      # full: 3 rounds of 3 s per peer, 4 to 8 minutes
 *   npm run bench -- --quick           # about 2 minutes on a quiet machine: 2 short rounds, one idle
 *                                      # round (hub only, 2,750 connections), no naive baseline, no BullMQ
 *   npm run bench -- --only tiny-64,idle --rounds 5 --duration 3000
 *   npm run bench -- --profile         # hub, then baseline, alone under tiny-64 with --cpu-prof,
 *                                      # summarised (--profile-scenario media-8 for another one)
 *   options: --build (tsc -b first; done anyway when server/dist is missing) --no-bullmq (--bullmq with --quick) --no-naive --no-mysql --no-idle --warmup MS --duration MS --idle-rounds N
 *            --no-async (tiny-1 and tiny-64 run the hub twice: default HUB_COMMIT=stored, and async)
 *            --experiment-cork (adds hub-cork: the hub writing once per peer per tick)
 *            --quiet-wait MS (most to wait before each round for a quiet machine; 20000, quick 1000)
 *            --profile-seconds S
 *            --no-cluster (leaves out cluster-1, cross-2 and spread-3, which need NATS at
 *            127.0.0.1:4222 and MariaDB, and are skipped saying so when NATS does not answer;
 *            not in --quick, where --cluster adds them)
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { clusterDown, clusterUp, natsProblem } from './cluster.js';
import { CLK_TCK, cleanupOnExit, interrupted, openFiles, openFilesLimit, pidOf, rssBytes, stop, type Child } from './procs.js';
import {
  cleanBullmq,
  loadProcess,
  mysqlStore,
  producerProcess,
  ROOT,
  runTrial,
  sqliteStore,
  startBaseline,
  startBullmqWorker,
  startClusterHubs,
  startEchoWorkers,
  startHub,
  startIdleClients,
  startLoad,
  startReceiver,
  stopEchoWorkers,
  stopLoad,
  waitQuiet,
  type EchoStats,
  type Server,
  type Store,
  type TrialTarget,
} from './peers.js';
import { judge, markdown, summarise, type IdleTrial, type MediaPath, type Peer, type ScenarioSummary, type Trial } from './report.js';
import { formatSummary, summariseProfile, type ProfileSummary } from './profile-summary.js';
import { numFlag, parseFlags } from './wire.js';

interface Scenario {
  id: string;
  title: string;
  db: 'sqlite' | 'mysql';
  workerConns: number;
  concurrency: number;
  inflight: number;
  clientConns: number;
  /** Bytes of the attachment sent with each task (0: tiny tasks). */
  media: number;
  /** Shortest measuring window, ms: slow scenarios need longer ones to count enough tasks. */
  minDuration?: number;
  peers: Peer[];
  /** The name `--only` also knows it by (cross-2 is two scenarios, 1 and 64 in flight). */
  group?: string;
  /** Needs NATS: a cluster scenario (docs/cluster.md), its `hub` on MariaDB beside the cluster. */
  cluster?: boolean;
}

const MiB = 1024 * 1024;
const SCENARIOS: Scenario[] = [
  {
    id: 'tiny-1',
    title: 'tiny tasks, 1 in flight',
    db: 'sqlite',
    workerConns: 1,
    concurrency: 64,
    inflight: 1,
    clientConns: 1,
    media: 0,
    peers: ['hub', 'hub-async', 'baseline', 'baseline-naive', 'bullmq'],
  },
  {
    id: 'tiny-64',
    title: 'tiny tasks, 64 in flight',
    db: 'sqlite',
    workerConns: 1,
    concurrency: 64,
    inflight: 64,
    clientConns: 1,
    media: 0,
    peers: ['hub', 'hub-async', 'hub-delivery', 'baseline', 'baseline-naive', 'bullmq'],
  },
  {
    id: 'media-8',
    title: '1 MiB attachment, 8 in flight',
    db: 'sqlite',
    workerConns: 1,
    concurrency: 8,
    inflight: 8,
    clientConns: 1,
    media: MiB,
    minDuration: 2500,
    peers: ['hub', 'baseline'],
  },
  {
    id: 'fanout-16x4',
    title: '16 worker connections x concurrency 4, 64 in flight',
    db: 'sqlite',
    workerConns: 16,
    concurrency: 4,
    inflight: 64,
    clientConns: 1,
    media: 0,
    peers: ['hub', 'baseline'],
  },
  {
    id: 'mysql-64',
    title: 'tiny tasks, 64 in flight, task store on MariaDB',
    db: 'mysql',
    workerConns: 1,
    concurrency: 64,
    inflight: 64,
    clientConns: 1,
    media: 0,
    peers: ['hub', 'baseline'],
  },
  {
    id: 'cluster-1',
    title: 'one hub with HUB_BROKER vs without, tiny tasks, 64 in flight, MariaDB',
    db: 'mysql',
    workerConns: 1,
    concurrency: 64,
    inflight: 64,
    clientConns: 1,
    media: 0,
    peers: ['hub', 'hub-broker'],
    cluster: true,
  },
  {
    id: 'cross-2-1',
    group: 'cross-2',
    title: 'two hubs, every client on A and every worker on B, vs one hub, tiny tasks, 1 in flight, MariaDB',
    db: 'mysql',
    workerConns: 1,
    concurrency: 64,
    inflight: 1,
    clientConns: 1,
    media: 0,
    peers: ['hub', 'hub-cross'],
    cluster: true,
  },
  {
    id: 'cross-2-64',
    group: 'cross-2',
    title: 'two hubs, every client on A and every worker on B, vs one hub, tiny tasks, 64 in flight, MariaDB',
    db: 'mysql',
    workerConns: 1,
    concurrency: 64,
    inflight: 64,
    clientConns: 1,
    media: 0,
    peers: ['hub', 'hub-cross'],
    cluster: true,
  },
  {
    id: 'spread-3',
    title: 'three hubs, clients and workers spread evenly, vs one hub, tiny tasks, 64 in flight, MariaDB',
    db: 'mysql',
    workerConns: 3,
    concurrency: 22,
    inflight: 64,
    clientConns: 3,
    media: 0,
    peers: ['hub', 'hub-spread'],
    cluster: true,
  },
];
const flags = parseFlags(process.argv.slice(2));
const quick = flags.has('quick');
// --quick holds a quarter of the idle connections (RSS per connection comes out about the same;
// 11,000 handshakes take 10 s on a quiet machine and minutes on a busy one).
const IDLE = quick ? { clients: 2_500, workers: 250, clientProcs: 1 } : { clients: 10_000, workers: 1_000, clientProcs: 4 };
const opts = {
  quick,
  rounds: numFlag(flags, 'rounds', quick ? 2 : 3),
  warmup: numFlag(flags, 'warmup', quick ? 400 : 1000),
  duration: numFlag(flags, 'duration', quick ? 1000 : 3000),
  idleRounds: numFlag(flags, 'idle-rounds', quick ? 1 : 2),
  only: flags.has('only') ? new Set(flags.get('only')!.split(',')) : null,
  // BullMQ is a reported figure, not a target: full runs only (or --bullmq).
  bullmq: !flags.has('no-bullmq') && (!quick || flags.has('bullmq')),
  // The naive baseline and the baseline's idle memory are references, not targets: full runs only.
  naive: !flags.has('no-naive') && !quick,
  idleBaseline: !quick,
  /** Adds the peer `hub-cork`: the hub with bench/experiments/cork-ws.ts loaded (not a target). */
  experimentCork: flags.has('experiment-cork'),
  mysql: !flags.has('no-mysql'),
  /** The cluster scenarios: several hub processes, NATS and MariaDB each; not cheap, so not in --quick. */
  cluster: !flags.has('no-cluster') && !flags.has('no-mysql') && (!quick || flags.has('cluster')),
  /** The hub with HUB_COMMIT=async beside the default (stored) in tiny-1 and tiny-64. */
  async: !flags.has('no-async'),
  idle: !flags.has('no-idle'),
  profile: flags.has('profile'),
  profileSeconds: numFlag(flags, 'profile-seconds', 15),
  /** Most ms to wait before each round for other processes to quiet down (0: never wait). */
  quietWait: numFlag(flags, 'quiet-wait', quick ? 1000 : 20_000),
  /** The scenario the profile runs: tiny-64 (default) or any other of SCENARIOS on SQLite. */
  profileScenario: flags.get('profile-scenario') ?? 'tiny-64',
};

const log = (s: string) => process.stderr.write(`${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const wanted = (id: string, group?: string) => !opts.only || opts.only.has(id) || (group !== undefined && opts.only.has(group));

/** Stacks not yet unwound, for a Ctrl-C in the middle of a scenario. */
const liveStacks = new Set<Stack>();

/** Everything the scenario started, stopped in reverse order whatever happens. */
class Stack {
  readonly #steps: Array<() => Promise<unknown>> = [];
  constructor() {
    liveStacks.add(this);
  }
  push(step: () => Promise<unknown>): void {
    this.#steps.push(step);
  }
  /** Runs the steps once; a second call (Ctrl-C while one runs) waits for the same run. */
  unwind(): Promise<void> {
    liveStacks.delete(this);
    this.#unwinding ??= this.#run();
    return this.#unwinding;
  }
  #unwinding: Promise<void> | null = null;
  async #run(): Promise<void> {
    for (const step of this.#steps.reverse()) {
      try {
        await step();
      } catch (err) {
        log(`cleanup: ${(err as Error).message}`);
      }
    }
  }
}

const media: MediaPath = { workerTasks: 0, workerAttachments: 0, workerBase64: 0, results: 0, resultAttachments: 0, resultBase64: 0 };

async function runScenario(sc: Scenario, trials: Trial[]): Promise<void> {
  const stack = new Stack();
  try {
    const targets = new Map<Peer, TrialTarget>();
    const o = { inflight: sc.inflight, connections: sc.clientConns, media: sc.media };
    let hubWorker: Child | null = null;
    // The peers start side by side (process start-up is most of a scenario's set-up time); the
    // load of each waits for its workers, so that every trial finds its system ready.
    const setUp = async (peer: Peer): Promise<void> => {
      if (peer === 'bullmq') {
        const queue = `uh-bench-${randomBytes(4).toString('hex')}`;
        stack.push(() => cleanBullmq(queue));
        const [worker, load] = await Promise.all([
          startBullmqWorker(queue, sc.inflight).then((w) => {
            stack.push(() => stop(w));
            return w;
          }),
          startLoad(producerProcess(queue, { inflight: sc.inflight })).then((l) => {
            stack.push(() => stopLoad(l));
            return l;
          }),
        ]);
        targets.set(peer, { peer, serverPid: pidOf('redis-server'), workerPid: worker.pid, load });
        return;
      }
      // NATS and MariaDB work for both peers of a cluster scenario: their CPU is reported.
      const enginePids = sc.cluster ? { nats: pidOf('nats-server'), db: pidOf('mariadbd') ?? pidOf('mysqld') } : undefined;
      if (peer === 'hub-broker' || peer === 'hub-cross' || peer === 'hub-spread') {
        const cluster = await clusterUp(undefined, undefined, `uh_bench_${randomBytes(4).toString('hex')}`);
        stack.push(() => clusterDown(cluster));
        const hubs = await startClusterHubs(cluster, peer === 'hub-broker' ? 1 : peer === 'hub-cross' ? 2 : 3, peer);
        for (const h of hubs) stack.push(() => stop(h.child, 'SIGTERM', 10_000));
        // cross: every worker on the last hub, every client on the first; spread: each over all.
        const worker = await startEchoWorkers(peer === 'hub-spread' ? hubs : hubs.at(-1)!, sc.workerConns, sc.concurrency);
        stack.push(() => stop(worker));
        const load = await startLoad(loadProcess(peer === 'hub-spread' ? hubs : hubs[0], o));
        stack.push(() => stopLoad(load));
        const hubPids = hubs.map((h) => h.child.pid);
        targets.set(peer, { peer, serverPid: hubPids[0], hubPids, enginePids, workerPid: worker.pid, load });
        return;
      }
      let server: Server;
      let webhook: string | undefined;
      if (peer === 'hub' || peer === 'hub-cork' || peer === 'hub-async' || peer === 'hub-delivery') {
        const store: Store = sc.db === 'mysql' ? await mysqlStore() : sqliteStore();
        stack.push(() => store.drop());
        if (peer === 'hub-delivery') {
          const receiver = await startReceiver();
          stack.push(() => stop(receiver.child, 'SIGTERM', 5_000));
          webhook = receiver.url;
        }
        server = await startHub(store, [], peer === 'hub-cork', peer === 'hub-async', peer === 'hub-delivery');
      } else {
        server = await startBaseline([], peer === 'baseline-naive');
      }
      stack.push(() => stop(server.child, 'SIGTERM', 10_000));
      const worker = await startEchoWorkers(server, sc.workerConns, sc.concurrency);
      if (peer === 'hub') hubWorker = worker;
      stack.push(() => stop(worker));
      const load = await startLoad(loadProcess(server, { ...o, webhook }));
      stack.push(() => stopLoad(load));
      targets.set(peer, { peer, serverPid: server.child.pid, enginePids, workerPid: worker.pid, load });
    };
    const peers = sc.peers.filter((p) => (p !== 'bullmq' || opts.bullmq) && (p !== 'baseline-naive' || opts.naive) && (p !== 'hub-async' || opts.async));
    if (opts.experimentCork) peers.splice(1, 0, 'hub-cork');
    const failed = (await Promise.allSettled(peers.map(setUp))).find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    // Trials run in the scenario's order of peers, whatever order they started in.
    const ordered = peers.map((p) => [p, targets.get(p)!] as const);
    for (let round = 1; round <= opts.rounds; round++) {
      if (opts.quietWait > 0) {
        const t0 = performance.now();
        const busy = await waitQuiet(CLK_TCK, opts.quietWait);
        const waited = performance.now() - t0;
        if (waited > 1000) log(`  waited ${(waited / 1000).toFixed(0)} s for other processes (machine ${busy.toFixed(0)}% busy)`);
      }
      for (const [peer, target] of ordered) {
        const window = { warmup: opts.warmup, duration: Math.max(opts.duration, sc.minDuration ?? 0) };
        const t = await runTrial(target, { scenario: sc.id, round, clkTck: CLK_TCK }, window);
        trials.push(t);
        if (sc.media && peer === 'hub') {
          media.results += t.tasks;
          media.resultAttachments += t.resultsWithAttachments;
          media.resultBase64 += t.base64Results;
        }
        log(
          `  ${sc.id} round ${round} ${peer.padEnd(8)} ${t.tasksPerSec.toFixed(0).padStart(6)} tasks/s  p50 ${t.p50?.toFixed(2) ?? '-'} ms  p99 ${t.p99?.toFixed(2) ?? '-'} ms  ` +
            `${(t.bytesPerSec / MiB).toFixed(1)} MB/s  cpu server ${t.serverCpu.toFixed(0)}% worker ${t.workerCpu.toFixed(0)}% load ${t.loadCpu.toFixed(0)}% machine ${t.machineCpu.toFixed(0)}%` +
            (t.errors ? `  errors ${t.errors}` : '') +
            (t.otherCpu > 25 ? `  (other processes took ${t.otherCpu.toFixed(0)}% CPU: numbers skewed)` : ''),
        );
      }
    }
    if (hubWorker) {
      const stats: EchoStats | null = await stopEchoWorkers(hubWorker);
      if (stats && sc.media) {
        media.workerTasks += stats.tasks;
        media.workerAttachments += stats.withAttachments;
        media.workerBase64 += stats.base64Strings;
      }
    }
  } finally {
    await stack.unwind();
  }
}

async function idleTrial(peer: Peer, round: number): Promise<IdleTrial> {
  const stack = new Stack();
  try {
    let server: Server;
    if (peer === 'hub') {
      const store = sqliteStore();
      stack.push(() => store.drop());
      server = await startHub(store);
    } else {
      server = await startBaseline();
    }
    // Stopped last in unwind order is first pushed: the server goes first, so the TIME_WAIT
    // sockets stay on its side, not on the clients' ephemeral ports.
    const others: Child[] = [];
    stack.push(async () => {
      await Promise.all(others.map((c) => stop(c, 'SIGKILL')));
    });
    stack.push(() => stop(server.child, 'SIGTERM', 15_000));
    await sleep(1000);
    const pid = server.child.pid;
    const rssBefore = rssBytes(pid);
    const t0 = performance.now();
    others.push(await startEchoWorkers(server, IDLE.workers, 1, 180_000));
    others.push(...(await startIdleClients(server, IDLE.clients, IDLE.clientProcs, 240_000)));
    const seconds = (performance.now() - t0) / 1000;
    await sleep(2000);
    const rssAfter = rssBytes(pid);
    const conns = IDLE.clients + IDLE.workers;
    const t: IdleTrial = {
      peer,
      round,
      clients: IDLE.clients,
      workers: IDLE.workers,
      openFiles: openFiles(pid),
      rssBefore,
      rssAfter,
      perConnection: (rssAfter - rssBefore) / conns,
      seconds,
    };
    log(
      `  idle round ${round} ${peer.padEnd(8)} ${conns} connections in ${seconds.toFixed(1)} s, RSS ${(rssBefore / MiB).toFixed(1)} -> ${(rssAfter / MiB).toFixed(1)} MB, ${(t.perConnection / 1024).toFixed(1)} KB per connection`,
    );
    return t;
  } finally {
    await stack.unwind();
  }
}

/**
 * Runs one server (hub or baseline) alone under a scenario's load with `--cpu-prof`,
 * stops it so that it writes the profile, and summarises the profile per task.
 */
async function profileServer(peer: 'hub' | 'baseline', sc: Scenario, dir: string): Promise<{ summary: ProfileSummary; trial: Trial }> {
  const stack = new Stack();
  const profDir = path.join(dir, 'profiles', `${new Date().toISOString().replace(/[:.]/g, '-')}-${peer}`);
  mkdirSync(profDir, { recursive: true });
  const flags = ['--cpu-prof', '--cpu-prof-dir', profDir];
  let trial: Trial;
  try {
    let server: Server;
    if (peer === 'hub') {
      const store = sqliteStore();
      stack.push(() => store.drop());
      server = await startHub(store, flags);
    } else {
      server = await startBaseline(flags);
    }
    stack.push(() => stop(server.child, 'SIGTERM', 15_000));
    const worker = await startEchoWorkers(server, sc.workerConns, sc.concurrency);
    stack.push(() => stop(worker));
    const load = await startLoad(loadProcess(server, { inflight: sc.inflight, connections: sc.clientConns, media: sc.media }));
    stack.push(() => stopLoad(load));
    trial = await runTrial(
      { peer, serverPid: server.child.pid, workerPid: worker.pid, load },
      { scenario: `profile-${sc.id}`, round: 1, clkTck: CLK_TCK },
      { warmup: 1000, duration: opts.profileSeconds * 1000 },
    );
    log(`  profiled ${peer}: ${trial.tasksPerSec.toFixed(0)} tasks/s (profiling slows it), server CPU ${trial.serverCpu.toFixed(0)}%`);
  } finally {
    await stack.unwind(); // SIGTERM lets the server exit normally, which writes the profile
  }
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`${peer} wrote no .cpuprofile in ${profDir} (did it exit normally?)`);
  return { summary: summariseProfile(path.join(profDir, file), 25, trial.endedSinceStart), trial };
}

/** Busy µs per task by area, hub beside baseline: where the hub's extra time goes. */
function compareAreas(hub: ProfileSummary, base: ProfileSummary): string {
  const areas = new Map<string, { hub: number; base: number }>();
  for (const r of hub.areas) areas.set(r.name, { hub: r.usPerTask ?? NaN, base: 0 });
  for (const r of base.areas) areas.set(r.name, { hub: areas.get(r.name)?.hub ?? 0, base: r.usPerTask ?? NaN });
  const perTask = (s: ProfileSummary) => (s.busyMs * 1000) / (s.tasks ?? NaN);
  const lines = ['| area | hub µs/task | baseline µs/task | hub extra µs/task |', '| --- | ---: | ---: | ---: |'];
  lines.push(`| **all (busy)** | ${perTask(hub).toFixed(1)} | ${perTask(base).toFixed(1)} | ${(perTask(hub) - perTask(base)).toFixed(1)} |`);
  for (const [name, v] of [...areas].sort((a, b) => b[1].hub - b[1].base - (a[1].hub - a[1].base)).slice(0, 15)) {
    lines.push(`| \`${name}\` | ${v.hub.toFixed(1)} | ${v.base.toFixed(1)} | ${(v.hub - v.base).toFixed(1)} |`);
  }
  return lines.join('\n');
}

function machine(): Record<string, unknown> {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return null;
    }
  };
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memoryGiB: +(os.totalmem() / 1024 ** 3).toFixed(1),
    node: process.version,
    kernel: os.release(),
    loadavg: os.loadavg(),
    openFilesLimit: openFilesLimit(),
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirty: (git(['status', '--porcelain', '--', 'server', 'protocol']) ?? '').length > 0,
  };
}

async function main(): Promise<void> {
  // On Ctrl-C: stop the processes, drop the databases and temporary files, remove the queues.
  cleanupOnExit(async () => {
    await Promise.all([...liveStacks].map((st) => st.unwind()));
  });
  const resultsDir = path.join(ROOT, 'bench/results');
  mkdirSync(resultsDir, { recursive: true });
  const started = new Date();
  const info = machine();
  log(`bench: ${info.cpus} x ${info.cpuModel}, Node ${info.node}, load average ${(info.loadavg as number[]).map((x) => x.toFixed(2)).join(' ')}`);
  if ((info.loadavg as number[])[0] > 0.5) log('bench: warning: the machine is already busy; other processes skew every number');
  const limit = openFilesLimit();
  if (opts.idle && limit.hard < IDLE.clients + IDLE.workers + 1000) {
    log(`bench: warning: the hard limit of open files is ${limit.hard}; the idle scenario needs about ${IDLE.clients + IDLE.workers + 1000} in the server`);
  }

  // The hub runs as its real command, from server/dist: build it when it is missing (a fresh
  // clone whose install skipped `prepare`) or when asked to (--build).
  if (flags.has('build') || !existsSync(path.join(ROOT, 'server/dist/cli.js'))) {
    log('bench: building (tsc -b)');
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-b'], { cwd: ROOT, stdio: 'inherit', timeout: 300_000 });
  }

  const out: Record<string, unknown> = { started: started.toISOString(), machine: info, options: opts };
  const file = path.join(resultsDir, `${started.toISOString().replace(/[:.]/g, '-')}${opts.profile ? '-profile' : ''}.json`);

  if (opts.profile) {
    const sc = SCENARIOS.find((x) => x.id === opts.profileScenario);
    if (sc?.db !== 'sqlite')
      throw new Error(
        `--profile-scenario: one of ${SCENARIOS.filter((x) => x.db === 'sqlite')
          .map((x) => x.id)
          .join(', ')}`,
      );
    log(`bench: profiling the hub, then the baseline, under ${sc.title}, for ${opts.profileSeconds} s each`);
    const hub = await profileServer('hub', sc, resultsDir);
    const base = await profileServer('baseline', sc, resultsDir);
    const comparison = compareAreas(hub.summary, base.summary);
    Object.assign(out, { profile: { hub: hub.summary, baseline: base.summary, trials: [hub.trial, base.trial], comparison } });
    writeFileSync(file, JSON.stringify(out, null, 2));
    process.stdout.write(
      `## hub\n\n${formatSummary(hub.summary)}\n\n## baseline\n\n${formatSummary(base.summary)}\n\n## hub vs baseline, busy time per task by area\n\n${comparison}\n\n` +
        `profiles: ${path.relative(ROOT, hub.summary.file)}, ${path.relative(ROOT, base.summary.file)}\nresults: ${path.relative(ROOT, file)}\n`,
    );
    return;
  }

  const trials: Trial[] = [];
  const idle: IdleTrial[] = [];
  const summaries: ScenarioSummary[] = [];
  const clusterWanted = opts.cluster && SCENARIOS.some((sc) => sc.cluster && wanted(sc.id, sc.group));
  const natsAway = clusterWanted ? await natsProblem() : null;
  if (natsAway) log(`bench: cluster-1, cross-2 and spread-3 skipped: ${natsAway}; start it with: nats-server -a 127.0.0.1 -p 4222 -js`);
  for (const sc of SCENARIOS) {
    if (!wanted(sc.id, sc.group) || (sc.db === 'mysql' && !opts.mysql)) continue;
    if (sc.cluster && (!opts.cluster || natsAway)) continue;
    log(`bench: ${sc.id}: ${sc.title}`);
    await runScenario(sc, trials);
    summaries.push(summarise(sc.id, sc.title, trials));
  }
  if (opts.idle && wanted('idle')) {
    log(`bench: idle: ${IDLE.clients} client and ${IDLE.workers} worker connections`);
    for (let round = 1; round <= opts.idleRounds; round++) {
      for (const peer of (opts.idleBaseline ? ['hub', 'baseline'] : ['hub']) as Peer[]) idle.push(await idleTrial(peer, round));
    }
  }
  const targets = judge(summaries, idle, wanted('media-8') ? media : null);
  const table = markdown(summaries, idle, targets);
  Object.assign(out, { finished: new Date().toISOString(), trials, idle, summaries, media, targets, table });
  writeFileSync(file, JSON.stringify(out, null, 2));
  // The targets table comes last, so that the end of the output is the verdict.
  process.stdout.write(`\nresults: ${path.relative(ROOT, file)} (${((Date.now() - started.getTime()) / 1000).toFixed(0)} s)\n\n${table}\n`);
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    if (interrupted()) return; // the signal handler cleans up and exits
    log(`bench: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
