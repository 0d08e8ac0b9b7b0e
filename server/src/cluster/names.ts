/**
 * Every NATS name a cluster uses, derived from its `HUB_CLUSTER` (docs/cluster.md "Names"), so
 * that several clusters (and every test run) share one NATS server without seeing each other.
 */

/** What `HUB_CLUSTER` may hold: it is part of subjects, stream names and KV bucket names. */
export const CLUSTER_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** The names of one cluster's subjects, streams, consumers and buckets. */
export interface ClusterNames {
  readonly cluster: string;
  /** KV bucket of hub liveness keys (key: hub id). */
  readonly hubsBucket: string;
  /** KV bucket of dialed-worker leases (key: a hash of the worker's URL). */
  readonly dialsBucket: string;
  /** KV bucket of takeovers of dead hubs (key: the dead hub's id). */
  readonly takeoverBucket: string;
  /** Work-queue stream of tasks waiting for a slot anywhere. */
  readonly taskStream: string;
  /** Subject of a task waiting for a slot of service `serviceId`. */
  task(serviceId: number, taskId: string): string;
  /** Filter subject of one service's waiting tasks. */
  taskFilter(serviceId: number): string;
  /** Durable pull consumer of one service's waiting tasks. */
  taskConsumer(serviceId: number): string;
  /** Stream of the tasks each hub runs on its own (for their takeover when it dies). */
  readonly heldStream: string;
  /** Subject of a task hub `hubId` runs on its own. */
  held(hubId: string, taskId: string): string;
  /** Filter of the tasks hub `hubId` runs on its own. */
  heldFilter(hubId: string): string;
  /** Core subject of load reports. */
  readonly load: string;
  /** Core subject of a task's events. */
  events(taskId: string): string;
  /** Core subject of cancel requests. */
  readonly cancel: string;
  /** Core subject of requests for a live task's state (a subscribe on another hub). */
  readonly snapshot: string;
  /** Core subject of requests for every hub's state (the operator page); each hub answers. */
  readonly hubState: string;
}

/** The names of cluster `cluster`; throws when it holds a character NATS names may not. */
export function clusterNames(cluster: string): ClusterNames {
  if (!CLUSTER_NAME_RE.test(cluster)) {
    throw new Error(`HUB_CLUSTER must be 1 to 64 letters, digits, "-" or "_" (it is part of NATS subjects and bucket names), not ${JSON.stringify(cluster)}`);
  }
  const c = cluster;
  return {
    cluster: c,
    hubsBucket: `${c}-hubs`,
    dialsBucket: `${c}-dials`,
    takeoverBucket: `${c}-takeover`,
    taskStream: `${c}_tasks`,
    task: (serviceId, taskId) => `${c}.task.${serviceId}.${taskId}`,
    taskFilter: (serviceId) => `${c}.task.${serviceId}.*`,
    taskConsumer: (serviceId) => `${c}_svc_${serviceId}`,
    heldStream: `${c}_held`,
    held: (hubId, taskId) => `${c}.held.${hubId}.${taskId}`,
    heldFilter: (hubId) => `${c}.held.${hubId}.*`,
    load: `${c}.load`,
    events: (taskId) => `${c}.ev.${taskId}`,
    cancel: `${c}.cancel`,
    snapshot: `${c}.snapshot`,
    hubState: `${c}.hub-state`,
  };
}
