/**
 * The engines of a soak with hubs (`soak.ts --hubs N`): a fresh MariaDB database and a cluster
 * name of its own on NATS, and their removal once the run ends, so that a soak never sees
 * another cluster's subjects, streams or rows, nor leaves its own behind.
 */
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import mysql from 'mysql2/promise';

/** What the hubs of one soak share. */
export interface SoakCluster {
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
export async function clusterUp(server: string | undefined, broker: string | undefined, name: string): Promise<SoakCluster> {
  const serverUrl = server ?? process.env.HUB_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
  const brokerUrl = broker ?? 'nats://127.0.0.1:4222';
  try {
    const nc = await connect({ servers: brokerUrl, timeout: 2000, reconnect: false });
    try {
      await (await jetstreamManager(nc)).getAccountInfo();
    } finally {
      await nc.close();
    }
  } catch (err) {
    throw new Error(`NATS with JetStream does not answer at ${brokerUrl}: ${(err as Error).message}`);
  }
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
export async function clusterDown(c: SoakCluster): Promise<void> {
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
