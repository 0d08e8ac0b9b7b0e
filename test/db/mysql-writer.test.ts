import { expect } from 'chai';
import { MysqlWriter } from '../../server/src/store/mysql-writer.js';
import { WRITER_STOPPED } from '../../server/src/store/writer-thread.js';
import { dbBackends, rejection, useMigratedDb } from '../helpers/db.js';

const [, mysql] = await dbBackends();

mysql!.describe("MysqlWriter (the task store's writer thread) [MariaDB]", function () {
  this.timeout(20_000);
  const db = useMigratedDb(mysql!);
  let writer: MysqlWriter;
  beforeEach(async () => {
    await db().schema.createTable('notes', (t) => {
      t.string('name', 32).primary();
      t.binary('data', 1024).nullable();
    });
    writer = new MysqlWriter(db().client.config.connection as Record<string, unknown>);
  });
  afterEach(async () => {
    await writer.close();
  });

  const insertNote = 'insert into `notes` (`name`, `data`) values (?, ?)';

  it('runs statements in order, binding Buffers and lists of Buffers as bytes', async () => {
    await writer.run(insertNote, ['a', Buffer.from([0, 1, 2, 255])]);
    await writer.run(insertNote, ['b', [Buffer.from('ab'), Buffer.from('cd')]]);
    await writer.run(insertNote, ['c', null]);
    const rows = (await db()('notes').select('name', 'data').orderBy('name')) as Array<{ name: string; data: Buffer | null }>;
    expect(rows.map((r) => [r.name, r.data?.toString('hex') ?? null])).to.deep.equal([
      ['a', '000102ff'],
      ['b', Buffer.from('abcd').toString('hex')],
      ['c', null],
    ]);
  });

  it("rejects with the server's error code and goes on working after it", async () => {
    expect((await rejection(writer.run('this is not SQL', []))).code).to.equal('ER_PARSE_ERROR');
    await writer.run(insertNote, ['x', null]);
    expect((await rejection(writer.run(insertNote, ['x', null]))).code).to.equal('ER_DUP_ENTRY');
    expect(await db()('notes').count({ n: '*' })).to.deep.equal([{ n: 1 }]);
  });

  it("rejects each statement with the connection's error code while the server does not answer", async () => {
    const nowhere = new MysqlWriter({ ...(db().client.config.connection as Record<string, unknown>), port: 1, connectTimeout: 2000 });
    try {
      expect((await rejection(nowhere.run('select 1', []))).code).to.equal('ECONNREFUSED');
      expect((await rejection(nowhere.run('select 1', []))).code).to.equal('ECONNREFUSED');
    } finally {
      await nowhere.close();
    }
  });

  it('refuses statements after close(), with a code the store treats as transient', async () => {
    await writer.run(insertNote, ['a', null]);
    await writer.close();
    expect((await rejection(writer.run(insertNote, ['b', null]))).code).to.equal(WRITER_STOPPED);
  });
});
