/**
 * `npm run demo`: the hub on the embedded SQLite default with the example workers (`image`,
 * `echo`, `sleep`) connected, and commands a newcomer can paste. Ctrl-C (SIGINT or SIGTERM) stops
 * the workers, then the hub, and exits 0.
 *
 *   npm run demo [-- --port 8080] [--db sqlite:./data/hub.sqlite]    (--port 0 picks a free port)
 *
 * The children's stdout is read for their "up" line; their other lines come through prefixed with
 * their name (the hub's JSON log lines as `level: message`), and the hub logs at `warn` unless
 * HUB_LOG_LEVEL says otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const USAGE = 'usage: npm run demo [-- --port 8080] [--db sqlite:./data/hub.sqlite]';
/** The example workers and the service name each registers. */
const WORKERS = { image: 'image_transform_service', echo: 'echo', sleep: 'sleep' } as const;
/** How long the hub and the workers get to come up and be listed, in ms. */
const START_TIMEOUT_MS = 30_000;

let options: { port: string; db: string };
try {
  const { values } = parseArgs({
    options: { port: { type: 'string', default: '8080' }, db: { type: 'string', default: 'sqlite:./data/hub.sqlite' }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  options = { port: values.port, db: values.db };
} catch (err) {
  console.error(`demo: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}

interface Child {
  name: string;
  child: ChildProcess;
  /** Resolves with the child's first stdout line saying it is up. */
  up: Promise<string>;
  exited: Promise<void>;
}
const children: Child[] = [];
let stopping: Promise<never> | undefined;

const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** The hub's pino JSON log line as `warn: message`; any other line as it is. */
function readable(line: string): string {
  try {
    const { level, msg, err } = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
    if (typeof msg === 'string') return `${LEVELS[level ?? 30] ?? level}: ${msg}${err?.message ? ` (${err.message})` : ''}`;
  } catch {
    // not JSON: printed as it is
  }
  return line;
}

function start(name: string, args: string[]): Child {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, HUB_LOG_LEVEL: process.env.HUB_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  createInterface({ input: child.stderr! }).on('line', (line) => process.stderr.write(`[${name}] ${readable(line)}\n`));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const up = new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      // `utils-hub listening on URL`, `NAME connected to URL`; not a JSON log line that says so.
      if (/^[^{\s]\S* (?:listening on|connected to) /.test(line)) resolve(line);
      else process.stdout.write(`[${name}] ${readable(line)}\n`);
    });
    child.once('exit', (code, signal) => reject(new Error(`${name} exited (${signal ?? code}) before it was up`)));
  });
  up.catch(() => {}); // read by the caller; an early exit must not be an unhandled rejection
  // A child that dies while the demo runs ends the demo: half a demo is confusing.
  child.once('exit', (code, signal) => {
    if (!stopping) {
      console.error(`demo: ${name} exited (${signal ?? code}), stopping`);
      void stop(1);
    }
  });
  const c = { name, child, up, exited };
  children.push(c);
  return c;
}

const within = (ms: number, p: Promise<unknown>) => Promise.race([p, new Promise((r) => setTimeout(r, ms).unref())]);

/** Stops the workers (they drain while the hub still listens), then the hub; safe to call twice. */
function stop(code: number): Promise<never> {
  stopping ??= (async () => {
    const [hub, ...workers] = children;
    const alive = (c: Child) => c.child.exitCode === null && c.child.signalCode === null;
    for (const w of workers) if (alive(w)) w.child.kill('SIGTERM');
    await within(11_000, Promise.all(workers.map((w) => w.exited)));
    if (hub && alive(hub)) hub.child.kill('SIGTERM');
    await within(12_000, hub?.exited ?? Promise.resolve());
    for (const c of children) if (alive(c)) c.child.kill('SIGKILL');
    await within(1_000, Promise.all(children.map((c) => c.exited)));
    process.exit(code);
  })();
  return stopping;
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

async function listed(url: string): Promise<Map<string, number>> {
  const end = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const ids = new Map<string, number>();
    try {
      const list = (await (await fetch(`${url}/services_list`)).json()) as Array<{ service_id: number; service_name: string }>;
      for (const s of list) ids.set(s.service_name, s.service_id);
    } catch {
      // the hub may not answer yet; try again below
    }
    if (Object.values(WORKERS).every((n) => ids.has(n))) return ids;
    if (Date.now() > end)
      throw new Error(
        `not listed in /services_list after ${START_TIMEOUT_MS} ms: ${Object.values(WORKERS)
          .filter((n) => !ids.has(n))
          .join(', ')}`,
      );
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  const hub = start('hub', ['server/bin/utils-hub.js', 'start', '--port', options.port, '--db', options.db]);
  const listening = await hub.up;
  const url = /(http:\/\/\S+)/.exec(listening)![1]!;
  console.log(listening);
  const ws = `${url.replace(/^http/, 'ws')}/worker`;
  const workers = Object.keys(WORKERS).map((name) => start(name, ['--import', 'tsx', 'examples/run.ts', name, '--hub', ws, '--concurrency', '2']));
  for (const w of workers) console.log(await w.up);
  const ids = await listed(url);
  const id = (name: string) => ids.get(name)!;
  const image = id(WORKERS.image);

  console.log(`
Try it (from this folder, in another terminal):

  curl -s ${url}/services_list
  curl -s ${url}/service_info/${image}
  curl -s -X POST ${url}/add_task -H 'content-type: application/json' \\
    -d "{\\"service_id\\": ${image}, \\"args\\": {\\"image\\": \\"data:image/png;base64,$(base64 -w0 examples/assets/sample.png)\\", \\"angle\\": 90}}"
  curl -s -X POST ${url}/add_task -H 'content-type: application/json' \\
    -d '{"service_id": ${id(WORKERS.echo)}, "args": {"value": {"hello": "world"}}}'
  curl -s -X POST '${url}/add_task?wait=false' -H 'content-type: application/json' \\
    -d '{"service_id": ${id(WORKERS.sleep)}, "args": {"seconds": 5}}'
  curl -s ${url}/tasks/TASK_ID        (the task_id the line above printed)

The rotated picture comes back as base64 in result.data (64x48 in, 48x64 out).
The dashboard and playground: ${url}/   The API reference: ${url}/docs
A chat in the terminal: npm run example -- chat --hub ${url}
Ctrl-C stops the demo.`);
}

main().catch((err: Error) => {
  // A Ctrl-C during start makes children exit early; that is a stop, not a failure.
  if (stopping) return;
  console.error(`demo: ${err.message}`);
  void stop(1);
});
