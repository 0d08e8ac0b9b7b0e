/**
 * Cluster mode's options (docs/protocol.md section 9, docs/cluster.md): HUB_BROKER, HUB_CLUSTER,
 * HUB_ID, and the refusal of a SQLite database with a broker. No NATS needed.
 */
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../server/src/config.js';

const MYSQL = 'mysql://root@127.0.0.1:3306/x';

describe('cluster options', () => {
  it('defaults to one hub alone, cluster utils-hub, a random id', () => {
    const c = loadConfig({});
    expect(c.broker).to.equal(null);
    expect(c.cluster).to.equal('utils-hub');
    expect(c.hubId).to.equal(null);
  });

  it('reads HUB_BROKER, HUB_CLUSTER and HUB_ID', () => {
    const c = loadConfig({ HUB_BROKER: 'nats://127.0.0.1:4222, nats://10.0.0.2:4222', HUB_CLUSTER: 'prod_eu-1', HUB_ID: 'hub-7', HUB_DB: MYSQL });
    expect(c).to.include({ broker: 'nats://127.0.0.1:4222, nats://10.0.0.2:4222', cluster: 'prod_eu-1', hubId: 'hub-7' });
  });

  it('refuses a SQLite database with a broker, saying why', () => {
    expect(() => loadConfig({ HUB_BROKER: 'nats://127.0.0.1:4222' })).to.throw(
      ConfigError,
      /HUB_DB: cluster mode \(HUB_BROKER\) needs a MySQL\/MariaDB database: every hub must read the rows the others write/,
    );
  });

  it('refuses garbage in each option, naming it', () => {
    const bad: Array<[Record<string, string>, RegExp]> = [
      [{ HUB_BROKER: 'http://127.0.0.1:4222', HUB_DB: MYSQL }, /^HUB_BROKER/],
      [{ HUB_BROKER: 'nats://a b', HUB_DB: MYSQL }, /^HUB_BROKER/],
      [{ HUB_BROKER: 'nats://a:1,', HUB_DB: MYSQL }, /^HUB_BROKER/],
      [{ HUB_CLUSTER: 'a.b' }, /^HUB_CLUSTER/],
      [{ HUB_CLUSTER: 'a*' }, /^HUB_CLUSTER/],
      [{ HUB_CLUSTER: 'x'.repeat(65) }, /^HUB_CLUSTER/],
      [{ HUB_CLUSTER: 'a>b' }, /^HUB_CLUSTER/],
      [{ HUB_ID: 'a.b' }, /^HUB_ID/],
      [{ HUB_ID: 'é' }, /^HUB_ID/],
    ];
    for (const [env, re] of bad) expect(() => loadConfig(env), JSON.stringify(env)).to.throw(ConfigError, re);
  });
});
