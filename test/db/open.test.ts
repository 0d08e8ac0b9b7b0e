import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { DEFAULT_DB_URL, FolderMigrationSource, dbReady, migrate, openDb, parseDbUrl, pendingMigrations, rollback } from '../../server/src/db/index.js';
import { MIGRATION_FILES, dbBackends } from '../helpers/db.js';

const backends = await dbBackends();
const TABLES = ['services', 'workers', 'tokens', 'tasks'];

describe('parseDbUrl', () => {
  it('reads a relative sqlite path from the current directory', () => {
    expect(parseDbUrl(DEFAULT_DB_URL)).to.deep.equal({ kind: 'sqlite', filename: path.resolve('data/hub.sqlite') });
  });

  it('reads sqlite:///absolute and sqlite::memory:', () => {
    expect(parseDbUrl('sqlite:///tmp/x.db')).to.deep.equal({ kind: 'sqlite', filename: '/tmp/x.db' });
    expect(parseDbUrl('sqlite::memory:')).to.deep.equal({ kind: 'sqlite', filename: ':memory:' });
  });

  it('reads every part of a mysql URL, decoding the password', () => {
    expect(parseDbUrl('mysql://hub:p%40ss@db.local:3307/hubdb')).to.deep.equal({
      kind: 'mysql',
      host: 'db.local',
      port: 3307,
      user: 'hub',
      password: 'p@ss',
      database: 'hubdb',
    });
  });

  it('defaults the mysql port to 3306 and the password to none', () => {
    expect(parseDbUrl('mysql://root@127.0.0.1/hub')).to.include({ port: 3306, password: undefined });
  });

  for (const [url, reason] of [
    ['', 'empty'],
    ['postgres://u@h/db', 'unsupported scheme'],
    ['sqlite:', 'missing file path'],
    ['mysql://root@127.0.0.1:3306', 'database name'],
    ['mysql://127.0.0.1:3306/hub', 'missing user'],
    ['mysql://root@127.0.0.1:3306/hub?ssl=1', 'query'],
    ['./data/hub.sqlite', 'scheme'],
  ]) {
    it(`refuses ${JSON.stringify(url)} naming the option (${reason})`, () => {
      expect(() => parseDbUrl(url))
        .to.throw(Error, /^HUB_DB \(--db\): /)
        .with.property('message')
        .that.includes(reason);
    });
  }

  it('never repeats a password in its message', () => {
    expect(() => parseDbUrl('mysql://root:hunter2@127.0.0.1:3306/'))
      .to.throw(Error)
      .that.satisfies((e: Error) => !e.message.includes('hunter2') && e.message.includes('***'));
  });
});

describe('openDb', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uh-open-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates the folder of a sqlite file and enables WAL and foreign keys', async () => {
    const file = path.join(dir, 'a', 'b', 'hub.sqlite');
    const db = openDb(`sqlite:${file}`);
    try {
      expect(fs.existsSync(path.dirname(file))).to.equal(true);
      const journal = (await db.raw('pragma journal_mode')) as { journal_mode: string }[];
      const fk = (await db.raw('pragma foreign_keys')) as { foreign_keys: number }[];
      expect(journal[0].journal_mode).to.equal('wal');
      expect(fk[0].foreign_keys).to.equal(1);
    } finally {
      await db.destroy();
    }
  });

  it('throws a plain Error naming the option for an invalid URL', () => {
    expect(() => openDb('redis://localhost')).to.throw(Error, /HUB_DB \(--db\)/);
  });
});

describe('FolderMigrationSource', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uh-migs-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('lists the numbered .js files of its folder in order, and nothing else', async () => {
    for (const f of ['002_b.js', '001_a.js', 'README.md', 'helper.js', '010_c.js']) fs.writeFileSync(path.join(dir, f), '');
    const names = (await new FolderMigrationSource(dir).getMigrations()).map((m) => m.name);
    expect(names).to.deep.equal(['001_a.js', '002_b.js', '010_c.js']);
  });

  it('refuses a migration without up and down', async () => {
    fs.writeFileSync(path.join(dir, '001_bad.js'), 'export const up = () => {};\n');
    const source = new FolderMigrationSource(dir);
    const [m] = await source.getMigrations();
    let error: Error | null = null;
    await source.getMigration(m).catch((e: Error) => (error = e));
    expect(error).to.be.instanceOf(Error).with.property('message').that.includes('001_bad.js');
  });

  it('ships the migrations of the repository', async () => {
    const names = (await new FolderMigrationSource().getMigrations()).map((m) => m.name);
    expect(names[0]).to.equal('001_initial.js');
  });
});

async function tables(db: Knex): Promise<string[]> {
  const present: string[] = [];
  for (const t of TABLES) if (await db.schema.hasTable(t)) present.push(t);
  return present;
}

describe('migrations', () => {
  for (const backend of backends) {
    backend.describe(`on ${backend.name}`, () => {
      let db: Knex;
      beforeEach(async () => {
        db = openDb(await backend.freshDatabase(), { log: () => {} });
      });
      afterEach(() => db.destroy());

      const ALL = MIGRATION_FILES;

      it('go up, down and up again', async () => {
        expect(await migrate(db)).to.deep.equal(ALL);
        expect(await tables(db)).to.deep.equal(TABLES);
        expect(await db.schema.hasColumn('tasks', 'media_file')).to.equal(true);
        expect(await rollback(db, { all: true })).to.deep.equal([...ALL].reverse());
        expect(await tables(db)).to.deep.equal([]);
        expect(await migrate(db)).to.deep.equal(ALL);
        expect(await tables(db)).to.deep.equal(TABLES);
      });

      it('add media_file to a database made by the first migration alone, keeping its tasks', async () => {
        await db.migrate.up({ migrationSource: new FolderMigrationSource(), tableName: 'knex_migrations' });
        expect(await db.schema.hasColumn('tasks', 'media_file')).to.equal(false);
        await db('services').insert({ name: 's', description: '', me: '{}', created_at: 1, updated_at: 1 });
        await db('tasks').insert({ id: 'old', service_id: 1, status: 'succeeded', attempts: 1, created_at: 1 });
        expect(await migrate(db)).to.deep.equal(ALL.slice(1));
        expect(await db('tasks').select('id', 'media_file')).to.deep.equal([{ id: 'old', media_file: null }]);
      });

      it('apply nothing the second time', async () => {
        await migrate(db);
        expect(await migrate(db)).to.deep.equal([]);
      });

      it('tell which are pending without touching the database', async () => {
        expect(await pendingMigrations(db)).to.deep.equal(ALL);
        expect(await db.schema.hasTable('knex_migrations')).to.equal(false);
        await migrate(db);
        expect(await pendingMigrations(db)).to.deep.equal([]);
      });

      it('give the tasks table room for large results and media', async () => {
        await migrate(db);
        await db('services').insert({ name: 's', description: '', me: '{}', created_at: 1, updated_at: 1 });
        const big = 'x'.repeat(100_000); // over MySQL's TEXT and BLOB (64 KB)
        await db('tasks').insert({
          id: 't1',
          service_id: 1,
          status: 'succeeded',
          attempts: 1,
          result: big,
          error: big,
          message: big,
          attachments: Buffer.alloc(100_000, 7),
          created_at: Date.now(),
        });
        const row = (await db('tasks').where({ id: 't1' }).first()) as { result: string; attachments: Buffer };
        expect(row.result.length).to.equal(100_000);
        expect(Buffer.from(row.attachments).equals(Buffer.alloc(100_000, 7))).to.equal(true);
      });

      it('compare names exactly, case included', async () => {
        await migrate(db);
        await db('services').insert({ name: 'img', description: '', me: '{}', created_at: 1, updated_at: 1 });
        await db('services').insert({ name: 'IMG', description: '', me: '{}', created_at: 1, updated_at: 1 });
        expect((await db('services').where({ name: 'img' })).length).to.equal(1);
      });
    });
  }
});

describe('dbReady', () => {
  for (const backend of backends) {
    backend.describe(`on ${backend.name}`, () => {
      let db: Knex;
      beforeEach(async () => {
        db = openDb(await backend.freshDatabase(), { log: () => {} });
      });
      afterEach(() => db.destroy());

      it('is not ready before the migrations, and says which are missing', async () => {
        const r = await dbReady(db);
        expect(r.ready).to.equal(false);
        expect(r).to.have.property('reason').that.includes('001_initial.js');
      });

      it('is ready once migrated', async () => {
        await migrate(db);
        expect(await dbReady(db)).to.deep.equal({ ready: true });
      });
    });
  }

  it('reports an unreachable database without throwing', async () => {
    const db = openDb('mysql://root@127.0.0.1:1/nothing', { connectTimeoutMs: 1000, log: () => {} });
    try {
      const r = await dbReady(db, { timeoutMs: 3000 });
      expect(r.ready).to.equal(false);
      expect(r)
        .to.have.property('reason')
        .that.matches(/unreachable|did not answer/);
    } finally {
      await db.destroy();
    }
  });
});
