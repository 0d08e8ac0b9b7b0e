/**
 * `utils-hub start`: checks the options, migrates, listens, and stops gracefully on SIGINT or
 * SIGTERM (docs/protocol.md section 9).
 */
import { parseArgs } from 'node:util';
import type { FastifyInstance, FastifyServerOptions } from 'fastify';
import pretty from 'pino-pretty';
import { backoffDelay } from '@utils-hub/protocol';
import { buildApp } from './app.js';
import { ConfigError, loadStartConfig, startFlagOptions, startHelp } from './config.js';

export async function runStart(argv: string[]): Promise<void> {
  // biome-ignore lint/suspicious/noImplicitAnyLet: typed by parseArgs's result, assigned in the try below
  let flags;
  try {
    flags = parseArgs({
      args: argv,
      options: {
        ...startFlagOptions(),
        'no-wait': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`utils-hub start: ${(err as Error).message}\n${startHelp()}\n`);
    process.exitCode = 2;
    return;
  }
  if (flags.help) {
    process.stdout.write(`${startHelp()}\n`);
    return;
  }
  let config: ReturnType<typeof loadStartConfig>;
  try {
    config = loadStartConfig(flags);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`utils-hub start: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }

  let app: FastifyInstance | null = null;
  let stopping = false;
  for (let attempt = 0; !app; attempt++) {
    try {
      app = await buildApp({ ...config, logger: loggerFor(config.logLevel, process.stdout) });
    } catch (err) {
      const msg = (err as Error).message;
      if (flags['no-wait'] || stopping) {
        process.stderr.write(`utils-hub start: cannot open the database (${redact(config.db)}): ${msg}\n`);
        process.exitCode = 1;
        return;
      }
      const delay = backoffDelay(attempt, 500, 10_000);
      process.stderr.write(`utils-hub start: the database (${redact(config.db)}) does not answer: ${msg}; retrying in ${delay} ms\n`);
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app!.log.info({ signal }, 'stopping: no new tasks; running tasks get the grace period');
    try {
      await app!.hub.shutdown();
      await app!.close();
      process.exitCode = 0;
    } catch (err) {
      app!.log.error({ err }, 'stopping failed');
      process.exitCode = 1;
    }
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));

  let address: string;
  try {
    address = await app.listen({ host: config.host, port: config.port });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The app built before listen holds timers, threads and the database: close it, or the
    // process would print the error and live on.
    stopping = true;
    await app.close().catch(() => {});
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      process.stderr.write(`utils-hub start: ${listenProblem(code, config.host, config.port)}\n`);
    } else {
      process.stderr.write(`utils-hub start: cannot listen on ${config.host}:${config.port}: ${(err as Error).message}\n`);
    }
    process.exitCode = 1;
    return;
  }
  const url = new URL(address);
  process.stdout.write(`utils-hub listening on http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${url.port}\n`);
}

/** One sentence on why the hub cannot listen, naming the port and the way out. */
function listenProblem(code: string, host: string, port: number): string {
  if (code === 'EADDRINUSE')
    return `port ${port} on ${host} is already in use (another hub?); stop that process or choose another port with --port (0 picks a free one)`;
  if (code === 'EACCES') return `port ${port} on ${host} needs privileges this process does not have; choose another port with --port`;
  return `the address ${host} is not one of this machine's; choose another with --host`;
}

/**
 * The hub's logger: readable lines (pino's own pretty printer, written on this thread so that no
 * line is lost at exit) when `out` is a terminal, one JSON object per line otherwise (files,
 * pipes, log collectors).
 */
export function loggerFor(level: string, out: { isTTY?: boolean }): FastifyServerOptions['logger'] {
  if (!out.isTTY) return { level };
  return { level, stream: pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }) };
}

/** A database URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@');
}
