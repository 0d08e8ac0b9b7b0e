import { expect } from 'chai';
import Database from 'better-sqlite3';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SqliteWriter, WRITER_STOPPED } from '../../server/src/store/sqlite-writer.js';
import { dbBackends, rejection, useMigratedDb } from '../helpers/db.js';

const [sqlite] = await dbBackends();

function filenameOf(db: { client: { config: { connection: unknown } } }): string {
  return (db.client.config.connection as { filename: string }).filename;
}

describe("SqliteWriter (the task store's writer thread)", () => {
  const db = useMigratedDb(sqlite!);
  let writer: SqliteWriter;
  beforeEach(async () => {
    await db().schema.createTable('notes', (t) => {
      t.string('name').primary();
      t.integer('n').notNullable();
    });
    writer = new SqliteWriter(filenameOf(db()));
  });
  afterEach(async () => {
    await writer.close();
  });

  const insertNote = 'insert into `notes` (`name`, `n`) values (?, ?)';

  it("runs a statement whose rows the hub's own connection then reads", async () => {
    await writer.run(insertNote, ['a', 1]);
    await writer.run(insertNote, ['b', 2]);
    expect((await db()('notes').select('name').orderBy('name')).map((r: { name: string }) => r.name)).to.deep.equal(['a', 'b']);
  });

  it('runs a one-row statement for each row in one transaction: all rows, or none when one fails', async () => {
    await writer.runEach(insertNote, ['a', 1, 'b', 2, 'c', 3], 2);
    expect(await db()('notes').select('name', 'n').orderBy('name')).to.deep.equal([
      { name: 'a', n: 1 },
      { name: 'b', n: 2 },
      { name: 'c', n: 3 },
    ]);
    // 'a' exists: the third row fails the primary key, and the two before it are rolled back.
    const bad = await rejection(writer.runEach(insertNote, ['d', 4, 'e', 5, 'a', 6], 2));
    expect(bad.code).to.equal('SQLITE_CONSTRAINT_PRIMARYKEY');
    expect((await db()('notes').select('name').orderBy('name')).map((r: { name: string }) => r.name)).to.deep.equal(['a', 'b', 'c']);
    const ragged = await rejection(writer.runEach(insertNote, ['f', 7, 'g'], 2));
    expect(ragged.message).to.match(/3 values are not rows of 2/);
  });

  it("rejects with SQLite's error and code, and goes on working after it", async () => {
    const bad = await rejection(writer.run('insert into `no_such_table` values (?)', [1]));
    expect(bad.message).to.match(/no such table/);
    expect(bad.code).to.equal('SQLITE_ERROR');
    const garbage = await rejection(writer.run('this is not SQL', []));
    expect(garbage.code).to.equal('SQLITE_ERROR');
    const wrongCount = await rejection(writer.run(insertNote, ['only one']));
    expect(wrongCount.message).to.match(/parameter/i);
    const constraint = await rejection(writer.run(insertNote, ['no number', null]));
    expect(constraint.code).to.equal('SQLITE_CONSTRAINT_NOTNULL');
    await writer.run(insertNote, ['c', 3]);
    expect(await db()('notes').count({ n: '*' })).to.deep.equal([{ n: 1 }]);
  });

  it('keeps the event loop free while another connection holds the write lock', async () => {
    const other = new Database(filenameOf(db()));
    other.exec('BEGIN IMMEDIATE');
    let maxLag = 0;
    let last = performance.now();
    const tick = setInterval(() => {
      const now = performance.now();
      maxLag = Math.max(maxLag, now - last);
      last = now;
    }, 5);
    try {
      const release = new Promise<void>((resolve) =>
        setTimeout(() => {
          other.exec('COMMIT');
          resolve();
        }, 300),
      );
      const started = performance.now();
      await writer.run(insertNote, ['waited', 1]);
      await release;
      // The write waited for the lock (in the thread), and timers kept firing meanwhile.
      expect(performance.now() - started).to.be.at.least(250);
      expect(maxLag).to.be.below(150);
    } finally {
      clearInterval(tick);
      other.close();
    }
    expect(await db()('notes').where({ name: 'waited' }).count({ n: '*' })).to.deep.equal([{ n: 1 }]);
  });

  it("writes the files given with a statement into its folder, from their pieces, and rejects with the file system's code", async () => {
    await writer.run(insertNote, ['with file', 1], [['f1', [Buffer.from('ab'), Buffer.from('cd')]]]);
    expect(readFileSync(join(writer.filesDir, 'f1'), 'utf8')).to.equal('abcd');
    await writer.run(insertNote, ['again', 2], [['f1', [Buffer.from('x')]]]);
    expect(readFileSync(join(writer.filesDir, 'f1'), 'utf8')).to.equal('x'); // replaced whole

    const blocked = new SqliteWriter(filenameOf(db()), { filesDir: join(filenameOf(db()), 'inside-a-file') });
    try {
      const err = await rejection(blocked.run(insertNote, ['no file', 3], [['f2', [Buffer.from('y')]]]));
      expect(err.code).to.equal('ENOTDIR');
      expect(await db()('notes').where({ name: 'no file' }).count({ n: '*' })).to.deep.equal([{ n: 0 }]); // the statement did not run
    } finally {
      await blocked.close();
    }
  });

  it('rejects a write to a file that does not exist rather than creating it', async () => {
    const missing = new SqliteWriter(`${filenameOf(db())}.missing`);
    try {
      const err = await rejection(missing.run(insertNote, ['a', 1]));
      expect(err.code).to.equal('SQLITE_CANTOPEN');
    } finally {
      await missing.close();
    }
  });

  it('refuses writes after close(), with a code the store treats as transient; close() twice is fine', async () => {
    await writer.run(insertNote, ['a', 1]);
    await writer.close();
    await writer.close();
    const err = await rejection(writer.run(insertNote, ['b', 2]));
    expect(err.code).to.equal(WRITER_STOPPED);
  });

  it('commits units on the event loop while the thread is idle just as the thread does, falling back to the thread when another connection holds the lock', async () => {
    const threadOnly = new SqliteWriter(filenameOf(db()), { inline: false });
    try {
      // One row alone (the event loop's connection), then the same in the thread: same rows.
      await writer.unit({ sql: insertNote, values: ['inline', 1], width: 2 });
      await threadOnly.unit({ sql: insertNote, values: ['thread', 2], width: 2 });
      // A failing unit rejects with SQLite's code either way, and writes nothing of itself.
      for (const w of [writer, threadOnly]) {
        const err = await rejection(w.unit({ sql: insertNote, values: ['x', 3, 'inline', 4], width: 2 }));
        expect(err.code).to.equal('SQLITE_CONSTRAINT_PRIMARYKEY');
      }
      // Held lock: the unit waits in the thread (the event loop's connection never waits).
      const other = new Database(filenameOf(db()));
      other.exec('BEGIN IMMEDIATE');
      setTimeout(() => other.exec('COMMIT'), 200);
      const started = performance.now();
      await writer.unit({ sql: insertNote, values: ['after lock', 5], width: 2 });
      expect(performance.now() - started).to.be.at.least(150);
      other.close();
    } finally {
      await threadOnly.close();
    }
    expect(await db()('notes').select('name', 'n').orderBy('name')).to.deep.equal([
      { name: 'after lock', n: 5 },
      { name: 'inline', n: 1 },
      { name: 'thread', n: 2 },
    ]);
  });

  it('keeps the WAL bounded when every unit commits on the event loop (the thread checkpoints it)', async () => {
    const wal = `${filenameOf(db())}-wal`;
    for (let i = 0; i < 3000; i++) await writer.unit({ sql: insertNote, values: [`n${i}`, i], width: 2 });
    await writer.close(); // answers the checkpoints in flight
    expect(await db()('notes').count({ n: '*' })).to.deep.equal([{ n: 3000 }]);
    // Without checkpoints the WAL would hold every commit's pages (3000 commits: about 12 MB).
    expect(statSync(wal).size).to.be.below(4 * 1024 * 1024);
  });
});
