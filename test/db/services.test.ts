import { expect } from 'chai';
import type { ServiceDescription } from '@utils-hub/protocol';
import { getServiceById, getServiceByName, listServices, upsertService } from '../../server/src/store/services.js';
import { dbBackends, useMigratedDb } from '../helpers/db.js';

const backends = await dbBackends();

function me(name: string, description = 'a service'): ServiceDescription {
  return {
    name,
    description,
    input: [{ argument_name: 'text', argument_description: 'Some text', type: 'str' }],
  } as ServiceDescription;
}

describe('services store', () => {
  for (const backend of backends) {
    backend.describe(`on ${backend.name}`, () => {
      const db = useMigratedDb(backend);

      describe('#upsertService', () => {
        it('gives a new name a new id', async () => {
          const a = await upsertService(db(), me('alpha'));
          const b = await upsertService(db(), me('beta'));
          expect(a).to.be.a('number');
          expect(b).to.not.equal(a);
        });

        it('keeps the id of a known name and stores its new description', async () => {
          const id = await upsertService(db(), me('alpha', 'first'), 1000);
          expect(await upsertService(db(), me('alpha', 'second'), 2000)).to.equal(id);
          const row = await getServiceById(db(), id);
          expect(row).to.deep.include({ id, name: 'alpha', description: 'second', created_at: 1000, updated_at: 2000 });
          expect(row!.me).to.deep.equal(me('alpha', 'second'));
        });

        it('leaves an unchanged description alone', async () => {
          const id = await upsertService(db(), me('alpha'), 1000);
          await upsertService(db(), me('alpha'), 5000);
          expect((await getServiceById(db(), id))!.updated_at).to.equal(1000);
        });

        it('gives one id to the same name registered at once', async () => {
          const ids = await Promise.all([1, 2, 3, 4].map(() => upsertService(db(), me('gamma'))));
          expect(new Set(ids).size).to.equal(1);
          expect(await listServices(db())).to.have.length(1);
        });

        it('treats names that differ in case as different services', async () => {
          const a = await upsertService(db(), me('img'));
          const b = await upsertService(db(), me('IMG'));
          expect(a).to.not.equal(b);
        });
      });

      describe('#getServiceById', () => {
        it('returns null for an unknown or impossible id', async () => {
          expect(await getServiceById(db(), 999)).to.equal(null);
          expect(await getServiceById(db(), -1)).to.equal(null);
          expect(await getServiceById(db(), 1.5)).to.equal(null);
        });
      });

      describe('#getServiceByName', () => {
        it('finds a service by its exact name', async () => {
          const id = await upsertService(db(), me('delta'));
          expect((await getServiceByName(db(), 'delta'))!.id).to.equal(id);
          expect(await getServiceByName(db(), 'DELTA')).to.equal(null);
        });
      });

      describe('#listServices', () => {
        it('lists every service ordered by id', async () => {
          for (const n of ['c', 'a', 'b']) await upsertService(db(), me(n));
          const rows = await listServices(db());
          expect(rows.map((r) => r.name)).to.deep.equal(['c', 'a', 'b']);
          expect(rows.map((r) => r.id)).to.deep.equal([...rows.map((r) => r.id)].sort((x, y) => x - y));
        });
      });
    });
  }
});
