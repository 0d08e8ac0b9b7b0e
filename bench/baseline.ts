/**
 * The yardstick: the least work that honours the hub's client and worker contract over
 * WebSocket (docs/protocol.md 5.1, 5.2 and 7), with none of the hub's duties: no validation, no
 * storage, no timeouts, no retries, no heartbeat. What the hub costs beyond it is what its
 * guarantees cost.
 *
 * - `/worker`: `hello` gets `welcome` (services are numbered by name in order of first hello).
 * - `/client`: `services` at once and again when the list changes; `add_task` gets `accepted`,
 *   then `started` when a connection takes it, then `result` or `failed`, with `seq`.
 * - Dispatch: the connection of the service with the fewest tasks in flight below its
 *   concurrency, a tie to the one assigned least recently; else a FIFO queue per service.
 * - Attachments are forwarded as the same binary frames; the `$attachment` refs inside args and
 *   results are passed on as they are, since the frames keep their order.
 * - Frames to one peer within one tick leave in one write (wire.ts `setCorking`).
 *
 *   node --import tsx bench/baseline.ts [--host 127.0.0.1] [--port 0] [--naive]
 * (`--naive`: one write system call per frame instead of one per peer per tick; see wire.ts.)
 * prints `baseline listening on http://HOST:PORT`.
 */
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';
import { Frames, numFlag, parseFlags, sendFrames, setCorking } from './wire.js';

interface WorkerConn {
  ws: WebSocket;
  serviceId: number;
  concurrency: number;
  inFlight: number;
  /** When it was last given a task (a counter), for the least-recently-assigned tie break. */
  lastAssigned: number;
}

interface Task {
  id: string;
  serviceId: number;
  args: unknown;
  binaries: Buffer[];
  client: WebSocket;
  worker: WorkerConn | null;
}

interface Service {
  id: number;
  name: string;
  conns: WorkerConn[];
  queue: Task[];
}

const flags = parseFlags(process.argv.slice(2));
const host = flags.get('host') ?? '127.0.0.1';
const port = numFlag(flags, 'port', 0);
// The least work includes the fewest system calls: one write per peer per tick (wire.ts).
// `--naive` writes each frame at once, as a plain `ws.send` does, to show what that costs.
setCorking(!flags.has('naive'));

const servicesByName = new Map<string, Service>();
const servicesById = new Map<number, Service>();
const tasks = new Map<string, Task>();
const clients = new Set<WebSocket>();
let taskCounter = 0;
let assignCounter = 0;
let connCounter = 0;

function servicesMessage(): string {
  const list = [...servicesById.values()].filter((s) => s.conns.length > 0).map((s) => ({ service_id: s.id, service_name: s.name }));
  return JSON.stringify({ type: 'services', services: list });
}

function announceServices(): void {
  const text = servicesMessage();
  for (const c of clients) sendFrames(c, text);
}

/** The connection with the fewest tasks in flight below its concurrency; ties to the least recently assigned. */
function pick(service: Service): WorkerConn | null {
  let best: WorkerConn | null = null;
  for (const c of service.conns) {
    if (c.inFlight >= c.concurrency) continue;
    if (!best || c.inFlight < best.inFlight || (c.inFlight === best.inFlight && c.lastAssigned < best.lastAssigned)) best = c;
  }
  return best;
}

function assign(task: Task, conn: WorkerConn): void {
  conn.inFlight++;
  conn.lastAssigned = ++assignCounter;
  task.worker = conn;
  const msg: Record<string, unknown> = { type: 'task', task_id: task.id, args: task.args, timeout_ms: 300_000, attempt: 1 };
  if (task.binaries.length > 0) msg.attachments = task.binaries.length;
  sendFrames(conn.ws, JSON.stringify(msg), task.binaries);
  task.binaries = [];
  if (task.client.readyState === task.client.OPEN) {
    sendFrames(task.client, JSON.stringify({ type: 'started', task_id: task.id, seq: 1, attempt: 1 }));
  }
}

function drainQueue(service: Service): void {
  while (service.queue.length > 0) {
    const conn = pick(service);
    if (!conn) return;
    assign(service.queue.shift()!, conn);
  }
}

function serveClient(ws: WebSocket): void {
  clients.add(ws);
  const frames = new Frames((msg, _text, binaries) => {
    if (msg.type !== 'add_task') return;
    const service = servicesById.get(msg.service_id);
    if (!service) {
      sendFrames(ws, JSON.stringify({ type: 'rejected', ref: msg.ref, error: { code: 'service_not_found', message: 'no service has that id' } }));
      return;
    }
    const task: Task = { id: `t${++taskCounter}`, serviceId: service.id, args: msg.args, binaries, client: ws, worker: null };
    tasks.set(task.id, task);
    const conn = pick(service);
    sendFrames(ws, JSON.stringify({ type: 'accepted', ref: msg.ref, task_id: task.id, position: conn ? 0 : service.queue.length }));
    if (conn) assign(task, conn);
    else service.queue.push(task);
  });
  ws.on('message', (data, isBinary) => frames.push(data, isBinary));
  ws.on('error', () => {});
  ws.on('close', () => clients.delete(ws));
  sendFrames(ws, servicesMessage());
}

function serveWorker(ws: WebSocket): void {
  let conn: WorkerConn | null = null;
  const frames = new Frames((msg, _text, binaries) => {
    if (msg.type === 'hello') {
      if (conn) return;
      const name = String(msg.me?.name);
      let service = servicesByName.get(name);
      if (!service) {
        service = { id: servicesByName.size + 1, name, conns: [], queue: [] };
        servicesByName.set(name, service);
        servicesById.set(service.id, service);
      }
      conn = { ws, serviceId: service.id, concurrency: msg.concurrency ?? 1, inFlight: 0, lastAssigned: 0 };
      service.conns.push(conn);
      sendFrames(ws, JSON.stringify({ type: 'welcome', service_id: service.id, connection_id: `c${++connCounter}`, heartbeat_ms: 15_000 }));
      if (service.conns.length === 1) announceServices();
      drainQueue(service);
      return;
    }
    if (msg.type !== 'result' && msg.type !== 'failed') return;
    const task = tasks.get(msg.task_id);
    if (!conn || !task || task.worker !== conn) return;
    tasks.delete(task.id);
    conn.inFlight--;
    if (task.client.readyState === task.client.OPEN) {
      const out: Record<string, unknown> =
        msg.type === 'result'
          ? { type: 'result', task_id: task.id, seq: 2, result: msg.result }
          : { type: 'failed', task_id: task.id, seq: 2, error: { code: 'task_failed', message: 'the worker failed', worker_error: msg.error } };
      if (binaries.length > 0) out.attachments = binaries.length;
      sendFrames(task.client, JSON.stringify(out), binaries);
    }
    drainQueue(servicesById.get(conn.serviceId)!);
  });
  ws.on('message', (data, isBinary) => frames.push(data, isBinary));
  ws.on('error', () => {});
  ws.on('close', () => {
    if (!conn) return;
    const service = servicesById.get(conn.serviceId)!;
    service.conns = service.conns.filter((c) => c !== conn);
    // Its tasks are lost with it: the baseline keeps no attempts.
    if (service.conns.length === 0) announceServices();
  });
}

const server = createServer((_req, res) => {
  res.writeHead(404).end();
});
const wssOptions = { noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 } as const;
const clientWss = new WebSocketServer(wssOptions);
const workerWss = new WebSocketServer(wssOptions);
server.on('upgrade', (req, socket, head) => {
  const path = (req.url ?? '').split('?')[0];
  const wss = path === '/client' ? clientWss : path === '/worker' ? workerWss : null;
  if (!wss) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => (wss === clientWss ? serveClient(ws) : serveWorker(ws)));
});
server.listen(port, host, () => {
  const addr = server.address();
  const p = typeof addr === 'object' && addr ? addr.port : port;
  process.stdout.write(`baseline listening on http://${host}:${p}\n`);
});

const stop = () => {
  for (const wss of [clientWss, workerWss]) for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
