/**
 * The terminal chat example (`npm run example -- chat`), driven through its standard input like a
 * person would, against the real hub with the example image worker as a separate process.
 */
import { expect } from 'chai';
import { mkdtempSync, readdirSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { startHub, type TestHub } from '../helpers/hub.js';
import { ROOT, run, startExample, type Proc } from '../helpers/processes.js';

const SAMPLE = join(ROOT, 'examples/assets/sample.png');

/** Resolves once `pred` holds over the process output; rejects when the process exits first. */
async function outputUntil(p: Proc, pred: (out: string) => boolean, what: string, timeoutMs = 20_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const out = p.output();
    if (pred(out)) return out;
    if (p.child.exitCode !== null) throw new Error(`the chat exited before ${what}:\n${out}`);
    if (Date.now() > end) throw new Error(`no ${what} within ${timeoutMs} ms:\n${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** How many prompts (`> ` at the start of a line) the chat has shown. */
const prompts = (out: string) => out.match(/^> /gm)?.length ?? 0;

describe('examples/chat.ts', () => {
  let hub: TestHub;
  const procs: Proc[] = [];

  before(async () => {
    hub = await startHub();
    procs.push(await startExample('image', ['--hub', `${hub.wsUrl}/worker`]));
  });
  after(async () => {
    for (const p of procs) {
      p.kill('SIGKILL');
      await p.exited;
    }
    await hub.close();
  });

  it('walks a person through image_transform_service and saves the rotated picture', async function () {
    this.timeout(60_000);
    const out = mkdtempSync(join(tmpdir(), 'uh-chat-'));
    const chat = run(process.execPath, ['--import', 'tsx', `${ROOT}examples/run.ts`, 'chat', '--hub', hub.url, '--out', out]);
    procs.push(chat);
    const send = (line: string) => chat.child.stdin!.write(`${line}\n`);

    // The list, then the pick by its number.
    const listed = await outputUntil(chat, (o) => prompts(o) === 1, 'the service list');
    const number = /^\s+(\d+)\) image_transform_service\b/m.exec(listed)?.[1];
    expect(number, listed).to.be.a('string');
    send(number!);

    // Each question as it comes: the picture as a file path, the rest left to their defaults.
    for (let asked = 2; ; asked++) {
      const o = await outputUntil(chat, (x) => prompts(x) === asked || /^Running /m.test(x), `question ${asked - 1}`);
      if (prompts(o) < asked) break;
      const block = o.slice(o.lastIndexOf('\n[', o.length - 3));
      send(/give a file path/.test(block) ? SAMPLE : '');
    }
    chat.child.stdin!.end();
    expect(await chat.exited, chat.output()).to.equal(0);
    const transcript = chat.output();
    if (process.env.SHOW_TRANSCRIPT) console.log(transcript);

    const saved = [...transcript.matchAll(/^Saved (.+)$/gm)].map((m) => m[1]);
    expect(saved, transcript).to.have.length(1);
    expect(saved[0].startsWith(out)).to.equal(true);
    expect(readdirSync(out)).to.have.length(1);
    const before = await sharp(SAMPLE).metadata();
    const after = await sharp(saved[0]).metadata();
    expect(after.format).to.equal('png');
    expect(before.width).to.not.equal(before.height); // else a rotation would not show
    expect([after.width, after.height]).to.deep.equal([before.height, before.width]);
    expect(transcript).to.match(/\] 100%/);
  });

  it('says why and exits 1 when the hub cannot be reached', async () => {
    // A port that was free a moment ago: nobody listens there.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const chat = run(process.execPath, ['--import', 'tsx', `${ROOT}examples/run.ts`, 'chat', '--hub', `http://127.0.0.1:${port}`]);
    procs.push(chat);
    chat.child.stdin!.end();
    expect(await chat.exited).to.equal(1);
    expect(chat.output()).to.match(/ECONNREFUSED/);
  });
});
