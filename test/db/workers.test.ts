import { expect } from 'chai';
import { addWorker, listWorkers, normalizeWorkerUrl, removeWorker, setWorkerEnabled } from '../../server/src/store/workers.js';
import { StoreError } from '../../server/src/store/errors.js';
import { dbBackends, useMigratedDb } from '../helpers/db.js';

const backends = await dbBackends();

async function storeError(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(StoreError);
    return err as StoreError;
  }
  throw new Error('expected a StoreError');
}

describe('normalizeWorkerUrl', () => {
  it('drops the trailing slash and keeps a path prefix', () => {
    expect(normalizeWorkerUrl('http://10.0.0.5:9001/')).to.equal('http://10.0.0.5:9001');
    expect(normalizeWorkerUrl('https://h.example/svc/')).to.equal('https://h.example/svc');
  });

  for (const url of ['ftp://h', 'not a url', 'ws://h:1', 'http://u:p@h', 'http://h/?a=1', 'http://h/#x', `http://h/${'a'.repeat(600)}`]) {
    it(`refuses ${JSON.stringify(url.slice(0, 30))}`, () => {
      expect(() => normalizeWorkerUrl(url))
        .to.throw(StoreError)
        .with.property('code', 'invalid');
    });
  }
});

describe('workers store', () => {
  for (const backend of backends) {
    backend.describe(`on ${backend.name}`, () => {
      const db = useMigratedDb(backend);

      describe('#addWorker', () => {
        it('lists a worker, enabled', async () => {
          const row = await addWorker(db(), 'http://10.0.0.5:9001/', 1234);
          expect(row).to.deep.include({ url: 'http://10.0.0.5:9001', enabled: true, created_at: 1234 });
          expect(await listWorkers(db())).to.deep.equal([row]);
        });

        it('refuses a URL already listed, even written differently', async () => {
          await addWorker(db(), 'http://10.0.0.5:9001');
          const err = await storeError(addWorker(db(), 'http://10.0.0.5:9001/'));
          expect(err.code).to.equal('duplicate');
          expect(err.message).to.include('already listed');
        });

        it('refuses a URL that is not http or https', async () => {
          expect((await storeError(addWorker(db(), 'ftp://10.0.0.5'))).code).to.equal('invalid');
          expect(await listWorkers(db())).to.deep.equal([]);
        });
      });

      describe('#listWorkers', () => {
        it('keeps only enabled workers with enabledOnly', async () => {
          await addWorker(db(), 'http://a:1');
          await addWorker(db(), 'http://b:1');
          await setWorkerEnabled(db(), 'http://a:1', false);
          expect((await listWorkers(db())).map((w) => [w.url, w.enabled])).to.deep.equal([
            ['http://a:1', false],
            ['http://b:1', true],
          ]);
          expect((await listWorkers(db(), { enabledOnly: true })).map((w) => w.url)).to.deep.equal(['http://b:1']);
        });
      });

      describe('#setWorkerEnabled', () => {
        it('disables and enables again, setting the same value twice without error', async () => {
          await addWorker(db(), 'http://a:1');
          await setWorkerEnabled(db(), 'http://a:1', false);
          await setWorkerEnabled(db(), 'http://a:1', false);
          expect((await listWorkers(db()))[0].enabled).to.equal(false);
          await setWorkerEnabled(db(), 'http://a:1/', true);
          expect((await listWorkers(db()))[0].enabled).to.equal(true);
        });

        it('refuses an unknown URL', async () => {
          expect((await storeError(setWorkerEnabled(db(), 'http://nobody:1', true))).code).to.equal('not_found');
        });
      });

      describe('#removeWorker', () => {
        it('forgets a worker', async () => {
          await addWorker(db(), 'http://a:1');
          await addWorker(db(), 'http://b:1');
          await removeWorker(db(), 'http://a:1/');
          expect((await listWorkers(db())).map((w) => w.url)).to.deep.equal(['http://b:1']);
        });

        it('refuses an unknown URL', async () => {
          const err = await storeError(removeWorker(db(), 'http://nobody:1'));
          expect(err.code).to.equal('not_found');
          expect(err.message).to.include('http://nobody:1');
        });
      });
    });
  }
});
