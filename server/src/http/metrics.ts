/**
 * The hub's Prometheus metrics (`GET /metrics`), in a registry of their own per hub: tests build
 * many hubs in one process, and the global default registry would mix them up.
 *
 * Cost: nothing per progress message. Task counters and histograms move once per ended task
 * (`hub.onEnd`); gauges and the counters kept in `hub.stats` are read when Prometheus scrapes.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Hub } from '../core/hub.js';
import { FastCounter, FastHistogram, type CounterSeries, type HistogramSeries } from './series.js';
import type { EndedTask } from '../core/ended-tasks.js';
import type { WriteHealth } from '../store/write-health.js';

/** Bucket bounds of the task duration histogram, in seconds: 10 ms to 1 hour (the longest default run deadline). */
export const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600];
/** Bucket bounds of the queue-wait histogram, in seconds: 1 ms to 5 minutes. */
export const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** Also export Node's process metrics (`process_*`, `nodejs_*`). Default true. */
  processMetrics?: boolean;
  /** The task store's failed writes; without it, their metrics are left out. */
  writes?: Pick<WriteHealth, 'rows' | 'failingForMs'>;
}

/** The metrics of one hub. */
export interface HubMetrics {
  /** The registry that holds the hub's own metrics (the process metrics are shared, see below). */
  readonly registry: Registry;
  /** The exposition text and its content type, for `GET /metrics`. */
  scrape(): Promise<{ contentType: string; body: string }>;
}

/**
 * Turns a counter kept as a plain number elsewhere (`hub.stats`) into a Prometheus counter: each
 * scrape adds what it grew by since the previous one, so the counter never goes backwards.
 */
class Follower {
  private readonly seen = new Map<string, number>();

  follow(counter: Counter<string>, labels: Record<string, string>, value: number): void {
    const key = JSON.stringify(labels);
    const delta = value - (this.seen.get(key) ?? 0);
    this.seen.set(key, value);
    // Adding 0 still shows the series, at 0, from the first scrape on.
    counter.inc(labels, Math.max(0, delta));
  }
}

/**
 * Node's process metrics, in one registry per process: they describe the process, not a hub, and
 * prom-client's collectors (an event-loop delay monitor, a GC observer) are never stopped, so one
 * set per hub would pile up in a process that builds many hubs (tests).
 */
let processRegistry: Registry | undefined;

function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Creates the hub's metrics and hooks them to the hub. */
export function createMetrics(hub: Hub, options: MetricsOptions = {}): HubMetrics {
  const registry = new Registry();
  const registers = [registry];
  const shared = (options.processMetrics ?? true) ? processMetrics() : undefined;
  const serviceName = (id: number) => hub.serviceName(id) ?? `#${id}`;
  const follower = new Follower();

  // Counted on the hot path (once per ended task): series made once per label set and kept, so
  // that an ended task costs a few additions (series.ts).
  const tasks = new FastCounter({
    name: 'utils_hub_tasks_total',
    help: 'Tasks ended, by service, end status and error code ("" when succeeded).',
    registry,
  });
  const duration = new FastHistogram({
    name: 'utils_hub_task_duration_seconds',
    help: 'Run time of ended tasks that started, from the start of their last attempt to their end, by service and end status.',
    buckets: DURATION_BUCKETS,
    registry,
  });
  const queueWait = new FastHistogram({
    name: 'utils_hub_task_queue_wait_seconds',
    help:
      'Time from submission to start, by service, counted when the task ends; a task that ended without starting ' +
      '(no_worker, canceled, shutting_down) counts its whole wait; requeued tasks (more than one attempt) are left out.',
    buckets: WAIT_BUCKETS,
    registry,
  });

  // The series of each (service, status, code), looked up once. Bounded: services x 3 statuses x
  // error codes.
  const labelSets = new Map<number | string, { ended: CounterSeries; ran: HistogramSeries; waited: HistogramSeries }>();
  hub.onEnd((t: EndedTask) => {
    const code = t.status === 'succeeded' ? '' : (t.error?.code ?? '');
    // A succeeded task's key is its service id: no string to build for the common case.
    const key = t.status === 'succeeded' ? t.serviceId : `${t.serviceId} ${t.status} ${code}`;
    let l = labelSets.get(key);
    if (!l) {
      const service = serviceName(t.serviceId);
      l = {
        ended: tasks.series({ service, status: t.status, code }),
        ran: duration.series({ service, status: t.status }),
        waited: queueWait.series({ service }),
      };
      // A worker's own error code is not bounded like the hub's: keep the map from growing with them.
      if (labelSets.size < 10_000) labelSets.set(key, l);
    }
    l.ended.value++;
    if (t.startedAt !== null) l.ran.observe(Math.max(0, t.finishedAt - t.startedAt) / 1000);
    if (t.attempts <= 1) l.waited.observe(Math.max(0, (t.startedAt ?? t.finishedAt) - t.createdAt) / 1000);
  });

  // Prometheus's info pattern: one series, always 1, whose labels name this hub; a query joins
  // it (`* on (instance) group_left (hub) utils_hub_info`) to tell the hubs of a cluster apart.
  new Gauge({
    name: 'utils_hub_info',
    help: 'Always 1; its labels name this hub: hub (HUB_ID, else the id made at its start) and cluster (HUB_CLUSTER in cluster mode, else "").',
    labelNames: ['hub', 'cluster'] as const,
    registers,
  }).set({ hub: hub.hubId, cluster: hub.config.broker ? hub.config.cluster : '' }, 1);
  new Gauge({
    name: 'utils_hub_queue_length',
    help: 'Tasks waiting in the queue of each known service.',
    labelNames: ['service'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of hub.services()) this.set({ service: s.name }, s.queued);
    },
  });
  new Gauge({
    name: 'utils_hub_tasks_in_flight',
    help: 'Slots taken on the live connections of each service: tasks in flight, plus those timed out or canceled whose answer is awaited.',
    labelNames: ['service'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of hub.services()) this.set({ service: s.name }, 0);
      for (const c of hub.workerConnections()) this.inc({ service: serviceName(c.serviceId) }, c.inFlight);
    },
  });
  new Gauge({
    name: 'utils_hub_worker_slots',
    help: 'Concurrency summed over the live connections of each service.',
    labelNames: ['service'] as const,
    registers,
    collect() {
      this.reset();
      for (const s of hub.services()) this.set({ service: s.name }, 0);
      for (const c of hub.workerConnections()) this.inc({ service: serviceName(c.serviceId) }, c.concurrency);
    },
  });
  new Gauge({
    name: 'utils_hub_tasks_running',
    help: 'Tasks running across all services.',
    registers,
    collect() {
      this.set(hub.runningCount);
    },
  });
  new Gauge({
    name: 'utils_hub_connections',
    help: 'Live connections by kind: worker_dialed (the hub dialed the worker), worker_outbound (the worker dialed the hub), client.',
    labelNames: ['kind'] as const,
    registers,
    collect() {
      let dialed = 0;
      let outbound = 0;
      for (const c of hub.workerConnections()) {
        if (c.dialed) dialed++;
        else outbound++;
      }
      this.set({ kind: 'worker_dialed' }, dialed);
      this.set({ kind: 'worker_outbound' }, outbound);
      this.set({ kind: 'client' }, hub.clientCount);
    },
  });
  new Gauge({
    name: 'utils_hub_shutting_down',
    help: '1 once the hub began to stop, else 0.',
    registers,
    collect() {
      this.set(hub.shuttingDown ? 1 : 0);
    },
  });

  const stats = hub.stats;
  new Counter({
    name: 'utils_hub_dial_failures_total',
    help: 'Failed dials of the workers listed in the database (each try).',
    registers,
    collect() {
      follower.follow(this, {}, stats.dialFailures);
    },
  });
  new Counter({
    name: 'utils_hub_bad_messages_total',
    help: 'bad_message answers, by side (worker or client).',
    labelNames: ['side'] as const,
    registers,
    collect() {
      follower.follow(this, { side: 'worker' }, stats.badMessages.worker);
      follower.follow(this, { side: 'client' }, stats.badMessages.client);
    },
  });
  new Counter({
    name: 'utils_hub_rejected_handshakes_total',
    help: 'Worker handshakes refused, by error code.',
    labelNames: ['code'] as const,
    registers,
    collect() {
      for (const [code, n] of Object.entries(stats.rejectedHandshakes)) follower.follow(this, { code }, n);
    },
  });
  new Counter({
    name: 'utils_hub_webhook_deliveries_total',
    help: 'Webhook tries, by outcome: delivered (2xx), retried (failed, tried again later), failed (given up after 24 h, or refused), gone (410), refused (a forbidden address at connect time).',
    labelNames: ['outcome'] as const,
    registers,
    collect() {
      for (const outcome of ['delivered', 'retried', 'failed', 'gone', 'refused']) follower.follow(this, { outcome }, stats.webhookDeliveries[outcome] ?? 0);
    },
  });

  const writes = options.writes;
  if (writes) {
    new Counter({
      name: 'utils_hub_task_store_write_failures_total',
      help:
        'Task rows in writes the database failed, by outcome: retried (kept and written again later) or dropped ' +
        '(refused on their own repeatedly while the database answered: their latest state is lost).',
      labelNames: ['outcome'] as const,
      registers,
      collect() {
        follower.follow(this, { outcome: 'retried' }, writes.rows.retried);
        follower.follow(this, { outcome: 'dropped' }, writes.rows.dropped);
      },
    });
    new Gauge({
      name: 'utils_hub_task_store_failing_seconds',
      help: 'How long every write of the task store has failed (its rows kept for a retry); 0 while writes go through.',
      registers,
      collect() {
        this.set(writes.failingForMs() / 1000);
      },
    });
  }

  return {
    registry,
    scrape: async () => ({
      contentType: registry.contentType,
      // Two registries with no name in common: their texts side by side are one valid exposition.
      body: (shared ? await shared.metrics() : '') + (await registry.metrics()),
    }),
  };
}
