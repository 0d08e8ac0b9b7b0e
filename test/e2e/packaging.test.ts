/**
 * Workers live in their authors' own repositories (issue 14): the SDKs as their authors get them.
 * `npm pack` of protocol/, worker-client/ and client/ into a temporary folder, an empty project
 * there that `npm install`s the tarballs (their own dependencies come from the npm registry),
 * the README's TypeScript worker compiled with the project's own tsconfig and run against a real
 * hub, a bot on the client SDK that calls it; and the Python package installed by path into a
 * venv (websockets from the system) serving a task with the README's Python worker.
 */
import { expect } from 'chai';
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startHub, http, type TestHub } from '../helpers/hub.js';
import { ROOT, run, type Proc } from '../helpers/processes.js';

const exec = promisify(execFile);
const PYTHON = '/usr/bin/python3';

/** The body of the first fenced block of `lang` under the heading `heading` of the main README. */
function readmeBlock(heading: string, lang: string): string {
  const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const at = text.indexOf(`\n## ${heading}\n`);
  if (at < 0) throw new Error(`README.md has no section "${heading}"`);
  const m = new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``).exec(text.slice(at));
  if (!m) throw new Error(`README.md "${heading}" has no ${lang} block`);
  return m[1];
}

/** Runs a command; a failure's error carries its output. */
async function sh(command: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await exec(command, args, { cwd, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, npm_config_update_notifier: 'false' } });
    return stdout;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`.slice(0, 8000));
  }
}

const npm = (cwd: string, args: string[]) => sh('npm', args, cwd);

describe('SDKs from an empty folder (npm pack, pip install by path)', function () {
  this.timeout(600_000);
  let dir: string;
  let hub: TestHub;
  const procs: Proc[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'uh-pack-'));
    hub = await startHub();
  });
  after(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await hub?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('packs the TypeScript SDKs, installs them into an empty project, and its own worker and bot serve a task', async () => {
    const packs = join(dir, 'packs');
    mkdirSync(packs);
    for (const pkg of ['protocol', 'worker-client', 'client']) {
      await npm(join(ROOT, pkg), ['pack', '--silent', '--pack-destination', packs]);
    }
    const tarballs = readdirSync(packs).filter((f) => f.endsWith('.tgz'));
    expect(tarballs.sort()).to.deep.equal(['utils-hub-client-0.1.0.tgz', 'utils-hub-protocol-0.1.0.tgz', 'utils-hub-worker-client-0.1.0.tgz']);

    const app = join(dir, 'my-worker');
    mkdirSync(join(app, 'src'), { recursive: true });
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'my-worker', private: true, type: 'module' }, null, 2));
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify(
        {
          compilerOptions: {
            target: 'ES2022',
            module: 'NodeNext',
            moduleResolution: 'NodeNext',
            strict: true,
            outDir: 'dist',
            rootDir: 'src',
            types: ['node'],
          },
          include: ['src'],
        },
        null,
        2,
      ),
    );
    // The order of worker-client/README.md, "Start from an empty folder".
    await npm(app, ['install', '--no-audit', '--no-fund', ...tarballs.map((t) => join(packs, t))]);
    await npm(app, ['install', '--no-audit', '--no-fund', '--save-dev', 'typescript@5', '@types/node@20']);

    const worker = readmeBlock('A worker in 20 lines', 'ts').replace('ws://127.0.0.1:8080/worker', `${hub.wsUrl}/worker`);
    expect(worker).to.include(hub.wsUrl);
    writeFileSync(join(app, 'src', 'worker.ts'), worker);
    writeFileSync(
      join(app, 'src', 'bot.ts'),
      [
        "import { HubClient } from '@utils-hub/client';",
        'const hub = new HubClient(process.argv[2]);',
        "const shout = (await hub.services()).find((s) => s.service_name === 'shout');",
        "if (!shout) throw new Error('no shout service');",
        "const result = await hub.run(shout.service_id, { text: 'from a bot', times: 2 });",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: the source of a file the test writes
        'console.log(`bot got ${JSON.stringify(result)}`);',
        'await hub.close();',
        '',
      ].join('\n'),
    );
    await sh(join(app, 'node_modules', '.bin', 'tsc'), ['-p', app], app);

    const w = run(process.execPath, [join(app, 'dist', 'worker.js')]);
    procs.push(w);
    await w.waitFor(/shout connected/, 30_000);
    const services = await http(hub, 'GET', '/services_list');
    const id = services.body.find((s: { service_name: string }) => s.service_name === 'shout').service_id;
    const res = await http(hub, 'POST', '/add_task', { service_id: id, args: { text: 'hello', times: 2 } });
    expect(res.status).to.equal(200);
    expect(res.body.result).to.deep.equal({ text: 'HELLO HELLO' });

    const bot = run(process.execPath, [join(app, 'dist', 'bot.js'), hub.url]);
    procs.push(bot);
    await bot.waitFor(/bot got/, 30_000);
    expect(await bot.exited).to.equal(0);
    expect(bot.output()).to.include('bot got {"text":"FROM A BOT FROM A BOT"}');
    w.kill('SIGINT');
    expect(await w.exited).to.equal(0);
  });

  it("installs the Python SDK by path into a venv, and the README's Python worker serves a task", async function () {
    const probe = spawnSync(PYTHON, ['-c', 'import websockets, venv, ensurepip'], { encoding: 'utf8' });
    if (probe.status !== 0) {
      console.log(`    skipped: ${PYTHON} lacks websockets or venv (apt-get install python3-websockets python3-venv)`);
      this.skip();
    }
    const app = join(dir, 'my-python-worker');
    await sh(PYTHON, ['-m', 'venv', '--system-site-packages', join(app, '.venv')], dir);
    // The command of python/README.md, "Start from an empty folder".
    await sh(join(app, '.venv', 'bin', 'pip'), ['install', '--no-deps', '--no-build-isolation', '--no-index', '--quiet', join(ROOT, 'python')], dir);
    const worker = readmeBlock('A worker in Python', 'python').replace('ws://127.0.0.1:8080/worker', `${hub.wsUrl}/worker`);
    expect(worker).to.include(hub.wsUrl);
    writeFileSync(join(app, 'shout.py'), worker);

    const w = run(join(app, '.venv', 'bin', 'python'), [join(app, 'shout.py')]);
    procs.push(w);
    await w.waitFor(/shout connected/, 30_000);
    const services = await http(hub, 'GET', '/services_list');
    const id = services.body.find((s: { service_name: string }) => s.service_name === 'shout').service_id;
    const res = await http(hub, 'POST', '/add_task', { service_id: id, args: { text: 'snake', times: 3 } });
    expect(res.status).to.equal(200);
    expect(res.body.result).to.deep.equal({ text: 'SNAKE SNAKE SNAKE' });
    w.kill('SIGTERM');
    expect(await w.exited).to.equal(0);
  });
});
