/**
 * The soak: the hub as its real command on SQLite, dozens of example `sleep` workers as separate
 * processes, hundreds of `/client` connections over a few load processes (soak-clients.ts), and
 * workers killed with SIGKILL and restarted at random, for `--minutes`. At the end it checks that
 * every accepted task ended exactly once and none was lost (also read back with GET /tasks/{id}),
 * that failures are only those the kills explain (`worker_lost`), and that the hub's RSS stayed
 * flat; prints a short report and exits 1 when any of that fails. Loopback only; not part of CI.
 *
 *   npm run soak -- [--minutes 1] [--clients 300] [--workers 24] [--seed 1] [--loads 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanupOnExit, rssBytes, start, stop, waitLine, type Child } from './procs.js';
import type { SoakClientsSummary } from './soak-clients.js';
import { numFlag, parseFlags } from './wire.js';

const flags = parseFlags(process.argv.slice(2));
const minutes = numFlag(flags, 'minutes', 1);
const clientCount = Math.round(numFlag(flags, 'clients', 300));
const workerCount = Math.round(numFlag(flags, 'workers', 24));
const seed = Math.round(numFlag(flags, 'seed', Date.now() % 1_000_000));
const loadCount = Math.max(1, Math.min(clientCount, Math.round(numFlag(flags, 'loads', 3))));
if (!(minutes > 0) || clientCount < 1 || workerCount < 2) {
  process.stderr.write('soak: --minutes must be > 0, --clients >= 1, --workers >= 2\n');
  process.exit(2);
}
/** Slots per worker process: the example runner's `--concurrency`. */
const CONCURRENCY = 4;
const runMs = minutes * 60_000;
/** RSS is read as "start" once the ended-task cache and the pools had time to fill. */
const warmupMs = Math.min(30_000, runMs / 4);
/** Set-up (spawning the workers) and drain may take this long before the run is called stuck. */
const SETUP_MS = 180_000;
const DRAIN_MS = 90_000;

const random = (() => {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
})();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const mb = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MB`;
const log = (text: string) => process.stderr.write(`soak: ${text}\n`);

const dir = mkdtempSync(join(tmpdir(), 'utils-hub-soak-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
/** True once the harness stops its children itself: their exits are expected from then on. */
let stopping = false;
cleanupOnExit(async () => {
  stopping = true;
});
// However the run ends, it ends: a watchdog past every phase's own bound.
setTimeout(
  () => {
    log('watchdog: the run outlived its bound, giving up');
    process.exit(1);
  },
  SETUP_MS + runMs + DRAIN_MS + 60_000,
).unref();

const failures: string[] = [];
const check = (ok: boolean, problem: string) => void (ok || failures.push(problem));

// ---- the hub ----
const hub = start('hub', 'node', ['server/bin/utils-hub.js', 'start', '--host', '127.0.0.1', '--port', '0', '--db', `sqlite:${join(dir, 'hub.sqlite')}`], {
  env: { ...process.env, HUB_LOG_LEVEL: 'warn' },
});
const [, httpUrl] = await waitLine(hub, /utils-hub listening on (http:\/\/\S+)/, 30_000);
const wsUrl = httpUrl.replace(/^http/, 'ws');
let hubDied = false;
void hub.exited.then((code) => {
  if (stopping) return;
  hubDied = true;
  log(`the hub exited (${code}): ${hub.stderrTail.slice(-800)}`);
});
log(`hub ${httpUrl} (pid ${hub.pid}), seed ${seed}`);

// ---- the workers ----
interface WorkerSlot {
  instance: string;
  child: Child | null;
  /** True while it is killed and not yet connected again. */
  down: boolean;
}
const workers: WorkerSlot[] = Array.from({ length: workerCount }, (_, i) => ({ instance: `w${i + 1}`, child: null, down: true }));

async function startWorker(w: WorkerSlot): Promise<void> {
  const child = start(w.instance, 'node', [
    '--import',
    'tsx',
    'examples/run.ts',
    'sleep',
    '--hub',
    `${wsUrl}/worker`,
    '--concurrency',
    String(CONCURRENCY),
    '--instance',
    w.instance,
  ]);
  w.child = child;
  await waitLine(child, /connected/, 60_000);
  w.down = false;
}

const setupStarted = performance.now();
// A few at a time: each start costs over a second of CPU, and the machine may have two cores.
for (let i = 0; i < workers.length; i += 4) await Promise.all(workers.slice(i, i + 4).map(startWorker));
log(`${workerCount} workers connected in ${((performance.now() - setupStarted) / 1000).toFixed(1)} s`);

const list = (await (await fetch(`${httpUrl}/services_list`)).json()) as Array<{ service_id: number; service_name: string }>;
const serviceId = list.find((s) => s.service_name === 'sleep')?.service_id;
if (serviceId === undefined) throw new Error(`no sleep service listed: ${JSON.stringify(list)}`);

// ---- the clients ----
const loads: Child[] = [];
for (let i = 0; i < loadCount; i++) {
  const n = Math.floor(clientCount / loadCount) + (i < clientCount % loadCount ? 1 : 0);
  loads.push(
    start(
      `load${i + 1}`,
      'node',
      [
        '--import',
        'tsx',
        'bench/soak-clients.ts',
        '--url',
        `${wsUrl}/client`,
        '--service-id',
        String(serviceId),
        '--clients',
        String(n),
        '--seed',
        String(seed * 31 + i),
        '--name',
        `load${i + 1}`,
        '--drain-ms',
        String(DRAIN_MS - 15_000),
      ],
      { stdin: true },
    ),
  );
}
await Promise.all(loads.map((l) => waitLine(l, /^ready \d+/, 60_000)));
log(`${clientCount} clients connected over ${loadCount} processes; running ${minutes} min`);

// ---- the run: load, kills, RSS samples ----
const rss: Array<{ t: number; bytes: number }> = [];
const runStarted = performance.now();
const elapsed = () => performance.now() - runStarted;
for (const l of loads) l.proc.stdin!.write('go\n');
const sampler = setInterval(() => rss.push({ t: elapsed(), bytes: rssBytes(hub.pid) }), 1000);

let kills = 0;
let restarts = 0;
const restarting = new Set<Promise<void>>();
async function killer(): Promise<void> {
  while (elapsed() < runMs && !hubDied) {
    // One SIGKILL every 1 to 5 s, restarted 0.5 to 3 s later with the same instance name.
    await sleep(1000 + random() * 4000);
    if (elapsed() >= runMs) break;
    const up = workers.filter((w) => !w.down);
    // Keep at least half of them up, so the survivors can take the load.
    if (up.length <= workerCount / 2) continue;
    const w = up[Math.floor(random() * up.length)];
    w.down = true;
    kills++;
    await stop(w.child!, 'SIGKILL');
    const back = sleep(500 + random() * 2500)
      .then(() => startWorker(w))
      .then(
        () => void restarts++,
        (err: Error) => void failures.push(`${w.instance} did not come back: ${err.message}`),
      );
    restarting.add(back);
    void back.finally(() => restarting.delete(back));
  }
}
await killer();
await Promise.all(restarting);
const runEndedRss = rssBytes(hub.pid);
clearInterval(sampler);
rss.push({ t: elapsed(), bytes: runEndedRss });

// ---- drain and the checks ----
const summaries = await Promise.all(
  loads.map(async (l) => {
    l.proc.stdin!.write('stop\n');
    const [, json] = await waitLine(l, /^summary (.*)$/, DRAIN_MS);
    return JSON.parse(json) as SoakClientsSummary;
  }),
);
const afterDrainRss = rssBytes(hub.pid);

const total = { submitted: 0, accepted: 0, ended: 0, unended: 0, anomalies: 0, closes: 0, cancels: 0 };
const ends: Record<string, number> = {};
const rejected: Record<string, number> = {};
const toRead: Array<{ task_id: string; end: string }> = [];
for (const s of summaries) {
  total.submitted += s.submitted;
  total.accepted += s.accepted;
  total.unended += s.unended.length;
  total.anomalies += s.anomalyCount;
  total.closes += s.unexpectedCloses;
  total.cancels += s.cancelsSent;
  for (const [k, v] of Object.entries(s.ends)) {
    ends[k] = (ends[k] ?? 0) + v;
    total.ended += v;
  }
  for (const [k, v] of Object.entries(s.rejected)) rejected[k] = (rejected[k] ?? 0) + v;
  for (const a of s.anomalies) failures.push(a);
  toRead.push(...s.sample, ...s.unended.map((task_id) => ({ task_id, end: '' })));
}
check(!hubDied, 'the hub died');
check(
  total.submitted === total.accepted + Object.values(rejected).reduce((a, b) => a + b, 0),
  `${total.submitted} submitted, ${total.accepted} accepted and ${JSON.stringify(rejected)} rejected`,
);
check(Object.keys(rejected).length === 0, `rejections: ${JSON.stringify(rejected)}`);
check(total.ended === total.accepted, `${total.accepted} accepted, ${total.ended} ended`);
check(total.unended === 0, `${total.unended} tasks never ended on the wire`);
check(total.anomalies === 0, `${total.anomalies} breaches of the contract on the wire`);
for (const code of Object.keys(ends)) {
  if (code.startsWith('failed:')) check(code === 'failed:worker_lost', `failures with ${code}: ${ends[code]}`);
}
// A task fails worker_lost only when HUB_MAX_ATTEMPTS (2) of its connections were lost.
check((ends['failed:worker_lost'] ?? 0) === 0 || kills >= 2, `worker_lost failures with only ${kills} kills`);

// Read a sample of the ended tasks, and every unended one, back over REST.
const wanted: Record<string, string> = { result: 'succeeded', canceled: 'canceled' };
let readBack = 0;
for (const { task_id, end } of toRead) {
  const res = await fetch(`${httpUrl}/tasks/${task_id}`);
  const body = (await res.json()) as { status?: string; error?: { code?: string } };
  readBack++;
  const seen = body.status === 'failed' ? `failed:${body.error?.code}` : body.status;
  if (!end) failures.push(`${task_id} unended on the wire reads ${res.status} ${seen}`);
  else check(seen === (wanted[end] ?? end), `${task_id} ended ${end} on the wire but reads ${res.status} ${seen}`);
}

// ---- RSS ----
const afterWarmup = rss.filter((s) => s.t >= warmupMs && Number.isFinite(s.bytes));
const rssStart = afterWarmup[0]?.bytes ?? NaN;
const rssMax = Math.max(...afterWarmup.map((s) => s.bytes));
// Least-squares slope after warm-up, in MB per minute: "flat" is about the trend, not noise.
const slope = (() => {
  const n = afterWarmup.length;
  if (n < 3) return NaN;
  const mt = afterWarmup.reduce((a, s) => a + s.t, 0) / n;
  const mv = afterWarmup.reduce((a, s) => a + s.bytes, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of afterWarmup) {
    num += (s.t - mt) * (s.bytes - mv);
    den += (s.t - mt) ** 2;
  }
  return ((num / den) * 60_000) / 1048576;
})();
const growth = runEndedRss - rssStart;
// The RSS nearest each whole minute of the run, to see a plateau in long runs.
const byMinute: string[] = [];
for (let k = 1; k * 60_000 <= runMs + 1000; k++) {
  const near = rss.reduce((a, s) => (Math.abs(s.t - k * 60_000) < Math.abs(a.t - k * 60_000) ? s : a), rss[0]);
  if (near) byMinute.push(`${k}: ${mb(near.bytes)}`);
}
check(Number.isFinite(rssStart), 'no RSS sample after the warm-up');
check(!(growth > Math.max(64 * 1048576, rssStart * 0.5)), `RSS grew from ${mb(rssStart)} to ${mb(runEndedRss)}`);

// ---- stop everything, report ----
stopping = true;
await Promise.all([...loads, ...workers.map((w) => w.child!)].filter(Boolean).map((c) => stop(c, 'SIGTERM', 5000)));
await stop(hub, 'SIGTERM', 15_000);

const secs = (elapsed() / 1000).toFixed(0);
const lines = [
  `soak: ${minutes} min of load (${secs} s with drain and checks), seed ${seed}`,
  `  clients ${clientCount} over ${loadCount} processes, workers ${workerCount} x ${CONCURRENCY} slots`,
  `  kills ${kills} (SIGKILL), restarts ${restarts}`,
  `  tasks submitted ${total.submitted}, accepted ${total.accepted}, ended ${total.ended}, lost ${total.accepted - total.ended}`,
  `  ends ${Object.entries(ends)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}; cancels sent ${total.cancels}`,
  `  read back over REST ${readBack}; client connections closed by the hub ${total.closes}`,
  `  hub RSS start ${mb(rssStart)} (after ${(warmupMs / 1000).toFixed(0)} s warm-up), end ${mb(runEndedRss)}, max ${mb(rssMax)}, after drain ${mb(afterDrainRss)}, trend ${slope.toFixed(2)} MB/min`,
  `  hub RSS by minute: ${byMinute.join(', ')}`,
  failures.length
    ? `FAILED (${failures.length}):\n${failures
        .slice(0, 30)
        .map((f) => `  - ${f}`)
        .join('\n')}`
    : 'OK: every accepted task ended exactly once, none lost, RSS flat',
];
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(failures.length ? 1 : 0);
