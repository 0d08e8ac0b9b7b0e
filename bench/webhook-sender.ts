/**
 * How many webhook deliveries per second one hub's sender sends to a local receiver: N pending
 * rows are put in the outbox of a task store (SQLite on a file, or MariaDB with `--db`), then the
 * sender (server/src/delivery/webhooks.ts) is started and timed until every row is delivered. The
 * receiver (bench/webhook-receiver.ts) runs in a process of its own; the event loop's delay is
 * sampled meanwhile (the sender must not hold it).
 *
 *   node --import tsx bench/webhook-sender.ts [--n 20000] [--db mysql://root@127.0.0.1:3306/DB] [--delay MS]
 *
 * `--delay MS`: the receiver answers each POST after MS (a receiver across a network).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { openDb, migrate } from '../server/src/db/index.js';
import { TaskStore, type DeliveryRow } from '../server/src/store/tasks.js';
import { Webhooks } from '../server/src/delivery/webhooks.js';
import { newTaskId } from '../server/src/core/task-id.js';
import { deliveryRow } from '../server/src/core/webhook-rows.js';
import type { TaskView } from '@utils-hub/protocol';
import type { Hub } from '../server/src/core/hub.js';
import type { FastifyBaseLogger } from 'fastify';

const { values } = parseArgs({ options: { n: { type: 'string', default: '20000' }, db: { type: 'string' }, delay: { type: 'string', default: '0' } } });
const N = Number(values.n);

const receiver = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'webhook-receiver.ts'), '--delay', values.delay!], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const url = await new Promise<string>((resolve) => {
  let out = '';
  receiver.stdout.on('data', (c: Buffer) => {
    out += c;
    const m = /listening on (\S+)/.exec(out);
    if (m) resolve(`${m[1]}/hook`);
  });
});

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wh-bench-'));
const db = openDb(values.db ?? `sqlite://${path.join(dir, 'hub.db')}`, { log: () => {} });
await migrate(db);
await db('webhook_deliveries').delete();
const store = new TaskStore(db, { flushDelayMs: 0 });

const now = Date.now();
// Each delivery's body: a small ended task's view, as the hub sends for a `completed` event.
const view: TaskView = {
  task_id: 'x',
  service_id: 1,
  status: 'succeeded',
  progress: null,
  message: null,
  attempts: 1,
  created_at: new Date(now).toISOString(),
  started_at: null,
  finished_at: null,
  result: { text: 'hello' },
};
for (let i = 0; i < N; i += 500) {
  const rows: DeliveryRow[] = [];
  for (let j = i; j < Math.min(N, i + 500); j++) rows.push(deliveryRow(newTaskId(now), url, 'completed', view, now));
  store.saveDeliveries(rows);
}
await store.flush();

let delivered = 0;
const hub = {
  config: { webhookSecret: `whsec_${randomBytes(24).toString('base64')}`, webhookAllowPrivate: true },
  recordWebhookDelivery: (outcome: string) => {
    if (outcome === 'delivered') delivered++;
  },
} as unknown as Hub;
const noop = () => {};
const log = { warn: noop, error: noop, info: noop, debug: noop } as unknown as FastifyBaseLogger;
const sender = new Webhooks(db, hub, log, store);

const delay = monitorEventLoopDelay({ resolution: 10 });
delay.enable();
const cpu0 = process.cpuUsage();
const elu0 = performance.eventLoopUtilization();
const t0 = performance.now();
sender.start();
while (delivered < N) await new Promise((r) => setTimeout(r, 20));
const ms = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const elu = performance.eventLoopUtilization(elu0);
delay.disable();
await sender.close();
await store.close();
const pending = Number(((await db('webhook_deliveries').where({ status: 'pending' }).count({ n: '*' })) as Array<{ n: number }>)[0].n);
await db.destroy();
receiver.kill('SIGTERM');
fs.rmSync(dir, { recursive: true, force: true });
console.log(
  `${N} deliveries in ${ms.toFixed(0)} ms: ${Math.round((N / ms) * 1000)}/s; sender process CPU ${(((cpu.user + cpu.system) / 1000 / ms) * 100).toFixed(0)} %, ` +
    `${((cpu.user + cpu.system) / N) | 0} µs/delivery (all threads); event loop busy ${((elu.active * 1000) / N) | 0} µs/delivery (${(elu.utilization * 100).toFixed(0)} %), delay delay p50 ${(delay.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(delay.percentile(99) / 1e6).toFixed(1)} ms, max ${(delay.max / 1e6).toFixed(1)} ms; ${pending} still pending (outcomes not yet written)`,
);
