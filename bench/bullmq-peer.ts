/**
 * The peer: BullMQ on the local Redis doing the same echo round trip as the hub (a producer adds
 * a job, a worker process returns its data, the producer hears it completed through QueueEvents),
 * closed loop with `--inflight` jobs outstanding. This is how many Node teams hand work to
 * workers, so it is the bar the hub is compared with (issue 6).
 *
 *   node --import tsx bench/bullmq-peer.ts worker   --queue Q [--concurrency 64] [--redis redis://127.0.0.1:6379]
 *   node --import tsx bench/bullmq-peer.ts producer --queue Q [--inflight 64] [--warmup 1000] [--duration 5000] [--serve]
 *   node --import tsx bench/bullmq-peer.ts clean    --queue Q
 *
 * The worker prints `ready 1` once it listens; the producer prints one JSON line shaped like the
 * load generator's (`LoadReport`).
 */
import { Queue, QueueEvents, Worker } from 'bullmq';
import type { LoadReport } from './load.js';
import { numFlag, parseFlags } from './wire.js';
import { percentile, serveWindows, sleep, windowEnd, windowStart } from './window.js';

const [role, ...rest] = process.argv.slice(2);
const flags = parseFlags(rest);
const queueName = flags.get('queue') ?? 'uh-bench';
const redisUrl = new URL(flags.get('redis') ?? 'redis://127.0.0.1:6379');
const connection = { host: redisUrl.hostname, port: Number(redisUrl.port || 6379), maxRetriesPerRequest: null };

async function runWorker(): Promise<void> {
  const concurrency = numFlag(flags, 'concurrency', 64);
  const worker = new Worker(queueName, async (job) => job.data, { connection, concurrency });
  worker.on('error', (err) => process.stderr.write(`bullmq worker: ${err.message}\n`));
  await worker.waitUntilReady();
  process.stdout.write('ready 1\n');
  const stop = () => {
    void worker.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function runProducer(): Promise<void> {
  const inflight = numFlag(flags, 'inflight', 64);
  const queue = new Queue(queueName, { connection });
  const events = new QueueEvents(queueName, { connection });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);

  const data = { text: 'hello' };
  const dataBytes = JSON.stringify(data).length;
  const started = new Map<string, number>();
  let measuring = false;
  let stopping = false;
  let completed = 0;
  let errors = 0;
  let bytes = 0;
  const latencies: number[] = [];
  let onDrained: () => void = () => {};

  let outstanding = 0;
  const add = () => {
    outstanding++;
    const t0 = performance.now();
    queue
      .add('echo', data, { removeOnComplete: true, removeOnFail: true })
      .then((job) => {
        // `completed` may be heard before `add` resolves; then it waits here under its id.
        if (early.delete(job.id!)) end(t0, true);
        else started.set(job.id!, t0);
      })
      .catch((err: Error) => {
        process.stderr.write(`bullmq producer: ${err.message}\n`);
        end(t0, false);
      });
  };
  const early = new Set<string>();
  const end = (t0: number, ok: boolean) => {
    outstanding--;
    if (measuring) {
      if (ok) {
        completed++;
        bytes += 2 * dataBytes;
        latencies.push(performance.now() - t0);
      } else {
        errors++;
      }
    }
    if (!stopping) add();
    else if (outstanding === 0) onDrained();
  };
  const heard = (jobId: string, ok: boolean) => {
    const t0 = started.get(jobId);
    if (t0 === undefined) {
      early.add(jobId);
      return;
    }
    started.delete(jobId);
    end(t0, ok);
  };
  events.on('completed', ({ jobId }) => heard(jobId, true));
  events.on('failed', ({ jobId }) => heard(jobId, false));

  const runWindow = async (warmup: number, duration: number): Promise<LoadReport> => {
    completed = errors = bytes = 0;
    latencies.length = 0;
    stopping = false;
    for (let i = 0; i < inflight; i++) add();
    await sleep(warmup);
    measuring = true;
    windowStart();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await sleep(duration);
    measuring = false;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    windowEnd();
    stopping = true;
    if (outstanding > 0) await Promise.race([new Promise<void>((r) => (onDrained = r)), sleep(5000)]);
    const sorted = Float64Array.from(latencies).sort();
    return {
      tasks: completed,
      seconds,
      tasksPerSec: completed / seconds,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      bytesPerSec: bytes / seconds,
      cpuPct: ((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 100,
      errors,
      resultsWithAttachments: 0,
      base64Results: 0,
      endedSinceStart: NaN,
    };
  };
  await serveWindows(flags, runWindow);
  await Promise.allSettled([events.close(), queue.close()]);
  process.exit(0);
}

async function runClean(): Promise<void> {
  const queue = new Queue(queueName, { connection });
  await queue.obliterate({ force: true });
  await queue.close();
  process.exit(0);
}

const roles: Record<string, () => Promise<void>> = { worker: runWorker, producer: runProducer, clean: runClean };
const run = roles[role];
if (!run) {
  process.stderr.write('usage: bullmq-peer.ts worker|producer|clean --queue NAME [options]\n');
  process.exit(2);
}
run().catch((err: Error) => {
  process.stderr.write(`bullmq-peer ${role}: ${err.message}\n`);
  process.exit(1);
});
