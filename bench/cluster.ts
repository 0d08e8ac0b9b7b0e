/**
 * The engines of a cluster under test (the soak with `--hubs N`, the cluster scenarios of
 * `npm run bench`): a fresh MariaDB database and a cluster name of its own on NATS, and their
 * removal once the run ends, so that a run never sees another cluster's subjects, streams or
 * rows, nor leaves its own behind.
 */
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import mysql from 'mysql2/promise';

/** The NATS server of this machine (docs/cluster.md). */
export const DEFAULT_BROKER = 'nats://127.0.0.1:4222';

/** Null when NATS with JetStream answers at `broker` within about 2 s, else why not. */
export async function natsProblem(broker = DEFAULT_BROKER): Promise<string | null> {
  try {
    const nc = await connect({ servers: broker, timeout: 2000, reconnect: false });
    try {
      await (await jetstreamManager(nc)).getAccountInfo();
    } finally {
      await nc.close();
    }
    return null;
  } catch (err) {
    return `NATS with JetStream does not answer at ${broker} (${(err as Error).message})`;
  }
}

/** What the hubs of one cluster under test share. */
export interface TestCluster {
  /** `HUB_DB` of the hubs: the fresh database. */
  db: string;
  /** `HUB_BROKER` and `HUB_CLUSTER` of the hubs. */
  broker: string;
  name: string;
  /** The server part of `db`, to drop the database with. */
  server: string;
  database: string;
}

/**
 * Creates database `<name>` on the MariaDB server at `server` (default `HUB_TEST_MYSQL_URL` or
 * `mysql://root@127.0.0.1:3306`) and checks that NATS with JetStream answers at `broker`
 * (default `nats://127.0.0.1:4222`); throws saying which one does not answer.
 */
export async function clusterUp(server: string | undefined, broker: string | undefined, name: string): Promise<TestCluster> {
  const serverUrl = server ?? process.env.HUB_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
  const brokerUrl = broker ?? DEFAULT_BROKER;
  const problem = await natsProblem(brokerUrl);
  if (problem) throw new Error(problem);
  const admin = await mysql.createConnection({ uri: serverUrl, connectTimeout: 3000 });
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`);
  } finally {
    await admin.end();
  }
  const db = new URL(serverUrl);
  db.pathname = `/${name}`;
  return { db: db.toString(), broker: brokerUrl, name, server: serverUrl, database: name };
}

/** Drops the database and deletes the cluster's streams and KV buckets. Safe to call twice. */
export async function clusterDown(c: TestCluster): Promise<void> {
  const admin = await mysql.createConnection({ uri: c.server, connectTimeout: 3000 });
  try {
    await admin.query(`DROP DATABASE IF EXISTS \`${c.database}\``);
  } finally {
    await admin.end();
  }
  const nc = await connect({ servers: c.broker, timeout: 2000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc);
    for await (const s of jsm.streams.list()) {
      const stream = s.config.name;
      if (stream.startsWith(c.name) || stream.startsWith(`KV_${c.name}`)) await jsm.streams.delete(stream).catch(() => undefined);
    }
  } finally {
    await nc.close();
  }
}
