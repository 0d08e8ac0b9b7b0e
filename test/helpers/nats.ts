/**
 * NATS for the cluster tests: whether a server with JetStream answers at `HUB_TEST_NATS_URL`
 * (default `nats://127.0.0.1:4222`), decided once per run within about 2 s, and a unique cluster
 * name per test so that runs never see each other's subjects, streams or buckets (all of which
 * are deleted when the run ends).
 */
import crypto from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

export const NATS_URL = process.env.HUB_TEST_NATS_URL || 'nats://127.0.0.1:4222';

let reachable: Promise<string | null> | null = null;
const clusters = new Set<string>();

/** Null when NATS with JetStream answers, else why the cluster tests are skipped. */
export function natsSkipReason(): Promise<string | null> {
  reachable ??= (async () => {
    try {
      const nc = await connect({ servers: NATS_URL, timeout: 2000, reconnect: false });
      try {
        await (await jetstreamManager(nc)).getAccountInfo();
      } finally {
        await nc.close();
      }
      return null;
    } catch (err) {
      return `NATS with JetStream does not answer at ${NATS_URL} (${(err as Error).message}); start it with: nats-server -a 127.0.0.1 -p 4222 -js`;
    }
  })();
  return reachable;
}

/** A new cluster name (`uht_<random>`), cleaned up from NATS when the run ends. */
export function uniqueCluster(): string {
  const name = `uht_${crypto.randomBytes(5).toString('hex')}`;
  clusters.add(name);
  return name;
}

/** Deletes the streams (KV buckets included) of every cluster made by `uniqueCluster`. */
export async function cleanupClusters(): Promise<void> {
  if (clusters.size === 0 || (await natsSkipReason())) return;
  const nc = await connect({ servers: NATS_URL, timeout: 2000, reconnect: false });
  try {
    const jsm = await jetstreamManager(nc);
    for await (const s of jsm.streams.list()) {
      const name = s.config.name;
      if ([...clusters].some((c) => name.startsWith(c) || name.startsWith(`KV_${c}`))) await jsm.streams.delete(name).catch(() => undefined);
    }
  } finally {
    await nc.close();
  }
  clusters.clear();
}

if (typeof after === 'function') after(cleanupClusters);
