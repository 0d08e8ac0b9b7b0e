/**
 * The load generator: a closed loop of `add_task` over `/client` WebSockets, keeping `--inflight`
 * tasks outstanding, each answered by `result` (after `accepted` and `started`). It measures for
 * `--duration` ms after `--warmup` ms and prints one JSON line (see `LoadReport`); with `--serve`,
 * it stays connected and runs one such window per stdin line `run WARMUP DURATION` (window.ts).
 *
 *   node --import tsx bench/load.ts --url ws://127.0.0.1:8080/client [--service bench_echo]
 *     [--inflight 64] [--connections 1] [--media 0] [--warmup 1000] [--duration 5000]
 *
 * `--keys` gives every task an `idempotency_key` of its own; `--webhook URL` a webhook (the
 * `hub-delivery` peer of the bench).
 *
 * `--media N` sends N bytes as a binary attachment with each task (`{"$attachment": 0}`) and
 * checks that the result brings them back as a binary frame too.
 *
 * Idle mode (`--idle N`): opens N client connections (`--batch` handshakes at a time), waits for
 * the `services` message on each, prints `ready N`, and holds them until SIGTERM.
 */
import { WebSocket } from 'ws';
import { Frames, numFlag, parseFlags, sendFrames, setCorking } from './wire.js';
import { percentile, serveWindows, sleep, windowEnd, windowStart } from './window.js';

/** What one run prints (one JSON line). */
export interface LoadReport {
  /** Tasks whose result arrived inside the measuring window. */
  tasks: number;
  seconds: number;
  tasksPerSec: number;
  /** Latency from sending add_task to receiving its result, in ms. */
  p50: number;
  p99: number;
  /** Bytes of all frames sent and received by this process in the window, per second. */
  bytesPerSec: number;
  /** CPU time of this process over the window, in % of one core. */
  cpuPct: number;
  /** Tasks that ended otherwise than with `result`, or were rejected. */
  errors: number;
  /** Results that carried binary frames, and results in which media came back as base64 (media runs). */
  resultsWithAttachments: number;
  base64Results: number;
  /** Tasks ended since the process started, warm-up and drain included (to scale a profile). */
  endedSinceStart: number;
}

const flags = parseFlags(process.argv.slice(2));
// Fewer system calls here leave more of the 2 cores to the server under test (wire.ts).
setCorking(true);
// Several URLs (comma-separated, the hubs of a cluster): connection i goes to URL i mod n.
const urls = (flags.get('url') ?? '').split(',').filter(Boolean);
if (urls.length === 0) {
  process.stderr.write('load: --url is required\n');
  process.exit(2);
}
const serviceName = flags.get('service') ?? 'bench_echo';
const keys = flags.has('keys');
const webhook = flags.get('webhook');
/** What `--keys` and `--webhook` add to each add_task (before its closing brace). */
const extra = (ref: string) => (keys ? `,"idempotency_key":"k-${process.pid}-${ref}"` : '') + (webhook ? `,"webhook":${JSON.stringify(webhook)}` : '');

function connect(onMessage: ConstructorParameters<typeof Frames>[0], url = urls[0]): Promise<{ ws: WebSocket; frames: Frames }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    const frames = new Frames(onMessage);
    ws.on('message', (data, isBinary) => frames.push(data, isBinary));
    ws.on('open', () => resolve({ ws, frames }));
    ws.on('error', reject);
  });
}

async function runIdle(count: number): Promise<void> {
  const batch = numFlag(flags, 'batch', 200);
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i += batch) {
    const n = Math.min(batch, count - i);
    await Promise.all(
      Array.from(
        { length: n },
        () =>
          new Promise<void>((resolve, reject) => {
            let seen = false;
            connect((msg) => {
              if (msg.type === 'services' && !seen) {
                seen = true;
                resolve();
              }
            }).then(({ ws }) => {
              sockets.push(ws);
              ws.on('close', () => {
                if (!seen) reject(new Error('closed before services'));
              });
            }, reject);
          }),
      ),
    );
  }
  process.stdout.write(`ready ${count}\n`);
  const stop = () => {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function runLoad(): Promise<void> {
  const inflight = numFlag(flags, 'inflight', 64);
  const nconn = Math.max(1, Math.min(numFlag(flags, 'connections', 1), inflight));
  const mediaBytes = numFlag(flags, 'media', 0);
  const media = mediaBytes > 0 ? Buffer.alloc(mediaBytes, 0x5a) : null;

  let serviceId = -1;
  let onService: () => void = () => {};
  const serviceSeen = new Promise<void>((r) => (onService = r));
  // Per task: send time, first by ref (until `accepted`), then by task_id.
  const byRef = new Map<string, number>();
  const byTask = new Map<string, number>();
  let refCounter = 0;
  let measuring = false;
  let stopping = false;
  let outstanding = 0;
  let completed = 0;
  /** Tasks ended since the process started, warm-up and drain included. */
  let ended = 0;
  let errors = 0;
  let withAttachments = 0;
  let base64Results = 0;
  let bytesOut = 0;
  const latencies: number[] = [];
  let onDrained: () => void = () => {};

  const links: Array<{ ws: WebSocket; frames: Frames }> = [];

  const sendTask = (ws: WebSocket) => {
    const ref = String(++refCounter);
    let text: string;
    if (media) {
      text = `{"type":"add_task","ref":"${ref}","service_id":${serviceId},"args":{"text":"m","blob":{"$attachment":0,"mime":"application/octet-stream","name":"blob.bin"}},"attachments":1}`;
    } else {
      text = `{"type":"add_task","ref":"${ref}","service_id":${serviceId},"args":{"text":"hello"}${extra(ref)}}`;
    }
    byRef.set(ref, performance.now());
    outstanding++;
    const bytes = sendFrames(ws, text, media ? [media] : null);
    if (measuring) bytesOut += bytes;
  };

  const finish = (ws: WebSocket, taskId: string, ok: boolean) => {
    const t0 = byTask.get(taskId);
    if (t0 === undefined) return;
    byTask.delete(taskId);
    outstanding--;
    ended++;
    if (measuring) {
      if (ok) {
        completed++;
        latencies.push(performance.now() - t0);
      } else {
        errors++;
      }
    }
    if (!stopping) sendTask(ws);
    else if (outstanding === 0) onDrained();
  };

  for (let i = 0; i < nconn; i++) {
    const link = await connect(
      (msg, _text, binaries) => {
        switch (msg.type) {
          case 'services':
            for (const s of msg.services) {
              if (s.service_name === serviceName) {
                serviceId = s.service_id;
                onService();
              }
            }
            break;
          case 'accepted': {
            const t0 = byRef.get(msg.ref);
            if (t0 !== undefined) {
              byRef.delete(msg.ref);
              byTask.set(msg.task_id, t0);
            }
            break;
          }
          case 'result':
            if (media && measuring) {
              if (binaries.length > 0) withAttachments++;
              else if (typeof msg.result?.blob?.data === 'string') base64Results++;
            }
            finish(link.ws, msg.task_id, true);
            break;
          case 'failed':
          case 'canceled':
            finish(link.ws, msg.task_id, false);
            break;
          case 'rejected': {
            if (byRef.delete(msg.ref)) {
              outstanding--;
              if (measuring) errors++;
              if (!stopping) setTimeout(() => sendTask(link.ws), 10);
            }
            break;
          }
        }
      },
      urls[i % urls.length],
    );
    link.ws.on('error', (err) => process.stderr.write(`load: ${err.message}\n`));
    links.push(link);
  }
  await Promise.race([
    serviceSeen,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`service ${serviceName} did not appear within 15 s`)), 15_000)),
  ]);

  const runWindow = async (warmup: number, duration: number): Promise<LoadReport> => {
    completed = errors = withAttachments = base64Results = bytesOut = 0;
    latencies.length = 0;
    stopping = false;
    for (let i = 0; i < inflight; i++) sendTask(links[i % nconn].ws);
    await sleep(warmup);

    measuring = true;
    windowStart();
    const bytesIn0 = links.reduce((s, l) => s + l.frames.bytesIn, 0);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await sleep(duration);
    measuring = false;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    windowEnd();
    const bytesIn = links.reduce((s, l) => s + l.frames.bytesIn, 0) - bytesIn0;

    stopping = true;
    if (outstanding > 0) {
      await Promise.race([new Promise<void>((r) => (onDrained = r)), sleep(10_000)]);
    }
    const sorted = Float64Array.from(latencies).sort();
    return {
      tasks: completed,
      seconds,
      tasksPerSec: completed / seconds,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      bytesPerSec: (bytesIn + bytesOut) / seconds,
      cpuPct: ((cpu.user + cpu.system) / 1000 / (seconds * 1000)) * 100,
      errors,
      resultsWithAttachments: withAttachments,
      base64Results,
      endedSinceStart: ended,
    };
  };
  await serveWindows(flags, runWindow);
  for (const l of links) l.ws.close();
  process.exit(0);
}

const idle = flags.get('idle');
(idle ? runIdle(Number(idle)) : runLoad()).catch((err: Error) => {
  process.stderr.write(`load: ${err.message}\n`);
  process.exit(1);
});
