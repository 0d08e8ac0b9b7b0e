import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { migrate, openDb } from '../../server/src/db/index.js';
import { listServices, upsertService } from '../../server/src/store/services.js';
import { listTokens, verifyToken } from '../../server/src/store/tokens.js';
import { MIGRATION_FILES, dbBackends } from '../helpers/db.js';

const backends = await dbBackends();
const CLI = fileURLToPath(new URL('../../server/bin/utils-hub.js', import.meta.url));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node server/bin/utils-hub.js ...args` in `cwd`, without the caller's HUB_DB. */
function cli(args: string[], options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Result> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (!options.env?.HUB_DB) delete env.HUB_DB;
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: options.cwd ?? os.tmpdir(), env, timeout: options.timeoutMs ?? 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The message on stderr is one line (a trailing newline aside). */
function oneLine(r: Result): string {
  expect(r.stderr.trimEnd().split('\n'), r.stderr).to.have.length(1);
  return r.stderr.trim();
}

describe('utils-hub command line', function () {
  // Each test spawns a few real processes: give a loaded machine room.
  this.timeout(60_000);
  let cwd: string;
  beforeEach(() => {
    cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'uh-cli-'));
  });
  afterEach(() => fs.rmSync(cwd, { recursive: true, force: true }));

  describe('usage', () => {
    it('prints the commands for --help, with status 0', async () => {
      const r = await cli(['--help'], { cwd });
      expect(r.code).to.equal(0);
      for (const verb of ['start', 'migrate', 'workers', 'services', 'tokens', 'keys']) expect(r.stdout).to.include(verb);
    });

    it('prints the help of a command for COMMAND --help and help COMMAND', async () => {
      for (const verb of ['migrate', 'workers', 'services', 'tokens', 'keys']) {
        const r = await cli([verb, '--help'], { cwd });
        expect(r.code, verb).to.equal(0);
        expect(r.stdout).to.match(new RegExp(`^Usage: utils-hub ${verb}`));
      }
      const r = await cli(['help', 'tokens'], { cwd });
      expect(r.stdout).to.include('--service');
    });

    it('exits 2 with the help on stderr when no command is given', async () => {
      const r = await cli([], { cwd });
      expect(r.code).to.equal(2);
      expect(r.stdout).to.equal('');
      expect(r.stderr).to.include('Usage: utils-hub');
    });

    it('exits 2 for an unknown command or option', async () => {
      const a = await cli(['frobnicate'], { cwd });
      expect(a.code).to.equal(2);
      expect(oneLine(a)).to.include('unknown command "frobnicate"');
      const b = await cli(['migrate', '--colour'], { cwd });
      expect(b.code).to.equal(2);
      expect(oneLine(b)).to.include("'--colour'");
    });

    it('hands start to the start command', async () => {
      const r = await cli(['start', '--help'], { cwd });
      expect(r.code).to.equal(0);
      expect(r.stdout).to.include('utils-hub start');
    });
  });

  describe('start', () => {
    it('exits 1 at once on a busy port, with a sentence that names the port and --port', async () => {
      const busy = net.createServer();
      await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
      try {
        const port = (busy.address() as net.AddressInfo).port;
        // Killed after 50 s, it would end with no status: status 1 says that it ended by itself.
        const r = await cli(['start', '--port', String(port), '--db', `sqlite:${path.join(cwd, 'hub.sqlite')}`], {
          cwd,
          env: { HUB_LOG_LEVEL: 'silent' },
          timeoutMs: 50_000,
        });
        expect(r.code, r.stderr).to.equal(1);
        const line = oneLine(r);
        expect(line).to.include(`port ${port}`).and.to.include('--port');
        expect(r.stdout).not.to.include('listening');
      } finally {
        busy.close();
      }
    });
  });

  describe('start logs', () => {
    /** Runs `utils-hub start` until it listens, then stops it; its output as one string. */
    async function startOutput(command: string, args: string[]): Promise<string> {
      const child = spawn(command, args, { cwd, env: { ...process.env, HUB_LOG_LEVEL: 'info', HUB_DB: `sqlite:${path.join(cwd, 'hub.sqlite')}` } });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise((r) => child.once('exit', r));
      try {
        const end = Date.now() + 30_000;
        while (!out.includes('listening on') && Date.now() < end && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
        expect(out, 'the hub started').to.include('listening on');
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
      return out;
    }

    it('writes readable lines, not JSON, when stdout is a terminal', async () => {
      // script(1) gives the hub a pseudo-terminal as its stdout.
      const cmd = [process.execPath, CLI, 'start', '--port', '0'].map((a) => `'${a}'`).join(' ');
      const out = await startOutput('script', ['-qec', cmd, '/dev/null']);
      const lines = out.split(/\r?\n/).filter((l) => l.includes('no worker token exists'));
      expect(lines, out).to.have.length(1);
      expect(lines[0]).not.to.match(/^\s*\{/);
      expect(lines[0]).to.match(/WARN/);
    });

    it('writes one JSON object per line when stdout is not a terminal', async () => {
      const out = await startOutput(process.execPath, [CLI, 'start', '--port', '0']);
      const line = out.split('\n').find((l) => l.includes('no worker token exists'));
      expect(JSON.parse(line!)).to.include({ level: 40 });
    });
  });

  describe('database option', () => {
    it('uses sqlite:./data/hub.sqlite by default', async () => {
      const r = await cli(['migrate'], { cwd });
      expect(r.code).to.equal(0);
      expect(fs.existsSync(path.join(cwd, 'data', 'hub.sqlite'))).to.equal(true);
    });

    it('exits 1 naming the option for an invalid URL, hiding its password', async () => {
      const r = await cli(['workers', 'list', '--db', 'postgres://u:secret@h/db'], { cwd });
      expect(r.code).to.equal(1);
      const msg = oneLine(r);
      expect(msg).to.include('HUB_DB (--db)');
      expect(msg).to.not.include('secret');
    });

    it('exits 1 when the database cannot be opened', async () => {
      fs.writeFileSync(path.join(cwd, 'file'), '');
      const r = await cli(['workers', 'list', '--db', `sqlite:${path.join(cwd, 'file', 'hub.sqlite')}`], { cwd });
      expect(r.code).to.equal(1);
      oneLine(r);
    });

    it('exits 1 quickly when the MySQL server does not answer', async () => {
      const started = Date.now();
      const r = await cli(['tokens', 'list', '--db', 'mysql://root:pw@127.0.0.1:1/hub'], { cwd });
      expect(r.code).to.equal(1);
      expect(oneLine(r)).to.match(/cannot use the database mysql:\/\/root:\*\*\*@127\.0\.0\.1:1\/hub: .*ECONNREFUSED/);
      expect(Date.now() - started).to.be.lessThan(10_000);
    });
  });

  for (const backend of backends) {
    backend.describe(`on ${backend.name}`, () => {
      let url: string;
      // biome-ignore lint/suspicious/noDuplicateTestHooks: backend.describe is a describe of its own
      beforeEach(async () => {
        url = await backend.freshDatabase();
      });

      describe('migrate', () => {
        it('applies the migrations, then finds the schema up to date', async () => {
          const first = await cli(['migrate', '--db', url], { cwd });
          expect(first.code, first.stderr).to.equal(0);
          expect(first.stdout).to.equal(MIGRATION_FILES.map((f) => `applied migration ${f}\n`).join(''));
          const second = await cli(['migrate'], { cwd, env: { HUB_DB: url } });
          expect(second.code).to.equal(0);
          expect(second.stdout).to.include('up to date');
        });

        it('exits 2 for an extra argument', async () => {
          const r = await cli(['migrate', 'now', '--db', url], { cwd });
          expect(r.code).to.equal(2);
          expect(oneLine(r)).to.include('unexpected argument "now"');
        });
      });

      describe('services', () => {
        it('lists the known services and removes one with its ended tasks, refusing while a task is unfinished', async () => {
          const db = openDb(url);
          try {
            await migrate(db);
            const me = (name: string) => ({ name, description: `the ${name} service`, input: [] });
            const gone = await upsertService(db, me('gone'));
            const kept = await upsertService(db, me('kept'));
            const row = (id: string, service_id: number, status: string) => ({
              id,
              service_id,
              status,
              attempts: 1,
              seq: 2,
              progress: null,
              message: null,
              error: null,
              result: '1',
              attachments: null,
              created_at: 1,
              started_at: 1,
              finished_at: status === 'running' ? null : 2,
            });
            await db('tasks').insert([row('t-gone-1', gone, 'succeeded'), row('t-gone-2', gone, 'running'), row('t-kept', kept, 'succeeded')]);

            const list = await cli(['services', 'list', '--db', url], { cwd });
            expect(list.code, list.stderr).to.equal(0);
            expect(list.stdout)
              .to.match(/^ID\s+NAME/)
              .and.to.include('gone')
              .and.to.include('the kept service');
            const json = JSON.parse((await cli(['services', 'list', '--json', '--db', url], { cwd })).stdout) as Array<{ id: number; name: string }>;
            expect(json.map((s) => [s.id, s.name])).to.deep.equal([
              [gone, 'gone'],
              [kept, 'kept'],
            ]);

            const busy = await cli(['services', 'remove', 'gone', '--db', url], { cwd });
            expect(busy.code).to.equal(1);
            expect(oneLine(busy)).to.include('1 unfinished task');
            await db('tasks').where({ id: 't-gone-2' }).update({ status: 'failed', finished_at: 3 });

            const removed = await cli(['services', 'remove', 'gone', '--db', url], { cwd });
            expect(removed.code, removed.stderr).to.equal(0);
            expect(removed.stdout).to.equal(`removed service gone (id ${gone}) and 2 ended tasks\n`);
            expect((await listServices(db)).map((s) => s.name)).to.deep.equal(['kept']);
            expect(((await db('tasks').pluck('id')) as string[]).sort()).to.deep.equal(['t-kept']);

            const unknown = await cli(['services', 'remove', 'gone', '--db', url], { cwd });
            expect(unknown.code).to.equal(1);
            expect(oneLine(unknown)).to.include('no service is named "gone"');
            const usage = await cli(['services', 'remove', '--db', url], { cwd });
            expect(usage.code).to.equal(2);
          } finally {
            await db.destroy();
          }
        });
      });

      describe('workers', () => {
        it('adds, lists, disables, enables and removes a worker', async () => {
          const add = await cli(['workers', 'add', 'http://10.0.0.5:9001/', '--db', url], { cwd });
          expect(add.code, add.stderr).to.equal(0);
          expect(add.stdout).to.equal('added worker http://10.0.0.5:9001\n');
          expect((await cli(['workers', 'disable', 'http://10.0.0.5:9001', '--db', url], { cwd })).code).to.equal(0);
          const listed = await cli(['workers', 'list', '--json', '--db', url], { cwd });
          expect(JSON.parse(listed.stdout)).to.have.length(1).and.to.have.nested.property('[0].enabled', false);
          expect((await cli(['workers', 'enable', 'http://10.0.0.5:9001', '--db', url], { cwd })).code).to.equal(0);
          const table = await cli(['workers', 'list'], { cwd, env: { HUB_DB: url } });
          expect(table.stdout).to.match(/^URL\s+ENABLED\s+ADDED\nhttp:\/\/10\.0\.0\.5:9001\s+yes\s+\d{4}-/);
          const rm = await cli(['workers', 'remove', 'http://10.0.0.5:9001', '--db', url], { cwd });
          expect(rm.code).to.equal(0);
          const empty = await cli(['workers', 'list', '--db', url], { cwd });
          expect(empty.stdout).to.equal('');
          expect(empty.stderr).to.include('no workers');
        });

        it('exits 1 for an invalid URL', async () => {
          const r = await cli(['workers', 'add', 'ftp://10.0.0.5', '--db', url], { cwd });
          expect(r.code).to.equal(1);
          expect(oneLine(r)).to.include('invalid worker URL "ftp://10.0.0.5"');
        });

        it('exits 1 for a URL already listed', async () => {
          await cli(['workers', 'add', 'http://a:1', '--db', url], { cwd });
          const r = await cli(['workers', 'add', 'http://a:1', '--db', url], { cwd });
          expect(r.code).to.equal(1);
          expect(oneLine(r)).to.include('already listed');
        });

        it('exits 1 to remove a URL not listed', async () => {
          const r = await cli(['workers', 'remove', 'http://nobody:1', '--db', url], { cwd });
          expect(r.code).to.equal(1);
          expect(oneLine(r)).to.include('no worker http://nobody:1');
        });

        it('exits 2 without a URL or with an unknown action', async () => {
          const a = await cli(['workers', 'add', '--db', url], { cwd });
          expect(a.code).to.equal(2);
          expect(oneLine(a)).to.include('missing URL');
          const b = await cli(['workers', 'launch', '--db', url], { cwd });
          expect(b.code).to.equal(2);
          expect(oneLine(b)).to.include('unknown action "launch"');
          const c = await cli(['workers', '--db', url], { cwd });
          expect(c.code).to.equal(2);
          expect(oneLine(c)).to.include('missing action');
        });
      });

      describe('tokens', () => {
        it('prints a new token once, alone on stdout, good for its service only', async () => {
          const r = await cli(['tokens', 'create', 'img-bot', '--service', 'image_transform_service', '--db', url], { cwd });
          expect(r.code, r.stderr).to.equal(0);
          expect(r.stdout).to.match(/^uh_w_[A-Za-z0-9_-]{43}\n$/);
          expect(oneLine(r)).to.include('shown only this once');
          const db = openDb(url, { log: () => {} });
          try {
            expect(await verifyToken(db, 'worker', r.stdout.trim())).to.include({
              name: 'img-bot',
              service: 'image_transform_service',
              admin: false,
            });
            const hashes = (await db('tokens').select('hash')) as { hash: string }[];
            expect(hashes.map((h) => h.hash)).to.not.include(r.stdout.trim());
          } finally {
            await db.destroy();
          }
        });

        it('lists tokens without their secrets, and revokes one', async () => {
          const a = await cli(['tokens', 'create', 'alpha', '--db', url], { cwd });
          await cli(['tokens', 'create', 'beta', '--service', 'svc', '--db', url], { cwd });
          const list = await cli(['tokens', 'list', '--db', url], { cwd });
          expect(list.code).to.equal(0);
          expect(list.stdout).to.match(/^NAME\s+SERVICE\s+CREATED\nalpha\s+\*\s+\d{4}-.*\nbeta\s+svc\s+\d{4}-/);
          expect(list.stdout).to.not.include(a.stdout.trim());
          const revoke = await cli(['tokens', 'revoke', 'alpha', '--db', url], { cwd });
          expect(revoke.code).to.equal(0);
          expect(revoke.stdout).to.equal('revoked worker token "alpha"\n');
          const json = await cli(['tokens', 'list', '--json', '--db', url], { cwd });
          expect(JSON.parse(json.stdout).map((t: { name: string }) => t.name)).to.deep.equal(['beta']);
        });

        it('exits 1 to revoke an unknown name, or to create a name in use', async () => {
          const r = await cli(['tokens', 'revoke', 'ghost', '--db', url], { cwd });
          expect(r.code).to.equal(1);
          expect(oneLine(r)).to.include('no worker token named "ghost"');
          await cli(['tokens', 'create', 'dup', '--db', url], { cwd });
          const d = await cli(['tokens', 'create', 'dup', '--db', url], { cwd });
          expect(d.code).to.equal(1);
          expect(d.stdout).to.equal('');
          expect(oneLine(d)).to.include('already exists');
        });

        it('exits 1 for an invalid name', async () => {
          const r = await cli(['tokens', 'create', 'bad name', '--db', url], { cwd });
          expect(r.code).to.equal(1);
          expect(oneLine(r)).to.include('invalid worker token name');
        });

        it('exits 2 without a NAME, or with --service on list', async () => {
          const a = await cli(['tokens', 'create', '--db', url], { cwd });
          expect(a.code).to.equal(2);
          expect(oneLine(a)).to.include('missing NAME');
          const b = await cli(['tokens', 'list', '--service', 'x', '--db', url], { cwd });
          expect(b.code).to.equal(2);
          expect(oneLine(b)).to.include('--service');
        });
      });

      describe('keys', () => {
        it('creates, lists and revokes client keys', async () => {
          const c = await cli(['keys', 'create', 'chat-bot', '--db', url], { cwd });
          expect(c.code, c.stderr).to.equal(0);
          expect(c.stdout).to.match(/^uh_c_[A-Za-z0-9_-]{43}\n$/);
          const list = await cli(['keys', 'list', '--db', url], { cwd });
          expect(list.stdout).to.match(/^NAME\s+ADMIN\s+CREATED\nchat-bot\s+no\s+\d{4}-/);
          expect((await cli(['keys', 'revoke', 'chat-bot', '--db', url], { cwd })).code).to.equal(0);
          const db = openDb(url, { log: () => {} });
          try {
            expect(await verifyToken(db, 'client', c.stdout.trim())).to.equal(null);
            expect(await listTokens(db, 'client')).to.deep.equal([]);
          } finally {
            await db.destroy();
          }
        });

        it('creates an admin key with --admin, which verifies as admin; --admin is for keys only', async () => {
          const c = await cli(['keys', 'create', 'ops', '--admin', '--db', url], { cwd });
          expect(c.code, c.stderr).to.equal(0);
          expect(c.stderr).to.include('admin');
          const list = await cli(['keys', 'list', '--db', url], { cwd });
          expect(list.stdout).to.match(/\nops\s+yes\s+\d{4}-/);
          const json = await cli(['keys', 'list', '--json', '--db', url], { cwd });
          expect(JSON.parse(json.stdout).find((k: { name: string }) => k.name === 'ops')).to.include({ admin: true });
          const db = openDb(url, { log: () => {} });
          try {
            expect(await verifyToken(db, 'client', c.stdout.trim())).to.include({ name: 'ops', admin: true });
          } finally {
            await db.destroy();
          }
          const t = await cli(['tokens', 'create', 'w', '--admin', '--db', url], { cwd });
          expect(t.code).to.equal(2);
          expect(oneLine(t)).to.include("'--admin'");
        });

        it('exits 1 to revoke an unknown key, 2 for --service', async () => {
          const r = await cli(['keys', 'revoke', 'ghost', '--db', url], { cwd });
          expect(r.code).to.equal(1);
          expect(oneLine(r)).to.include('no client key named "ghost"');
          const s = await cli(['keys', 'create', 'k', '--service', 'x', '--db', url], { cwd });
          expect(s.code).to.equal(2);
          expect(oneLine(s)).to.include("'--service'");
        });
      });
    });
  }
});
