/**
 * Opens (creating when missing) a KV bucket whose keys live `ttlMs` after their last put: the
 * bucket-wide TTL is the one NATS 2.9 has, and it makes every key a lease its holder must renew.
 */
import type { KV } from '@nats-io/kv';
import type { Broker } from './broker.js';

/** The bucket `name` with a TTL of `ttlMs` (ms); an existing bucket is used as it is. */
export async function leaseBucket(broker: Broker, name: string, ttlMs: number): Promise<KV> {
  try {
    return await broker.kvm.create(name, { ttl: ttlMs, history: 1 });
  } catch {
    // Created meanwhile by another hub, or with another TTL (hubs started with another heartbeat):
    // use it as it is rather than fight over its configuration.
    return broker.kvm.open(name);
  }
}
