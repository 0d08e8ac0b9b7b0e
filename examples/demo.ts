/**
 * `npm run demo`: the hub on the embedded SQLite default with the example workers connected, and
 * commands a newcomer can paste. Ctrl-C stops everything.
 *
 *   npm run demo [-- --port 8080]        (--port 0 picks a free port)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({ options: { port: { type: 'string', default: '8080' }, db: { type: 'string', default: 'sqlite:./data/hub.sqlite' } } });
const children: ChildProcess[] = [];

/** Starts a child; `line` is its first stdout line saying it is up (its log lines are passed over). */
function start(args: string[], env: Record<string, string> = {}): { child: ChildProcess; line: Promise<string> } {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, HUB_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const line = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^.*(?:listening on|connected to).*$/m.exec(out);
      if (m) resolve(m[0]);
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
  return { child, line };
}

let stopping = false;
async function stop(code = 0): Promise<never> {
  if (!stopping) {
    stopping = true;
    const exits = children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => new Promise((r) => c.once('exit', r)));
    // Workers first, so that they drain while the hub still listens.
    for (const c of children.slice(1)) c.kill('SIGTERM');
    await Promise.race([Promise.all(exits.slice(1)), new Promise((r) => setTimeout(r, 5000))]);
    children[0]?.kill('SIGTERM');
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 12000))]);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

try {
  const hub = start(['server/bin/utils-hub.js', 'start', '--port', values.port!, '--db', values.db!]);
  const listening = await hub.line;
  const url = /(http:\/\/\S+)/.exec(listening)![1];
  console.log(listening);
  const ws = `${url.replace(/^http/, 'ws')}/worker`;
  const workers = ['image', 'echo', 'sleep'].map((name) => start(['--import', 'tsx', 'examples/run.ts', name, '--hub', ws, '--concurrency', '2']));
  for (const w of workers) console.log(await w.line);

  const list = (await (await fetch(`${url}/services_list`)).json()) as Array<{ service_id: number; service_name: string }>;
  const id = (name: string) => list.find((s) => s.service_name === name)?.service_id ?? 1;
  const image = id('image_transform_service');
  console.log(`
Try it (from this folder, in another terminal):

  curl -s ${url}/services_list
  curl -s ${url}/service_info/${image}
  curl -s -X POST ${url}/add_task -H 'content-type: application/json' \\
    -d "{\\"service_id\\": ${image}, \\"args\\": {\\"image\\": \\"data:image/png;base64,$(base64 -w0 examples/assets/sample.png)\\", \\"angle\\": 90}}"
  curl -s -X POST ${url}/add_task -H 'content-type: application/json' \\
    -d '{"service_id": ${id('echo')}, "args": {"value": {"hello": "world"}}}'
  curl -s -X POST '${url}/add_task?wait=false' -H 'content-type: application/json' \\
    -d '{"service_id": ${id('sleep')}, "args": {"seconds": 5}}'

The dashboard and playground: ${url}/   The API reference: ${url}/docs
A chat in the terminal: npm run example -- chat --hub ${url}
Ctrl-C stops the demo.`);
} catch (err) {
  console.error(`demo: ${(err as Error).message}`);
  await stop(1);
}
