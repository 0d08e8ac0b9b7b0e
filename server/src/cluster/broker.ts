/**
 * The hub's connection to NATS (docs/cluster.md): one connection, with JetStream, its manager and
 * the KV manager on it; whether it is up right now (for `/readyz` and for refusing what needs
 * another hub with `unavailable`). The client reconnects by itself, without end.
 */
import { EventEmitter } from 'node:events';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';

/** Options of `Broker.connect`. */
export interface BrokerOptions {
  /** `HUB_BROKER`: one or several comma-separated `nats://host:port` URLs. */
  url: string;
  /** The connection's name as NATS monitoring shows it (the hub id). */
  name: string;
  /** Interval of the client's pings, in ms: a dead server is noticed after 2 of them. Default 2000. */
  pingIntervalMs?: number;
}

/** Events of a `Broker`. */
export interface BrokerEvents {
  /** The connection went down (`up` false) or came back (`up` true). */
  change: [up: boolean];
}

export class Broker extends EventEmitter<BrokerEvents> {
  private isUp = true;
  private closing: Promise<void> | null = null;

  private constructor(
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly kvm: Kvm,
  ) {
    super();
    void this.watch();
  }

  /** Connects (the first connection must succeed: a hub whose broker is down at start does not start). */
  static async connect(options: BrokerOptions): Promise<Broker> {
    const servers = options.url
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const nc = await connect({
      servers,
      name: options.name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      pingInterval: options.pingIntervalMs ?? 2000,
      maxPingOut: 2,
      // Without it every request (a JetStream publish, ack or delete: several per task) builds
      // two Error objects up front, stack traces included, in case it times out: 14 % of a
      // cluster hub's CPU under load. Our errors name the operation themselves.
      noAsyncTraces: true,
    });
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    return new Broker(nc, js, jsm, new Kvm(js));
  }

  /** True while the connection to NATS is up. */
  get up(): boolean {
    return this.isUp && !this.nc.isClosed();
  }

  private async watch(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect' || s.type === 'staleConnection') this.set(false);
      else if (s.type === 'reconnect') this.set(true);
    }
  }

  private set(up: boolean): void {
    if (this.isUp === up) return;
    this.isUp = up;
    this.emit('change', up);
  }

  /** Drains and closes the connection; safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.nc.drain().catch(() => this.nc.close());
    return this.closing;
  }
}
