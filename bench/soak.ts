/**
 * The soak: the hub as its real command on SQLite, dozens of example `sleep` workers as separate
 * processes, hundreds of `/client` connections over a few load processes (soak-clients.ts), and
 * workers killed with SIGKILL and restarted at random, for `--minutes`. At the end it checks that
 * every accepted task ended exactly once and none was lost (also read back with GET /tasks/{id}),
 * that failures are only those the kills explain (`worker_lost`), and that the hub's RSS stayed
 * flat; prints a short report and exits 1 when any of that fails. Loopback only; not part of CI.
 *
 * With `--hubs N` it soaks a cluster (docs/cluster.md): N hubs on a fresh MariaDB database and
 * their own `HUB_CLUSTER` on NATS, workers and clients spread over them (each given every hub's
 * URL, its own first), and hubs SIGKILLed and restarted (with a new `HUB_ID`, as a restarted
 * hub has) at random besides the workers: one hub down at a time, never hub 1, whose RSS is the
 * memory check of a hub that lives through the others' deaths (the others' RSS is reported per
 * process). Every accepted task is then read back on every hub.
 *
 *   npm run soak -- [--minutes 1 | --seconds 60] [--clients 300] [--workers 24] [--seed 1] [--loads 3]
 *                   [--hubs 3] [--db-server mysql://root@127.0.0.1:3306] [--broker nats://127.0.0.1:4222]
 *                   [--heartbeat-ms 2000] [--hub-logs DIR] [--hub-log-level warn]
 */
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { cleanupOnExit, rssBytes, start, stop, waitLine, type Child } from './procs.js';
import type { SoakClientsSummary } from './soak-clients.js';
import { clusterDown, clusterUp, type TestCluster } from './cluster.js';
import { numFlag, parseFlags } from './wire.js';

const flags = parseFlags(process.argv.slice(2));
const hubCount = Math.round(numFlag(flags, 'hubs', 0));
const clustered = hubCount > 0;
const runMs = flags.has('seconds') ? numFlag(flags, 'seconds', 60) * 1000 : numFlag(flags, 'minutes', 1) * 60_000;
const minutes = runMs / 60_000;
// A cluster's hubs share the two cores with NATS and MariaDB: a lighter load by default.
const clientCount = Math.round(numFlag(flags, 'clients', clustered ? 120 : 300));
const workerCount = Math.round(numFlag(flags, 'workers', clustered ? 3 * hubCount : 24));
const seed = Math.round(numFlag(flags, 'seed', Date.now() % 1_000_000));
const loadCount = Math.max(1, Math.min(clientCount, Math.round(numFlag(flags, 'loads', clustered ? Math.min(3, hubCount) : 3))));
/** The hubs' heartbeat in a cluster: a killed hub's tasks move after 3 of them. */
const heartbeatMs = Math.round(numFlag(flags, 'heartbeat-ms', 2000));
if (!(runMs > 0) || clientCount < 1 || workerCount < 2 || hubCount < 0 || hubCount > 8) {
  process.stderr.write('soak: --minutes or --seconds must be > 0, --clients >= 1, --workers >= 2, --hubs 0 to 8\n');
  process.exit(2);
}
/** Slots per worker process: the example runner's `--concurrency`. */
const CONCURRENCY = 4;
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
  if (cluster) await clusterDown(cluster).catch(() => undefined);
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

// ---- the hubs ----
/** One hub's place in the run: its port stays, its process (and, in a cluster, its id) changes at each restart. */
interface HubSlot {
  name: string;
  port: number;
  url: string;
  child: Child | null;
  /** True from its kill until it listens again. */
  down: boolean;
  starts: number;
  /** RSS samples of each of its processes, in start order. */
  lives: Array<{ id: string; pid: number; rss: Array<{ t: number; bytes: number }> }>;
}
let cluster: TestCluster | null = null;
if (clustered) {
  cluster = await clusterUp(flags.get('db-server'), flags.get('broker'), `soak_${randomBytes(4).toString('hex')}`);
  log(`cluster ${cluster.name} on ${cluster.db.replace(/:[^:@/]*@/, ':***@')} and ${cluster.broker}`);
}
/** A port free now, so that a hub restarted after a kill listens where its peers expect it. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}
const hubs: HubSlot[] = [];
for (let i = 0; i < Math.max(1, hubCount); i++) {
  hubs.push({ name: `hub${i + 1}`, port: clustered ? await freePort() : 0, url: '', child: null, down: true, starts: 0, lives: [] });
}
let hubDied = false;

async function startHub(h: HubSlot): Promise<void> {
  const id = h.starts === 0 ? h.name : `${h.name}-r${h.starts}`;
  h.starts++;
  const db = cluster ? cluster.db : `sqlite:${join(dir, 'hub.sqlite')}`;
  const env: NodeJS.ProcessEnv = { ...process.env, HUB_LOG_LEVEL: flags.get('hub-log-level') ?? 'warn' };
  if (cluster) Object.assign(env, { HUB_BROKER: cluster.broker, HUB_CLUSTER: cluster.name, HUB_ID: id, HUB_HEARTBEAT_MS: String(heartbeatMs) });
  const child = start(id, 'node', ['server/bin/utils-hub.js', 'start', '--host', '127.0.0.1', '--port', String(h.port), '--db', db], { env });
  // --hub-logs DIR: every hub's log lines kept in DIR/<hub id>.log (to trace a breach).
  const logs = flags.get('hub-logs');
  if (logs) {
    mkdirSync(logs, { recursive: true });
    const file = join(logs, `${id}.log`);
    child.onLine((line) => appendFileSync(file, `${line}\n`));
  }
  const [, url] = await waitLine(child, /utils-hub listening on (http:\/\/\S+)/, 45_000);
  h.url = url;
  h.child = child;
  h.down = false;
  h.lives.push({ id, pid: child.pid, rss: [] });
  void child.exited.then((code) => {
    if (stopping || h.down) return;
    hubDied = true;
    log(`${id} exited (${code}): ${child.stderrTail.slice(-800)}`);
  });
}
// The first hub migrates the database; the others start once it is up.
await startHub(hubs[0]);
await Promise.all(hubs.slice(1).map(startHub));
const httpUrl = hubs[0].url;
/** Every hub's URL at `path`, hub `first` first: the list a worker or a client is given. */
const hubUrls = (first: number, path: string) => hubs.map((_, i) => hubs[(first + i) % hubs.length].url.replace(/^http/, 'ws') + path).join(',');
log(`${hubs.map((h) => `${h.name} ${h.url}`).join(', ')}, seed ${seed}`);

// ---- the workers ----
interface WorkerSlot {
  instance: string;
  child: Child | null;
  /** True while it is killed and not yet connected again. */
  down: boolean;
}
const workers: WorkerSlot[] = Array.from({ length: workerCount }, (_, i) => ({ instance: `w${i + 1}`, child: null, down: true }));

async function startWorker(w: WorkerSlot, i = workers.indexOf(w)): Promise<void> {
  const child = start(w.instance, 'node', [
    '--import',
    'tsx',
    'examples/run.ts',
    'sleep',
    '--hub',
    hubUrls(i, '/worker'),
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
for (let i = 0; i < workers.length; i += 4) await Promise.all(workers.slice(i, i + 4).map((w) => startWorker(w)));
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
        hubUrls(i, '/client'),
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
        ...(clustered ? ['--all-ids'] : []),
      ],
      { stdin: true },
    ),
  );
}
await Promise.all(loads.map((l) => waitLine(l, /^ready \d+/, 60_000)));
log(`${clientCount} clients connected over ${loadCount} processes; running ${(runMs / 1000).toFixed(0)} s`);

// ---- the run: load, kills, RSS samples ----
const runStarted = performance.now();
const elapsed = () => performance.now() - runStarted;
for (const l of loads) l.proc.stdin!.write('go\n');
const sampler = setInterval(() => {
  for (const h of hubs) {
    const life = h.lives.at(-1);
    if (!h.down && life) life.rss.push({ t: elapsed(), bytes: rssBytes(life.pid) });
  }
}, 1000);
// Hub 1 lives through the whole run: its samples are the memory check.
const rss = hubs[0].lives[0].rss;

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
let hubKills = 0;
let hubRestarts = 0;
async function hubKiller(): Promise<void> {
  if (hubs.length < 2) return;
  while (elapsed() < runMs && !hubDied) {
    // One hub SIGKILLed every 10 to 25 s, restarted 1 to 5 s later: one down at a time, never hub 1.
    await sleep(10_000 + random() * 15_000);
    if (elapsed() >= runMs - 5000 || hubDied) break;
    if (hubs.some((h) => h.down)) continue;
    const h = hubs[1 + Math.floor(random() * (hubs.length - 1))];
    h.down = true;
    hubKills++;
    log(`SIGKILL ${h.lives.at(-1)?.id} at ${(elapsed() / 1000).toFixed(0)} s`);
    await stop(h.child!, 'SIGKILL');
    await sleep(1000 + random() * 4000);
    try {
      await startHub(h);
      hubRestarts++;
    } catch (err) {
      failures.push(`${h.name} did not come back: ${(err as Error).message}`);
    }
  }
}
await Promise.all([killer(), hubKiller()]);
await Promise.all(restarting);
const runEndedRss = rssBytes(hubs[0].lives[0].pid);
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
const afterDrainRss = rssBytes(hubs[0].lives[0].pid);

const moves = { reconnects: 0, resubscribes: 0, subscribeRetries: 0 };
const total = { submitted: 0, accepted: 0, ended: 0, unended: 0, anomalies: 0, closes: 0, cancels: 0 };
const ends: Record<string, number> = {};
const rejected: Record<string, number> = {};
const toRead: Array<{ task_id: string; end: string }> = [];
const allIds: string[] = [];
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
  allIds.push(...(s.ids ?? []));
  for (const k of ['reconnects', 'resubscribes', 'subscribeRetries'] as const) moves[k] += s[k];
}
check(!hubDied, 'a hub died unasked');
check(
  total.submitted === total.accepted + Object.values(rejected).reduce((a, b) => a + b, 0),
  `${total.submitted} submitted, ${total.accepted} accepted and ${JSON.stringify(rejected)} rejected`,
);
check(Object.keys(rejected).length === 0, `rejections: ${JSON.stringify(rejected)}`);
check(total.ended === total.accepted, `${total.accepted} accepted, ${total.ended} ended`);
check(total.unended === 0, `${total.unended} tasks never ended on the wire`);
check(total.anomalies === 0, `${total.anomalies} breaches of the contract on the wire`);
// One hub: the hub never closes a client. A cluster: only a killed hub's clients move.
if (!clustered) check(total.closes === 0, `${total.closes} client connections closed by the hub`);
for (const code of Object.keys(ends)) {
  if (code.startsWith('failed:')) check(code === 'failed:worker_lost', `failures with ${code}: ${ends[code]}`);
}
// A task fails worker_lost only when HUB_MAX_ATTEMPTS (2) of its connections were lost.
check((ends['failed:worker_lost'] ?? 0) === 0 || kills >= 2, `worker_lost failures with only ${kills} kills`);

// Read a sample of the ended tasks, and every unended one, back over REST (on hub 1).
const wanted: Record<string, string> = { result: 'succeeded', canceled: 'canceled' };
const readStatus = async (url: string, taskId: string) => {
  const res = await fetch(`${url}/tasks/${taskId}`);
  const body = (await res.json()) as { status?: string; error?: { code?: string } };
  return { http: res.status, seen: body.status === 'failed' ? `failed:${body.error?.code}` : body.status };
};
let readBack = 0;
for (const { task_id, end } of toRead) {
  const { http, seen } = await readStatus(httpUrl, task_id);
  readBack++;
  if (!end) failures.push(`${task_id} unended on the wire reads ${http} ${seen}`);
  else check(seen === (wanted[end] ?? end), `${task_id} ended ${end} on the wire but reads ${http} ${seen}`);
}
// A cluster: every accepted task read on every hub, each must read as ended.
let readEverywhere = 0;
const notEnded: string[] = [];
if (clustered) {
  const jobs = allIds.flatMap((id) => hubs.map((h) => ({ id, url: h.url })));
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < jobs.length) {
        const { id, url } = jobs[next++];
        const { http, seen } = await readStatus(url, id).catch((err: Error) => ({ http: 0, seen: err.message }));
        readEverywhere++;
        if (!(seen === 'succeeded' || seen === 'canceled' || seen?.startsWith('failed:'))) notEnded.push(`${id} on ${url}: ${http} ${seen}`);
      }
    }),
  );
  check(allIds.length === total.accepted, `${allIds.length} task ids reported for ${total.accepted} accepted`);
  check(notEnded.length === 0, `${notEnded.length} reads of an accepted task not ended, e.g. ${notEnded.slice(0, 5).join('; ')}`);
}

// ---- RSS ----
const afterWarmup = rss.filter((s) => s.t >= warmupMs && Number.isFinite(s.bytes));
const rssStart = afterWarmup[0]?.bytes ?? NaN;
const rssMax = Math.max(...afterWarmup.map((s) => s.bytes));
/** Least-squares slope of RSS samples, in MB per minute: "flat" is about the trend, not noise. */
const slopeOf = (samples: Array<{ t: number; bytes: number }>) => {
  const n = samples.length;
  if (n < 3) return NaN;
  const mt = samples.reduce((a, s) => a + s.t, 0) / n;
  const mv = samples.reduce((a, s) => a + s.bytes, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.t - mt) * (s.bytes - mv);
    den += (s.t - mt) ** 2;
  }
  return ((num / den) * 60_000) / 1048576;
};
const slope = slopeOf(afterWarmup);
// Every other hub process: its RSS from 20 s after its start (or the run's warm-up) to its end.
const otherLives = hubs
  .slice(1)
  .flatMap((h) => h.lives)
  .map((l) => {
    const from = (l.rss[0]?.t ?? 0) + 20_000;
    const kept = l.rss.filter((s) => s.t >= Math.max(from, warmupMs) && Number.isFinite(s.bytes));
    const secs = kept.length ? (kept.at(-1)!.t - kept[0].t) / 1000 : 0;
    return `${l.id} ${kept.length ? mb(kept.at(-1)!.bytes) : '-'}${secs >= 30 ? ` (${slopeOf(kept).toFixed(2)} MB/min over ${secs.toFixed(0)} s)` : ''}`;
  });
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
await Promise.all(hubs.map((h) => h.child && stop(h.child, 'SIGTERM', 15_000)));
if (cluster) await clusterDown(cluster).catch((err: Error) => log(`cleanup: ${err.message}`));

const secs = (elapsed() / 1000).toFixed(0);
const lines = [
  `soak: ${minutes.toFixed(minutes < 1 ? 2 : 1)} min of load (${secs} s with drain and checks), seed ${seed}`,
  ...(clustered
    ? [`  hubs ${hubs.length} (cluster on MariaDB + NATS, heartbeat ${heartbeatMs} ms): hub kills ${hubKills} (SIGKILL), restarts ${hubRestarts}`]
    : []),
  `  clients ${clientCount} over ${loadCount} processes, workers ${workerCount} x ${CONCURRENCY} slots`,
  `  worker kills ${kills} (SIGKILL), restarts ${restarts}`,
  `  tasks submitted ${total.submitted}, accepted ${total.accepted}, ended ${total.ended}, lost ${total.accepted - total.ended}`,
  `  ends ${Object.entries(ends)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}; cancels sent ${total.cancels}`,
  `  read back over REST ${readBack}; client connections closed by the hub ${total.closes}`,
  ...(clustered
    ? [
        `  clients moved to another hub ${moves.reconnects} (subscribes then ${moves.resubscribes}, sent again after task_not_found ${moves.subscribeRetries})`,
        `  every accepted task read on every hub: ${readEverywhere} reads, ${notEnded.length} not ended`,
        `  other hubs' RSS at their end: ${otherLives.join(', ')}`,
      ]
    : []),
  `  hub${clustered ? ' 1' : ''} RSS start ${mb(rssStart)} (after ${(warmupMs / 1000).toFixed(0)} s warm-up), end ${mb(runEndedRss)}, max ${mb(rssMax)}, after drain ${mb(afterDrainRss)}, trend ${slope.toFixed(2)} MB/min`,
  `  hub${clustered ? ' 1' : ''} RSS by minute: ${byMinute.join(', ')}`,
  failures.length
    ? `FAILED (${failures.length}):\n${failures
        .slice(0, 30)
        .map((f) => `  - ${f}`)
        .join('\n')}`
    : 'OK: every accepted task ended exactly once, none lost, RSS flat',
];
process.stdout.write(`${lines.join('\n')}\n`);
process.exit(failures.length ? 1 : 0);
