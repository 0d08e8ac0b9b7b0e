/**
 * A load process of the soak (`soak.ts`): `--clients` WebSockets to a hub's `/client`, each a
 * closed loop of one short `add_task` (with a `ref`) at a time, a pause, the next. A few tasks are
 * canceled by their client. It checks what the contract promises for every task it submitted:
 * one `accepted` or `rejected` per ref, increasing `seq`, exactly one of `result`, `failed`,
 * `canceled`, and nothing after it.
 *
 *   node --import tsx bench/soak-clients.ts --url ws://127.0.0.1:8080/client --service-id 1
 *     [--clients 100] [--seed 1] [--name load1]
 *
 * With several hubs (`--url` a comma-separated list, the soak with `--hubs`) client `i` starts on
 * hub `i mod n`; when its hub is lost it moves to the next, as the client SDK does: it sends its
 * unanswered `add_task` again with the same `idempotency_key` and `subscribe`s to the task it
 * was following (again every 500 ms while a hub answers `task_not_found`: the task may wait in
 * the cluster's queue with no row yet). Its events must go on in `seq` order, and it must get
 * exactly one end.
 *
 * Prints `ready N` once every connection got `services`. Reads stdin lines: `go` starts the
 * loops, `stop` stops new submissions; once every accepted task has ended (or `--drain-ms`
 * passed) it prints `summary {json}` (see `SoakClientsSummary`) and exits.
 */
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { Frames, numFlag, parseFlags, sendFrames } from './wire.js';

/** What one load process saw, printed as `summary {json}`. */
export interface SoakClientsSummary {
  name: string;
  clients: number;
  /** add_task messages sent, and their answers. */
  submitted: number;
  accepted: number;
  rejected: Record<string, number>;
  /** Ends by kind: `result`, `canceled`, `failed:<code>`. */
  ends: Record<string, number>;
  /** Accepted tasks with no end seen. */
  unended: string[];
  /** Breaches of the contract seen on the wire (each a short text), at most 50 kept. */
  anomalies: string[];
  anomalyCount: number;
  /** Cancels sent, and the `error` answers they got by code. */
  cancelsSent: number;
  cancelErrors: Record<string, number>;
  /** Connections closed by the hub while the run went on (with one URL: each a breach). */
  unexpectedCloses: number;
  /** With several URLs: connections opened again on the next hub, and `subscribe`s sent then. */
  reconnects: number;
  resubscribes: number;
  /** `subscribe`s answered `task_not_found` and sent again (the task had no row yet). */
  subscribeRetries: number;
  /** Every accepted task's id, with `--all-ids` (the soak with hubs reads each back on every hub). */
  ids?: string[];
  /** Some ended tasks with their end as seen here, for a cross-check with GET /tasks/{id}. */
  sample: Array<{ task_id: string; end: string }>;
}

const flags = parseFlags(process.argv.slice(2));
const urls = (flags.get('url') ?? '').split(',').filter(Boolean);
const serviceId = numFlag(flags, 'service-id', NaN);
if (urls.length === 0 || !Number.isInteger(serviceId)) {
  process.stderr.write('soak-clients: --url and --service-id are required\n');
  process.exit(2);
}
const clientCount = numFlag(flags, 'clients', 100);
const name = flags.get('name') ?? 'load';
const drainMs = numFlag(flags, 'drain-ms', 60_000);
const allIds = flags.has('all-ids');
/** Several hubs: a lost connection is expected (a hub was killed) and the client moves on. */
const failover = urls.length > 1;
/** Share of tasks the client cancels a little after submitting them. */
const CANCEL_SHARE = 0.03;
const SAMPLE_SIZE = 100;

/** mulberry32: a small seeded generator, so a run can be replayed with its `--seed`. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const seed = numFlag(flags, 'seed', 1);
const random = rng(seed);

interface TaskState {
  seq: number;
  /** The end seen, or '' while unended. */
  end: string;
  canceled: boolean;
}

const tasks = new Map<string, TaskState>();
const summary: SoakClientsSummary = {
  name,
  clients: clientCount,
  submitted: 0,
  accepted: 0,
  rejected: {},
  ends: {},
  unended: [],
  anomalies: [],
  anomalyCount: 0,
  cancelsSent: 0,
  cancelErrors: {},
  unexpectedCloses: 0,
  reconnects: 0,
  resubscribes: 0,
  subscribeRetries: 0,
  sample: [],
};
let running = false;
let stopping = false;
let endedCount = 0;
const onIdle = new Set<() => void>();

function anomaly(text: string): void {
  summary.anomalyCount++;
  if (summary.anomalies.length < 50) summary.anomalies.push(`${name}: ${text}`);
}
const bump = (counts: Record<string, number>, key: string) => void (counts[key] = (counts[key] ?? 0) + 1);

class SoakClient {
  ws!: WebSocket;
  /** The ref awaiting its accepted/rejected, and the task awaiting its end. */
  pendingRef: string | null = null;
  /** The `add_task` of `pendingRef` as sent, to send again on the next hub. */
  pendingMsg = '';
  current: string | null = null;
  n = 0;
  closedByUs = false;
  /** Index in `urls` of the hub this client is on. */
  hub: number;

  constructor(readonly id: number) {
    this.hub = id % urls.length;
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      let ready = false;
      const frames = new Frames((msg) => {
        if (msg.type === 'services' && !ready) {
          ready = true;
          resolve();
          return;
        }
        this.onMessage(msg);
      });
      this.ws = new WebSocket(urls[this.hub], { perMessageDeflate: false });
      this.ws.on('message', (data, isBinary) => frames.push(data, isBinary));
      this.ws.on('error', (err) => {
        if (!ready) reject(err);
      });
      this.ws.on('close', (code) => {
        if (!ready) return reject(new Error(`closed ${code} before services`));
        if (this.closedByUs) return;
        summary.unexpectedCloses++;
        if (failover) return void this.moveOn();
        anomaly(`client ${this.id} closed by the hub (${code})`);
        this.current = null;
        this.pendingRef = null;
        checkIdle();
      });
    });
  }

  /** The hub was lost: the next one, with the unanswered submit sent again and the task followed. */
  async moveOn(): Promise<void> {
    for (let tries = 0; ; tries++) {
      this.hub = (this.hub + 1) % urls.length;
      await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** tries) * (0.5 + random())));
      try {
        await this.open();
        break;
      } catch {
        // that hub is down too: the next one
      }
    }
    summary.reconnects++;
    if (this.pendingRef) sendFrames(this.ws, this.pendingMsg);
    else if (this.current) {
      summary.resubscribes++;
      this.subscribe(this.current);
    }
  }

  subscribe(taskId: string): void {
    if (this.ws.readyState === WebSocket.OPEN) sendFrames(this.ws, JSON.stringify({ type: 'subscribe', task_id: taskId }));
  }

  submit(): void {
    if (!running || stopping) return;
    if (this.ws.readyState !== WebSocket.OPEN) {
      // Between two hubs: the loop goes on once the client is on the next one.
      if (failover) setTimeout(() => this.submit(), 500);
      return;
    }
    const ref = `${name}-${this.id}-${++this.n}`;
    this.pendingRef = ref;
    summary.submitted++;
    // Short tasks: 20 to 400 ms in 1 to 3 steps, so each brings a few progress events.
    const args = { seconds: Math.round((0.02 + random() * 0.38) * 1000) / 1000, steps: 1 + Math.floor(random() * 3) };
    const key = failover ? { idempotency_key: `${ref}-${seed}` } : {};
    this.pendingMsg = JSON.stringify({ type: 'add_task', ref, service_id: serviceId, args, ...key });
    sendFrames(this.ws, this.pendingMsg);
  }

  next(): void {
    this.current = null;
    checkIdle();
    if (stopping) return;
    setTimeout(() => this.submit(), 100 + random() * 900);
  }

  onMessage(msg: Record<string, any>): void {
    switch (msg.type) {
      case 'accepted': {
        if (msg.ref !== this.pendingRef) return anomaly(`accepted for ref ${msg.ref}, awaiting ${this.pendingRef}`);
        if (tasks.has(msg.task_id)) return anomaly(`task ${msg.task_id} accepted twice`);
        this.pendingRef = null;
        this.current = msg.task_id;
        summary.accepted++;
        tasks.set(msg.task_id, { seq: 0, end: '', canceled: false });
        if (random() < CANCEL_SHARE) {
          const id = msg.task_id as string;
          setTimeout(() => {
            const t = tasks.get(id);
            if (!t || t.end || this.ws.readyState !== WebSocket.OPEN) return;
            t.canceled = true;
            summary.cancelsSent++;
            sendFrames(this.ws, JSON.stringify({ type: 'cancel', task_id: id }));
          }, random() * 300);
        }
        return;
      }
      case 'rejected':
        if (msg.ref !== this.pendingRef) return anomaly(`rejected for ref ${msg.ref}, awaiting ${this.pendingRef}`);
        this.pendingRef = null;
        bump(summary.rejected, String(msg.error?.code));
        return this.next();
      case 'error':
        // A subscribe after a move whose task has no row yet (it waits in the cluster's queue).
        if (failover && msg.code === 'task_not_found' && msg.task_id && msg.task_id === this.current && !tasks.get(msg.task_id)?.end) {
          summary.subscribeRetries++;
          const id = msg.task_id as string;
          setTimeout(() => this.current === id && this.subscribe(id), 500);
          return;
        }
        // The answer to a cancel that came too late (already_finished) or a broken message.
        if (msg.task_id && tasks.has(msg.task_id)) bump(summary.cancelErrors, String(msg.code));
        else anomaly(`error ${msg.code}: ${msg.message}`);
        return;
      case 'services':
        return;
    }
    const t = typeof msg.task_id === 'string' ? tasks.get(msg.task_id) : undefined;
    if (!t) return anomaly(`${msg.type} for unknown task ${msg.task_id}`);
    if (msg.type === 'snapshot') {
      // The state after a move: no event is new in it, so its seq may equal the last one seen.
      if (t.end) return anomaly(`snapshot (seq ${msg.seq}) after the end ${t.end} of ${msg.task_id}`);
      if (!(msg.seq >= t.seq)) anomaly(`snapshot seq ${msg.seq} after ${t.seq} on ${msg.task_id}`);
      t.seq = Math.max(t.seq, msg.seq);
      return;
    }
    if (t.end) return anomaly(`${msg.type} (seq ${msg.seq}) after the end ${t.end} of ${msg.task_id}`);
    if (!(msg.seq > t.seq)) anomaly(`seq ${msg.seq} after ${t.seq} on ${msg.task_id}`);
    t.seq = msg.seq;
    let end = '';
    if (msg.type === 'result') end = 'result';
    else if (msg.type === 'canceled') end = 'canceled';
    else if (msg.type === 'failed') end = `failed:${msg.error?.code}`;
    if (!end) return; // started, queued, progress
    t.end = end;
    endedCount++;
    bump(summary.ends, end);
    if (end === 'canceled' && !t.canceled) anomaly(`${msg.task_id} canceled, though nobody asked`);
    // Reservoir sample of ended tasks for the REST cross-check.
    if (summary.sample.length < SAMPLE_SIZE) summary.sample.push({ task_id: msg.task_id, end });
    else {
      const k = Math.floor(random() * endedCount);
      if (k < SAMPLE_SIZE) summary.sample[k] = { task_id: msg.task_id, end };
    }
    if (msg.task_id === this.current) this.next();
  }
}

const clients = Array.from({ length: clientCount }, (_, i) => new SoakClient(i));

function outstanding(): number {
  return summary.accepted - endedCount + clients.filter((c) => c.pendingRef !== null).length;
}

function checkIdle(): void {
  if (stopping && outstanding() === 0) for (const fn of onIdle) fn();
}

async function finish(): Promise<void> {
  stopping = true;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, drainMs);
    onIdle.add(() => {
      clearTimeout(timer);
      resolve();
    });
    checkIdle();
  });
  for (const [id, t] of tasks) if (!t.end) summary.unended.push(id);
  for (const c of clients) if (c.pendingRef) anomaly(`ref ${c.pendingRef} never answered`);
  if (allIds) summary.ids = [...tasks.keys()];
  process.stdout.write(`summary ${JSON.stringify(summary)}\n`);
  for (const c of clients) {
    c.closedByUs = true;
    c.ws.close();
  }
  setTimeout(() => process.exit(0), 200).unref();
}

// 50 handshakes at a time: a burst of hundreds would only queue in the hub's accept backlog.
for (let i = 0; i < clients.length; i += 50) await Promise.all(clients.slice(i, i + 50).map((c) => c.open()));
process.stdout.write(`ready ${clients.length}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = line.trim();
  if (cmd === 'go' && !running) {
    running = true;
    // Spread the first submissions over a second rather than all in one tick.
    for (const c of clients) setTimeout(() => c.submit(), random() * 1000);
  } else if (cmd === 'stop') {
    await finish();
    break;
  }
}
if (!stopping) await finish(); // stdin closed: the harness is gone
