/**
 * Load reports (docs/cluster.md "Who knows what"): every hub publishes, on the core subject
 * `<cluster>.load`, what its worker connections carry, every second and soon after a change;
 * every hub keeps the latest report of each other hub and forgets a hub silent for 3 s. Core
 * NATS (at most once) is enough: a lost report is replaced a second later.
 */
import type { Subscription } from '@nats-io/transport-node';
import type { Broker } from './broker.js';

/** One service's load on one hub. */
export interface ServiceLoad {
  /** Live connections (not draining). */
  connections: number;
  /** Tasks in flight over them. */
  inFlight: number;
  /** Sum of their concurrency. */
  capacity: number;
  /** Lowest `inFlight / concurrency` among connections with a free slot; null when none has one. */
  bestLoad: number | null;
  /** Tasks waiting in this hub's own queue of the service. */
  queued: number;
  /** The service's name (so a hub that never loaded it can tell). */
  name: string;
}

/** A hub's report. */
export interface LoadReport {
  hub: string;
  /** When it was made, ms since the epoch (the sender's clock). */
  at: number;
  /** By service id. */
  services: Record<string, ServiceLoad>;
}

/** Options of `LoadReports`. */
export interface LoadReportOptions {
  /** How often this hub publishes its report, in ms. Default 1000. */
  intervalMs?: number;
  /** A hub silent this long is forgotten, in ms. Default 3000. */
  maxSilenceMs?: number;
  /** Called when another hub's report arrives or one is forgotten. */
  onChange?: () => void;
  /** The clock. */
  now?: () => number;
}

export class LoadReports {
  private readonly peers = new Map<string, { report: LoadReport; heardAt: number }>();
  private readonly sub: Subscription;
  private readonly timer: NodeJS.Timeout;
  private soon: NodeJS.Timeout | null = null;
  private readonly intervalMs: number;
  private readonly maxSilenceMs: number;
  private readonly now: () => number;
  private closed = false;

  /**
   * Starts publishing `collect()` as hub `hubId`'s report on `subject`, and listening to the others'.
   */
  constructor(
    private readonly broker: Broker,
    private readonly subject: string,
    private readonly hubId: string,
    private readonly collect: () => Record<string, ServiceLoad>,
    private readonly options: LoadReportOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.maxSilenceMs = options.maxSilenceMs ?? 3000;
    this.now = options.now ?? Date.now;
    this.sub = broker.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        try {
          const report = msg.json<LoadReport>();
          if (report.hub === this.hubId || typeof report.services !== 'object' || report.services === null) return;
          this.peers.set(report.hub, { report, heardAt: this.now() });
          this.options.onChange?.();
        } catch {
          // Not a report (another version, garbage): ignored, the next one replaces it.
        }
      },
    });
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    this.timer.unref();
    this.publish();
  }

  /** Publishes this hub's report within 20 ms (coalescing bursts of connection changes). */
  publishSoon(): void {
    if (this.soon || this.closed) return;
    this.soon = setTimeout(() => {
      this.soon = null;
      this.publish();
    }, 20);
    this.soon.unref();
  }

  private publish(): void {
    if (this.closed || !this.broker.up) return;
    const report: LoadReport = { hub: this.hubId, at: this.now(), services: this.collect() };
    try {
      this.broker.nc.publish(this.subject, JSON.stringify(report));
    } catch {
      // The connection is closing: the next tick tries again.
    }
  }

  private tick(): void {
    this.publish();
    const limit = this.now() - this.maxSilenceMs;
    let dropped = false;
    for (const [id, p] of this.peers) {
      if (p.heardAt < limit) {
        this.peers.delete(id);
        dropped = true;
      }
    }
    if (dropped) this.options.onChange?.();
  }

  /** Forgets a hub at once (its liveness key is gone). */
  forget(hubId: string): void {
    if (this.peers.delete(hubId)) this.options.onChange?.();
  }

  /** The latest report of every other hub heard within the silence limit. */
  reports(): LoadReport[] {
    const limit = this.now() - this.maxSilenceMs;
    const out: LoadReport[] = [];
    for (const p of this.peers.values()) if (p.heardAt >= limit) out.push(p.report);
    return out;
  }

  /** Lowest `bestLoad` any other hub reported for the service, or null when none has a free slot. */
  bestRemoteLoad(serviceId: number): number | null {
    let best: number | null = null;
    for (const r of this.reports()) {
      const s = r.services[serviceId];
      if (s && s.bestLoad !== null && (best === null || s.bestLoad < best)) best = s.bestLoad;
    }
    return best;
  }

  /** Stops publishing and listening; safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    if (this.soon) clearTimeout(this.soon);
    try {
      this.sub.unsubscribe();
    } catch {
      // Already closed with the connection.
    }
  }
}
