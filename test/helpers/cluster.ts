/**
 * Hub processes of a cluster for the multi-process tests (test/cluster/): a fresh MariaDB
 * database and a unique cluster name per suite, `utils-hub start` processes on them, and raw
 * WebSocket workers and clients so that a test decides when a worker is busy and when it answers.
 */
import { dbBackends } from './db.js';
import { natsSkipReason, uniqueCluster, NATS_URL } from './nats.js';
import { CLI, run, type Proc } from './processes.js';
import { WsPeer, type Msg } from './ws-peer.js';
import { eventually } from './wait.js';

/**
 * Heartbeat of the test hubs: a dead hub's tasks move after 3 of them (3 s). Not shorter: on a
 * loaded machine this process may not answer a ping within 2 heartbeats, and the hub would drop
 * its sockets.
 */
export const HEARTBEAT_MS = 1000;

/** A hub process of the test cluster. */
export interface HubProc {
  id: string;
  url: string;
  wsUrl: string;
  proc: Proc & { url: string };
}

/** `eventually` (test/helpers/wait.ts) with the timeout before the description, as the cluster suites call it. */
export async function until<T>(get: () => Promise<T> | T, ok: (v: T) => boolean, ms = 8000, what = 'condition'): Promise<T> {
  return eventually(async () => await get(), ok, what, ms);
}

/** Waits (8 s at most) until `hub`'s `/service_info` counts `n` live connections of the service, wherever they are. */
export async function connectionsSeen(hub: { url: string }, serviceId: number, n: number, what: string): Promise<void> {
  await until(
    () => http(hub, 'GET', `/service_info/${serviceId}`),
    (r) => r.status === 200 && r.body.connections === n,
    8000,
    what,
  );
}

/** One HTTP request to a hub; the body parsed as JSON when it is. */
export async function http(hub: { url: string }, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${hub.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

/** A service description with one int argument `x`. */
export const me = (name: string) => ({
  name,
  description: `cluster test ${name}`,
  input: [{ argument_name: 'x', argument_description: 'a number', type: 'int' }],
});

/** A raw worker connected to `hub`, after its `welcome`. */
export async function worker(hub: HubProc, name: string, concurrency = 1): Promise<WsPeer & { welcome: Msg }> {
  const peer = await WsPeer.open(`${hub.wsUrl}/worker`);
  peer.send({ type: 'hello', protocol: 1, me: me(name), concurrency, instance: hub.id });
  const welcome = await peer.next((m) => m.type === 'welcome' || m.type === 'error');
  if (welcome.type !== 'welcome') throw new Error(`worker refused: ${JSON.stringify(welcome)}`);
  return Object.assign(peer, { welcome });
}

/** A raw client connected to `hub`, after its first `services`. */
export async function client(hub: HubProc): Promise<WsPeer> {
  const peer = await WsPeer.open(`${hub.wsUrl}/client`);
  await peer.nextOf('services');
  return peer;
}

/** Skips the suite of `ctx` (a `before` hook's `this`), saying why, when NATS or MariaDB is silent. */
export async function skipWithoutCluster(ctx: Mocha.Context): Promise<void> {
  const why = await clusterSkipReason();
  if (!why) return;
  console.log(`    cluster suite skipped: ${why}`);
  ctx.skip();
}

/** Why the cluster tests cannot run here (NATS or MariaDB silent), or null. */
export async function clusterSkipReason(): Promise<string | null> {
  const nats = await natsSkipReason();
  const mysqlBackend = (await dbBackends()).find((b) => b.name === 'mysql')!;
  return nats ?? (mysqlBackend.skipReason ? `MariaDB does not answer (${mysqlBackend.skipReason})` : null);
}

/** A test cluster: its database, its name, and a way to start hub processes in it. */
export interface TestCluster {
  db: string;
  name: string;
  /** Starts `utils-hub start` as hub `id` of the cluster (env added to the defaults). */
  startHub(id: string, env?: Record<string, string>): Promise<HubProc>;
}

/** A fresh database and cluster name (NATS at `broker`, default the shared test server). */
export async function testCluster(broker = NATS_URL): Promise<TestCluster> {
  const mysqlBackend = (await dbBackends()).find((b) => b.name === 'mysql')!;
  const db = await mysqlBackend.freshDatabase();
  const name = uniqueCluster();
  return {
    db,
    name,
    async startHub(id, env = {}) {
      const p = run(process.execPath, [CLI, 'start', '--port', '0', '--db', db], {
        HUB_BROKER: broker,
        HUB_CLUSTER: name,
        HUB_ID: id,
        HUB_HEARTBEAT_MS: String(HEARTBEAT_MS),
        HUB_LOG_LEVEL: 'warn',
        ...env,
      });
      // Generous: on a loaded machine a start (migrations, NATS, MariaDB) can take seconds.
      const url = (await p.waitFor(/utils-hub listening on (http:\/\/\S+)/, 45_000))[1];
      return { id, url, wsUrl: url.replace(/^http/, 'ws'), proc: Object.assign(p, { url }) };
    },
  };
}

/** What {@link useThreeHubs} gives a suite. */
export interface ThreeHubs {
  /** The cluster (its database and name), once `before` ran. */
  cluster(): TestCluster;
  /** The three hubs, A, B and C, once `before` ran (a test may push more, stopped in `after`). */
  readonly hubs: HubProc[];
  /** Closes `peer` after the current test. */
  track<T extends WsPeer>(peer: T): T;
}

/**
 * Three hub processes of one fresh test cluster for a whole suite, named `<prefix>-a`, `-b` and
 * `-c`, the first started alone (it migrates the database); the suite skipped, saying why, when
 * MariaDB or NATS does not answer. Peers given to `track` are closed after each test; every hub
 * in `hubs` is killed after the suite.
 */
export function useThreeHubs(prefix: string): ThreeHubs {
  let tc: TestCluster | undefined;
  const hubs: HubProc[] = [];
  const peers: WsPeer[] = [];

  before(async function () {
    await skipWithoutCluster(this);
    tc = await testCluster();
    hubs.push(await tc.startHub(`${prefix}-a`));
    hubs.push(...(await Promise.all([tc.startHub(`${prefix}-b`), tc.startHub(`${prefix}-c`)])));
  });

  afterEach(async () => {
    await Promise.all(peers.splice(0).map((p) => p.close().catch(() => undefined)));
  });

  after(async () => {
    for (const h of hubs) h.proc.kill('SIGKILL');
    await Promise.all(hubs.map((h) => h.proc.exited));
  });

  return {
    cluster: () => tc!,
    hubs,
    track: (peer) => {
      peers.push(peer);
      return peer;
    },
  };
}
