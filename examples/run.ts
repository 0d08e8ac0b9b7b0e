/**
 * Runs one example worker, dialing a hub or listening for a hub that dials it:
 *
 *   node --import tsx examples/run.ts NAME --hub ws://HOST:PORT/worker[,ws://...] [--token TOKEN]
 *   node --import tsx examples/run.ts NAME --listen PORT [--host H] [--secret S]
 *
 * with `[--concurrency N] [--instance NAME]` either way (`npm run example -- NAME ...`). NAME is
 * `image`, `echo` or `sleep`. The token may also come from HUB_TOKEN. Prints one line on stdout
 * once connected or listening; problems and reconnects go to stderr. SIGINT or SIGTERM drains
 * the worker (`service.close()`) and exits 0.
 */
import { parseArgs } from 'node:util';
import type { Service } from '@utils-hub/worker-client';

// `chat` is the terminal chat client (examples/chat.ts), not a worker: it takes flags of its own.
if (process.argv[2] === 'chat') {
  const { main } = await import('./chat.js');
  process.exit(await main(process.argv.slice(3)));
}

const SERVICES: Record<string, () => Promise<Service>> = {
  image: async () => (await import('./services/image.js')).imageService(),
  echo: async () => (await import('./services/echo.js')).echoService(),
  sleep: async () => (await import('./services/sleep.js')).sleepService(),
};

const USAGE = `usage: run.ts NAME (--hub ws://HOST:PORT/worker [--token TOKEN] | --listen PORT [--host H] [--secret S])
       [--concurrency N] [--instance NAME]
NAME: ${Object.keys(SERVICES).join(', ')}
   or: run.ts chat --hub http://HOST:PORT [--key KEY] [--out DIR]`;

function fail(problem: string): never {
  process.stderr.write(`${problem}\n${USAGE}\n`);
  process.exit(2);
}

function wholeNumber(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) fail(`--${flag} must be a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}

let parsed: ReturnType<typeof parse>;
function parse() {
  return parseArgs({
    allowPositionals: true,
    options: {
      hub: { type: 'string' },
      token: { type: 'string' },
      listen: { type: 'string' },
      host: { type: 'string' },
      secret: { type: 'string' },
      concurrency: { type: 'string' },
      instance: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
try {
  parsed = parse();
} catch (err) {
  fail((err as Error).message);
}
const { values: flags, positionals } = parsed;
if (flags.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const name = positionals[0];
if (!name || positionals.length > 1) fail(name ? `one service at a time, got ${positionals.join(' ')}` : 'which service?');
const load = Object.hasOwn(SERVICES, name) ? SERVICES[name] : fail(`unknown service ${JSON.stringify(name)}`);
if ((flags.hub === undefined) === (flags.listen === undefined)) fail('give either --hub URL or --listen PORT');
if (flags.hub !== undefined && (flags.host !== undefined || flags.secret !== undefined)) fail('--host and --secret go with --listen');
if (flags.listen !== undefined && flags.token !== undefined) fail('--token goes with --hub');

const service = await load();
const common = { concurrency: wholeNumber('concurrency', flags.concurrency), instance: flags.instance };

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void service.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);

let welcomed = false;
service.on('disconnected', (code) => {
  if (!stopping) process.stderr.write(`${service.name}: connection closed (${code}), redialing\n`);
});
service.on('connected', () => {
  if (welcomed && flags.hub !== undefined) process.stderr.write(`${service.name}: connected again\n`);
  welcomed = true;
});

try {
  if (flags.hub !== undefined) {
    const token = flags.token ?? process.env.HUB_TOKEN;
    // Several hubs of a cluster, comma-separated: the SDK moves to the next when one is lost.
    await service.connect(flags.hub.split(','), { ...common, token: token || undefined });
    process.stdout.write(`${service.name} connected to ${flags.hub}\n`);
  } else {
    const port = wholeNumber('listen', flags.listen)!;
    const addr = await service.listen({ ...common, port, host: flags.host, secret: flags.secret });
    process.stdout.write(`${service.name} listening on ${addr.url}\n`);
  }
} catch (err) {
  // A signal during the first dial rejects connect(); that is a normal stop.
  if (!stopping) {
    process.stderr.write(`${service.name}: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
