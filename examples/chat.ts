/**
 * A terminal chat with a utils-hub, as a bot would hold it: lists the services, asks for one
 * service's arguments one by one with `conversation()`, runs the task with a progress bar, and
 * saves media results to files.
 *
 *   npm run example -- chat --hub http://127.0.0.1:8080 [--key KEY] [--out DIR]
 *
 * Answers are lines on standard input (a file path for media), so it runs as well with a pipe
 * as on a terminal. Progress goes to stderr, everything else to stdout.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { HubClient, HubError, conversation, type Media, type Question, type TaskProgress } from '@utils-hub/client';

const USAGE = `usage: npm run example -- chat --hub http://HOST:PORT [--key KEY] [--out DIR]

  --hub URL   the hub's base URL (default http://127.0.0.1:8080)
  --key KEY   the client key, when the hub asks for one
  --out DIR   where media results are saved (default: the current directory)`;

/** Mime types by file extension, both ways: enough for the example services. */
const MIMES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.avif': 'image/avif',
  '.tif': 'image/tiff',
  '.tiff': 'image/tiff',
  '.bmp': 'image/bmp',
  '.svg': 'image/svg+xml',
  '.mp3': 'audio/mpeg',
  '.wav': 'audio/wav',
  '.ogg': 'audio/ogg',
  '.flac': 'audio/flac',
  '.m4a': 'audio/mp4',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
  '.mov': 'video/quicktime',
  '.pdf': 'application/pdf',
  '.txt': 'text/plain',
  '.csv': 'text/csv',
  '.json': 'application/json',
  '.zip': 'application/zip',
};

/** The mime type of a file name, from its extension. */
export function mimeOf(file: string): string {
  return MIMES[extname(file).toLowerCase()] ?? 'application/octet-stream';
}

/** The file extension of a mime type, with its dot (`.bin` when unknown). */
export function extensionOf(mime: string): string {
  const base = mime.split(';')[0].trim().toLowerCase();
  return Object.keys(MIMES).find((ext) => MIMES[ext] === base) ?? '.bin';
}

/** Lines of a stream, one at a time, none lost when they come faster than they are asked for. */
class Lines {
  readonly #queue: string[] = [];
  readonly #waiting: Array<(line: string | null) => void> = [];
  #ended = false;

  constructor(input: NodeJS.ReadableStream) {
    const rl = createInterface({ input, terminal: false });
    rl.on('line', (line) => (this.#waiting.length > 0 ? this.#waiting.shift()!(line) : this.#queue.push(line)));
    rl.on('close', () => {
      this.#ended = true;
      for (const w of this.#waiting.splice(0)) w(null);
    });
  }

  /** The next line, or null at the end of the input. */
  next(): Promise<string | null> {
    if (this.#queue.length > 0) return Promise.resolve(this.#queue.shift()!);
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}

const say = (text = '') => process.stdout.write(`${text}\n`);

/** Where relative paths start: the directory `npm run` was typed in (npm itself runs in the root). */
const BASE = process.env.INIT_CWD || process.cwd();

/** Asks on stdout and reads the answer; a piped answer is echoed so the transcript reads as a chat. */
async function ask(lines: Lines, prompt = '> '): Promise<string | null> {
  process.stdout.write(prompt);
  const line = await lines.next();
  if (!process.stdin.isTTY) process.stdout.write(`${line ?? ''}\n`);
  return line;
}

function sizeText(n: number): string {
  return n < 1024 ? `${n} bytes` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function describeQuestion(q: Question): string[] {
  const out = [`[${q.index + 1}/${q.total}] ${q.text}${q.description ? ` — ${q.description}` : ''}`];
  let hint = q.kind === 'media' ? `${q.hint}: give a file path` : q.hint;
  if (q.default !== undefined) hint += `; Enter for the default, ${JSON.stringify(q.default)}`;
  else if (q.optional) hint += '; Enter to skip';
  out.push(`      ${hint}`);
  if (q.kind === 'choice' && q.choices) out.push(`      ${q.choices.map((c, i) => `${i + 1}) ${c}`).join('  ')}`);
  return out;
}

/** A media answer from what the person typed: a data: URL as it is, else a file to read. */
async function mediaAnswer(text: string): Promise<unknown> {
  const t = text.trim();
  if (t === '' || t.startsWith('data:') || t === 'skip' || t === '/skip') return t;
  const path = resolve(BASE, t.replace(/^~(?=\/)/, process.env.HOME ?? '~'));
  const data = await readFile(path);
  return { mime: mimeOf(path), name: basename(path), data };
}

/** Draws the progress bar on stderr: redrawn in place on a terminal, one line per change otherwise. */
function progressBar(): { update(p: TaskProgress): void; end(): void } {
  const tty = process.stderr.isTTY === true;
  let last = '';
  let fraction: number | undefined;
  let message: string | undefined;
  return {
    update(p) {
      fraction = p.progress ?? fraction;
      message = p.message ?? message;
      const width = 30;
      const filled = Math.round((fraction ?? 0) * width);
      const percent = fraction === undefined ? '  ?' : String(Math.round(fraction * 100)).padStart(3);
      const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${percent}%${message ? ` ${message}` : ''}`;
      if (line === last) return;
      last = line;
      process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    },
    end() {
      if (tty && last) process.stderr.write('\n');
    },
  };
}

const isMedia = (v: unknown): v is Media =>
  typeof v === 'object' && v !== null && typeof (v as Media).mime === 'string' && (v as Media).data instanceof Uint8Array;

/** Writes `data` to `dir/name`, adding -1, -2... before the extension rather than overwrite. */
async function saveUnique(dir: string, name: string, data: Uint8Array): Promise<string> {
  const ext = extname(name);
  const stem = name.slice(0, name.length - ext.length);
  for (let i = 0; ; i++) {
    const path = join(dir, i === 0 ? name : `${stem}-${i}${ext}`);
    try {
      await writeFile(path, data, { flag: 'wx' });
      return path;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** Saves every media in `result` under `dir`; returns the result with each media replaced by its path. */
async function saveMedia(result: unknown, dir: string, stem: string, saved: string[]): Promise<unknown> {
  if (isMedia(result)) {
    // The worker's name, if any, is a hint only: its directory part is dropped.
    const given = result.name ? basename(result.name).replace(/[^\w.-]+/g, '_') : '';
    const name = given && given !== '.' && given !== '..' ? given : `${stem}${extensionOf(result.mime)}`;
    const path = await saveUnique(dir, name, result.data);
    saved.push(path);
    return `<${result.mime}, ${sizeText(result.data.byteLength)}, saved to ${path}>`;
  }
  if (Array.isArray(result)) return Promise.all(result.map((v, i) => saveMedia(v, dir, `${stem}-${i}`, saved)));
  if (typeof result === 'object' && result !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(result)) out[k] = await saveMedia(v, dir, `${stem}-${k}`, saved);
    return out;
  }
  return result;
}

/** How an answer reads in the summary: media as their type and size. */
function shown(v: unknown): string {
  if (typeof v === 'object' && v !== null && (v as Media).data instanceof Uint8Array) {
    const m = v as Media;
    return `${m.name ?? 'media'} (${m.mime}, ${sizeText(m.data.byteLength)})`;
  }
  return JSON.stringify(v);
}

/** Runs the chat; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  let opts: { hub: string; key?: string; out: string; help?: boolean };
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        hub: { type: 'string', default: 'http://127.0.0.1:8080' },
        key: { type: 'string' },
        out: { type: 'string', default: '.' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    opts = values as typeof opts;
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    say(USAGE);
    return 0;
  }
  const client = new HubClient(opts.hub, opts.key === undefined ? {} : { key: opts.key });
  client.on('error', () => {}); // failed redials; a call that waits says what went wrong
  const lines = new Lines(process.stdin);
  try {
    return await chat(client, lines, resolve(BASE, opts.out));
  } catch (err) {
    console.error(err instanceof HubError ? `hub error ${err.code}: ${err.message}` : `error: ${(err as Error).message}`);
    return 1;
  } finally {
    await client.close();
    process.stdin.pause();
  }
}

async function chat(client: HubClient, lines: Lines, outDir: string): Promise<number> {
  const services = await client.services();
  if (services.length === 0) {
    say('No service is connected to the hub right now.');
    return 1;
  }
  say(`Services on ${client.options.httpBase}:`);
  const infos = await Promise.all(services.map((s) => client.serviceInfo(s.service_id)));
  infos.forEach((s, i) => {
    say(`  ${i + 1}) ${s.service_name}${s.service_description ? `: ${s.service_description}` : ''}`);
  });

  let picked: (typeof infos)[number] | undefined;
  while (!picked) {
    say('Which one? (its number or name)');
    const line = await ask(lines);
    if (line === null) return 1;
    const t = line.trim();
    picked = /^\d+$/.test(t) ? infos[Number(t) - 1] : infos.find((s) => s.service_name === t);
    if (!picked) say(`There is no service "${t}".`);
  }

  say();
  say(`${picked.service_name}: ${picked.arguments.length} question(s). Enter takes the default, /back goes back.`);
  const conv = conversation(picked);
  for (let q = conv.next(); q; q = conv.next()) {
    for (const l of describeQuestion(q)) say(l);
    const line = await ask(lines);
    if (line === null) {
      say('(the input ended before every question was answered)');
      return 1;
    }
    if (line.trim() === '/back') {
      if (!conv.back()) say('This is the first question.');
      continue;
    }
    let reply: unknown = line;
    if (q.kind === 'media') {
      try {
        reply = await mediaAnswer(line);
      } catch (err) {
        say(`I cannot read that file: ${(err as Error).message}`);
        continue;
      }
    }
    const r = conv.answer(reply);
    if (!r.ok) say(r.message);
  }

  const args = conv.args();
  say();
  say(`Running ${picked.service_name} with:`);
  for (const arg of picked.arguments) {
    const name = arg.argument_name;
    if (Object.hasOwn(args, name)) say(`  ${name} = ${shown(args[name])}`);
    else say(`  ${name} = ${arg.default !== undefined ? `${JSON.stringify(arg.default)} (its default)` : '(not given)'}`);
  }
  const bar = progressBar();
  const abort = new AbortController();
  const onSigint = () => abort.abort();
  process.once('SIGINT', onSigint);
  let result: unknown;
  try {
    result = await client.run(picked.service_id, args, { onProgress: (p) => bar.update(p), signal: abort.signal });
    bar.update({ progress: 1, message: 'done', seq: 0 });
  } catch (err) {
    bar.end();
    const e = err as HubError;
    const worker = e.details?.worker_error as { code?: string; message?: string } | undefined;
    say(`The task ended without a result: ${e.code}: ${worker?.message ?? e.message}`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
  bar.end();

  await mkdir(outDir, { recursive: true });
  const saved: string[] = [];
  const printable = await saveMedia(result, outDir, picked.service_name, saved);
  say();
  say('Result:');
  say(typeof printable === 'string' ? `  ${printable}` : JSON.stringify(printable, null, 2).replace(/^/gm, '  '));
  for (const path of saved) say(`Saved ${path}`);
  return 0;
}

// Run directly (`node --import tsx examples/chat.ts --hub ...`) as well as from examples/run.ts.
if (process.argv[1] && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) {
  process.exitCode = await main(process.argv.slice(2));
}
