/**
 * The bench worker: opens `--connections` WebSockets to a hub's (or the baseline's) `/worker`,
 * says hello with `--concurrency`, and answers every task with its args as the result, binary
 * attachments sent back as binary frames. Prints `ready <n>` once every connection is welcomed,
 * and on SIGTERM one JSON line with what it saw (so the harness can check that media came as
 * attachments, never as base64).
 *
 *   node --import tsx bench/echo-worker.ts --url ws://127.0.0.1:8080/worker \
 *     [--connections 1] [--concurrency 64] [--service bench_echo] [--batch 100]
 */
import { WebSocket } from 'ws';
import { echoService, Frames, numFlag, parseFlags, sendFrames, setCorking } from './wire.js';

const flags = parseFlags(process.argv.slice(2));
// Fewer system calls here leave more of the 2 cores to the server under test (wire.ts).
setCorking(true);
// Several URLs (comma-separated, the hubs of a cluster): connection i goes to URL i mod n.
const urls = (flags.get('url') ?? '').split(',').filter(Boolean);
if (urls.length === 0) {
  process.stderr.write('echo-worker: --url is required\n');
  process.exit(2);
}
const connections = numFlag(flags, 'connections', 1);
const concurrency = numFlag(flags, 'concurrency', 64);
const service = flags.get('service') ?? 'bench_echo';
/** How many handshakes run at once while opening many connections. */
const batch = numFlag(flags, 'batch', 100);

const stats = { tasks: 0, withAttachments: 0, attachmentBytes: 0, base64Strings: 0, errors: 0, closed: 0 };
const sockets: WebSocket[] = [];

/** True when some string in `v` looks like inlined media (base64 or a data: URL). */
function hasBase64(v: unknown, depth = 0): boolean {
  if (typeof v === 'string') return v.length >= 1024 && /^(data:|[A-Za-z0-9+/=]+$)/.test(v.slice(0, 1024));
  if (typeof v !== 'object' || v === null || depth > 8) return false;
  for (const x of Object.values(v)) if (hasBase64(x, depth + 1)) return true;
  return false;
}

function open(instance: string, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    sockets.push(ws);
    let welcomed = false;
    const frames = new Frames((msg, _text, binaries) => {
      if (msg.type === 'task') {
        stats.tasks++;
        if (binaries.length > 0) {
          stats.withAttachments++;
          for (const b of binaries) stats.attachmentBytes += b.length;
        } else if (hasBase64(msg.args)) {
          stats.base64Strings++;
        }
        const reply: Record<string, unknown> = { type: 'result', task_id: msg.task_id, result: msg.args };
        // The args' `$attachment` refs index the task's frames; sending the same frames keeps them valid.
        if (binaries.length > 0) reply.attachments = binaries.length;
        sendFrames(ws, JSON.stringify(reply), binaries);
      } else if (msg.type === 'welcome') {
        welcomed = true;
        resolve();
      } else if (msg.type === 'error') {
        stats.errors++;
        if (!welcomed) reject(new Error(`refused: ${msg.code} ${msg.message}`));
      }
    });
    ws.on('message', (data, isBinary) => frames.push(data, isBinary));
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'hello', protocol: 1, me: echoService(service), concurrency, instance }));
    });
    ws.on('error', (err) => {
      if (!welcomed) reject(err);
    });
    ws.on('close', () => {
      stats.closed++;
      if (!welcomed) reject(new Error('closed before welcome'));
    });
  });
}

async function main(): Promise<void> {
  for (let i = 0; i < connections; i += batch) {
    const n = Math.min(batch, connections - i);
    await Promise.all(Array.from({ length: n }, (_, j) => open(`bench-${process.pid}-${i + j}`, urls[(i + j) % urls.length])));
  }
  process.stdout.write(`ready ${connections}\n`);
}

function stop(): void {
  process.stdout.write(`${JSON.stringify({ stats })}\n`);
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

main().catch((err: Error) => {
  process.stderr.write(`echo-worker: ${err.message}\n`);
  process.exit(1);
});
