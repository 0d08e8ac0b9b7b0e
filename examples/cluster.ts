/**
 * `npm run cluster -- --hubs 3`: a cluster of hubs on this machine (docs/cluster.md), on
 * consecutive ports from `--port`, sharing the local MariaDB (database `--db`, created when
 * missing) and NATS (`--broker`), with the example workers (`echo`, `sleep`, `image`) spread over
 * them. Ctrl-C (SIGINT or SIGTERM) stops the workers, then the hubs, and exits 0.
 *
 *   npm run cluster [-- --hubs 3] [--port 8080] [--db mysql://root@127.0.0.1:3306/utils_hub_cluster]
 *                   [--broker nats://127.0.0.1:4222] [--cluster utils-hub]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const USAGE = 'usage: npm run cluster [-- --hubs 3] [--port 8080] [--db mysql://...] [--broker nats://127.0.0.1:4222] [--cluster utils-hub]';
const WORKERS = ['echo', 'sleep', 'image'] as const;

let opts: { hubs: number; port: number; db: string; broker: string; cluster: string };
try {
  const { values } = parseArgs({
    options: {
      hubs: { type: 'string', default: '3' },
      port: { type: 'string', default: '8080' },
      db: { type: 'string', default: 'mysql://root@127.0.0.1:3306/utils_hub_cluster' },
      broker: { type: 'string', default: 'nats://127.0.0.1:4222' },
      cluster: { type: 'string', default: 'utils-hub' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  opts = { hubs: Number(values.hubs), port: Number(values.port), db: values.db, broker: values.broker, cluster: values.cluster };
  if (!Number.isInteger(opts.hubs) || opts.hubs < 1 || opts.hubs > 16) throw new Error('--hubs: expected 1 to 16');
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port + opts.hubs > 65535) throw new Error('--port: expected a port');
} catch (err) {
  console.error(`cluster: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}

const children: Array<{ name: string; child: ChildProcess; exited: Promise<void> }> = [];
let stopping = false;

/** Starts a child; resolves with its first line saying it is up, prefixing its other lines. */
function start(name: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, HUB_LOG_LEVEL: process.env.HUB_LOG_LEVEL ?? 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  children.push({ name, child, exited });
  createInterface({ input: child.stderr! }).on('line', (line) => process.stderr.write(`[${name}] ${line}\n`));
  child.once('exit', (code, signal) => {
    if (!stopping) console.error(`cluster: ${name} exited (${signal ?? code})`);
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (/^[^{\s]\S* (?:listening on|connected to) /.test(line)) resolve(line);
      else process.stdout.write(`[${name}] ${line}\n`);
    });
    child.once('exit', (code, signal) => reject(new Error(`${name} exited (${signal ?? code}) before it was up`)));
  });
}

async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    const alive = children.filter((c) => c.child.exitCode === null && c.child.signalCode === null);
    for (const c of alive.filter((c) => !c.name.startsWith('hub'))) c.child.kill('SIGTERM');
    await Promise.race([Promise.all(children.filter((c) => !c.name.startsWith('hub')).map((c) => c.exited)), new Promise((r) => setTimeout(r, 11_000))]);
    for (const c of children.filter((c) => c.name.startsWith('hub'))) c.child.kill('SIGTERM');
    await Promise.race([Promise.all(children.map((c) => c.exited)), new Promise((r) => setTimeout(r, 12_000))]);
    for (const c of children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  }
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

try {
  const url = new URL(opts.db);
  const name = url.pathname.slice(1);
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`--db: expected a database name of letters, digits and _, got ${JSON.stringify(name)}`);
  url.pathname = '/';
  const admin = await mysql.createConnection({ uri: url.toString(), connectTimeout: 3000 });
  await admin.query(`CREATE DATABASE IF NOT EXISTS \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  await admin.end();

  const env = { HUB_BROKER: opts.broker, HUB_CLUSTER: opts.cluster, HUB_DB: opts.db };
  const hubArgs = (i: number) => [`${ROOT}server/bin/utils-hub.js`, 'start', '--port', String(opts.port + i)];
  // The first hub migrates the database; the others start once it is up.
  const urls = [(await start('hub-1', hubArgs(0), { ...env, HUB_ID: 'hub-1' })).replace(/^.* listening on /, '')];
  urls.push(
    ...(await Promise.all(Array.from({ length: opts.hubs - 1 }, (_, i) => start(`hub-${i + 2}`, hubArgs(i + 1), { ...env, HUB_ID: `hub-${i + 2}` })))).map(
      (l) => l.replace(/^.* listening on /, ''),
    ),
  );
  await Promise.all(
    WORKERS.map((w, i) => {
      const hub = urls[i % urls.length];
      return start(`${w}@hub-${(i % urls.length) + 1}`, ['--import', 'tsx', `${ROOT}examples/run.ts`, w, '--hub', `${hub.replace(/^http/, 'ws')}/worker`]);
    }),
  );
  console.log(`cluster "${opts.cluster}" up: ${urls.length} hubs on ${opts.db} and ${opts.broker}`);
  for (const [i, u] of urls.entries()) console.log(`  hub-${i + 1}: ${u}  (page ${u}/, ${u}/services_list)`);
  console.log(`workers: ${WORKERS.map((w, i) => `${w} on hub-${(i % urls.length) + 1}`).join(', ')}`);
  console.log(
    `try: curl -s -X POST ${urls[urls.length - 1]}/add_task -H 'content-type: application/json' -d '{"service_id": <echo's id>, "args": {"value": "hi"}}'`,
  );
  console.log('Ctrl-C stops everything.');
} catch (err) {
  console.error(`cluster: ${(err as Error).message}`);
  await stop(1);
}
