import { expect } from 'chai';
import { countTokens, createToken, hashToken, listTokens, revokeToken, verifyToken } from '../../server/src/store/tokens.js';
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

describe('tokens store', () => {
  for (const backend of backends) {
    backend.describe(`on ${backend.name}`, () => {
      const db = useMigratedDb(backend);

      describe('#createToken', () => {
        it('returns a prefixed random secret for each kind', async () => {
          const w = await createToken(db(), 'worker', 'w1');
          const c = await createToken(db(), 'client', 'c1');
          expect(w).to.match(/^uh_w_[A-Za-z0-9_-]{43}$/);
          expect(c).to.match(/^uh_c_[A-Za-z0-9_-]{43}$/);
        });

        it('stores only the hash: no column of the table holds the secret', async () => {
          const secret = await createToken(db(), 'worker', 'w1', { service: 'img' });
          const rows = (await db()('tokens').select()) as Record<string, unknown>[];
          expect(rows).to.have.length(1);
          for (const value of Object.values(rows[0])) expect(String(value)).to.not.include(secret.slice(5));
          expect(String(rows[0].hash).trim()).to.equal(hashToken(secret));
        });

        it('refuses a name in use for the same kind, but not for the other kind', async () => {
          await createToken(db(), 'worker', 'bot');
          const err = await storeError(createToken(db(), 'worker', 'bot'));
          expect(err.code).to.equal('duplicate');
          expect(err.message).to.include('"bot"');
          await createToken(db(), 'client', 'bot');
        });

        it('lets a revoked name be used again', async () => {
          const old = await createToken(db(), 'worker', 'bot');
          await revokeToken(db(), 'worker', 'bot');
          const fresh = await createToken(db(), 'worker', 'bot');
          expect(await verifyToken(db(), 'worker', old)).to.equal(null);
          expect(await verifyToken(db(), 'worker', fresh)).to.deep.include({ name: 'bot', service: null, admin: false });
        });

        it('refuses bad names, and a service on a client key', async () => {
          for (const name of ['', 'has space', 'x'.repeat(65)]) {
            expect((await storeError(createToken(db(), 'worker', name))).code).to.equal('invalid');
          }
          expect((await storeError(createToken(db(), 'worker', 'w', { service: 'bad name' }))).code).to.equal('invalid');
          expect((await storeError(createToken(db(), 'client', 'c', { service: 'img' }))).code).to.equal('invalid');
          expect(await countTokens(db(), 'worker')).to.equal(0);
        });
      });

      describe('#verifyToken', () => {
        it('names the owner and the service of a good secret', async () => {
          const any = await createToken(db(), 'worker', 'any');
          const img = await createToken(db(), 'worker', 'only-img', { service: 'img' });
          expect(await verifyToken(db(), 'worker', any)).to.deep.include({ name: 'any', service: null, admin: false });
          expect(await verifyToken(db(), 'worker', img)).to.deep.include({ name: 'only-img', service: 'img', admin: false });
        });

        it('refuses a wrong, empty, huge or other-kind secret', async () => {
          const w = await createToken(db(), 'worker', 'w');
          const c = await createToken(db(), 'client', 'c');
          expect(await verifyToken(db(), 'worker', `${w}x`)).to.equal(null);
          expect(await verifyToken(db(), 'worker', '')).to.equal(null);
          expect(await verifyToken(db(), 'worker', 'x'.repeat(10_000))).to.equal(null);
          expect(await verifyToken(db(), 'worker', c)).to.equal(null);
          expect(await verifyToken(db(), 'client', w)).to.equal(null);
        });

        it('refuses a revoked secret', async () => {
          const w = await createToken(db(), 'worker', 'w');
          await revokeToken(db(), 'worker', 'w');
          expect(await verifyToken(db(), 'worker', w)).to.equal(null);
        });
      });

      describe('#listTokens', () => {
        it('lists names and services by name, never the secret nor the hash', async () => {
          await createToken(db(), 'worker', 'zeta', { now: 5 });
          await createToken(db(), 'worker', 'alpha', { service: 'img', now: 6 });
          await createToken(db(), 'client', 'other');
          const rows = await listTokens(db(), 'worker');
          expect(rows.map((r) => [r.name, r.service, r.created_at, r.revoked_at])).to.deep.equal([
            ['alpha', 'img', 6, null],
            ['zeta', null, 5, null],
          ]);
          for (const r of rows) expect(Object.keys(r).sort()).to.deep.equal(['admin', 'created_at', 'id', 'kind', 'name', 'revoked_at', 'service']);
        });

        it('shows revoked tokens only when asked', async () => {
          await createToken(db(), 'client', 'k');
          await revokeToken(db(), 'client', 'k', 99);
          expect(await listTokens(db(), 'client')).to.deep.equal([]);
          expect((await listTokens(db(), 'client', { includeRevoked: true }))[0].revoked_at).to.equal(99);
        });
      });

      describe('#revokeToken', () => {
        it('refuses an unknown name, and a name already revoked', async () => {
          expect((await storeError(revokeToken(db(), 'worker', 'nobody'))).code).to.equal('not_found');
          await createToken(db(), 'worker', 'w');
          await revokeToken(db(), 'worker', 'w');
          expect((await storeError(revokeToken(db(), 'worker', 'w'))).code).to.equal('not_found');
        });

        it('does not touch the other kind', async () => {
          await createToken(db(), 'client', 'same');
          expect((await storeError(revokeToken(db(), 'worker', 'same'))).code).to.equal('not_found');
          expect(await countTokens(db(), 'client')).to.equal(1);
        });
      });

      describe('#countTokens', () => {
        it('counts the unrevoked tokens of a kind', async () => {
          expect(await countTokens(db(), 'worker')).to.equal(0);
          await createToken(db(), 'worker', 'a');
          await createToken(db(), 'worker', 'b');
          await createToken(db(), 'client', 'c');
          await revokeToken(db(), 'worker', 'a');
          expect(await countTokens(db(), 'worker')).to.equal(1);
          expect(await countTokens(db(), 'client')).to.equal(1);
        });
      });
    });
  }
});
