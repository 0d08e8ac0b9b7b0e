/**
 * The live view of the operator page (`GET /api/overview`): services with their connections,
 * queue lengths, and recent tasks with their progress and their end. Built on demand from the
 * hub's state; the only state kept here is a short ring of ended tasks, fed once per task end.
 */
import type { Hub, HubState, WorkerConnectionView } from '../core/hub.js';
import type { EndedTask } from '../core/ended-tasks.js';
import type { Overview, OverviewConnection, OverviewHub, OverviewService, OverviewTask } from './overview-shape.js';

export type { Overview, OverviewConnection, OverviewService, OverviewTask } from './overview-shape.js';

/** Options of {@link OverviewSource}. */
export interface OverviewOptions {
  /** Most running tasks listed. Default 50. */
  maxRunning?: number;
  /** Most queued tasks listed (the oldest ones). Default 20. */
  maxQueued?: number;
  /** Most ended tasks listed (the latest ones). Default 30. */
  maxEnded?: number;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function connectionView(hubId: string, c: WorkerConnectionView): OverviewConnection {
  return {
    connection_id: c.id,
    hub_id: hubId,
    instance: c.instance,
    dialed: c.dialed,
    remote: c.remote,
    in_flight: c.inFlight,
    concurrency: c.concurrency,
    draining: c.draining,
    connected_at: iso(c.connectedAt),
  };
}

function hubView(st: HubState, self: boolean): OverviewHub {
  return {
    hub_id: st.id,
    self,
    url: st.url,
    started_at: st.answered ? iso(st.startedAt) : null,
    answered: st.answered,
    clients: st.clients,
    running: st.running,
    queued: st.queued,
    worker_connections: st.connections.length,
  };
}

export class OverviewSource {
  private readonly maxRunning: number;
  private readonly maxQueued: number;
  private readonly maxEnded: number;
  /** The latest ended tasks, oldest first. */
  private readonly ended: EndedTask[] = [];

  constructor(
    private readonly hub: Hub,
    options: OverviewOptions = {},
  ) {
    this.maxRunning = options.maxRunning ?? 50;
    this.maxQueued = options.maxQueued ?? 20;
    this.maxEnded = options.maxEnded ?? 30;
    hub.onEnd((t) => this.remember(t));
  }

  private name(serviceId: number): string {
    return this.hub.serviceName(serviceId) ?? `#${serviceId}`;
  }

  /** Keeps the ended task as it is; it is shaped for the page only when the page asks (no work per task). */
  private remember(t: EndedTask): void {
    this.ended.push(t);
    if (this.ended.length > this.maxEnded) this.ended.shift();
  }

  private endedView(t: EndedTask): OverviewTask {
    return {
      task_id: t.id,
      service_id: t.serviceId,
      service_name: this.name(t.serviceId),
      status: t.status,
      progress: t.progress,
      message: t.message,
      attempts: t.attempts,
      connection_id: null,
      created_at: iso(t.createdAt)!,
      started_at: iso(t.startedAt),
      finished_at: iso(t.finishedAt),
      error: t.error ? { code: t.error.code, message: t.error.message } : null,
    };
  }

  /** The overview now; in a cluster, with what every other hub answers (within 500 ms). */
  async snapshot(): Promise<Overview> {
    const { hub } = this;
    const peers = await hub.peerStates();
    const services: OverviewService[] = hub.services().map((s) => ({
      service_id: s.id,
      service_name: s.name,
      service_description: s.me.description,
      live: s.live,
      queued: s.queued,
      connections: hub.workerConnections(s.id).map((c) => connectionView(hub.hubId, c)),
    }));
    // Other hubs' connections join their service (one the registry has not read yet is added).
    const byId = new Map(services.map((s) => [s.service_id, s]));
    for (const p of peers) {
      for (const c of p.connections) {
        let s = byId.get(c.serviceId);
        if (!s) {
          s = { service_id: c.serviceId, service_name: c.serviceName, service_description: '', live: true, queued: 0, connections: [] };
          byId.set(c.serviceId, s);
          services.push(s);
        }
        s.live = true;
        s.connections.push(connectionView(p.id, c));
      }
    }
    services.sort((a, b) => a.service_id - b.service_id);

    // One pass over the live tasks that stops once it has what it shows: every running task
    // (up to the cap) and the oldest queued ones; a deep queue is summed up by `queued` above.
    const running: OverviewTask[] = [];
    const queued: OverviewTask[] = [];
    const wantRunning = Math.min(hub.runningCount, this.maxRunning);
    for (const r of hub.liveTasks()) {
      const list = r.status === 'running' ? running : queued;
      const cap = r.status === 'running' ? this.maxRunning : this.maxQueued;
      if (list.length < cap) {
        list.push({
          task_id: r.id,
          service_id: r.serviceId,
          service_name: this.name(r.serviceId),
          status: r.status === 'running' ? 'running' : 'queued',
          progress: r.progress,
          message: r.message,
          attempts: r.attempt,
          connection_id: r.connectionId,
          created_at: iso(r.createdAt)!,
          started_at: iso(r.startedAt),
          finished_at: null,
          error: null,
        });
      }
      if (running.length >= wantRunning && queued.length >= this.maxQueued) break;
    }
    return {
      now: new Date().toISOString(),
      hub_id: hub.hubId,
      cluster: hub.config.broker ? hub.config.cluster : null,
      hubs: [hubView(hub.hubState(), true), ...peers.map((p) => hubView(p, false))],
      shutting_down: hub.shuttingDown,
      clients: hub.clientCount,
      running: hub.runningCount,
      queued: hub.queuedCount,
      max_message_bytes: hub.config.maxMessageBytes,
      services,
      tasks: [...running.reverse(), ...queued, ...this.ended.map((t) => this.endedView(t)).reverse()],
    };
  }
}
