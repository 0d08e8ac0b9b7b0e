/**
 * The body of `GET /api/overview`, the live view of the operator page. Plain types with no
 * imports, so that the page's browser code shares them without pulling in the server.
 */

/** A live worker connection. */
export interface OverviewConnection {
  connection_id: string;
  /** The hub that holds the connection (in a cluster, any hub's). */
  hub_id: string;
  /** The `instance` its hello named, or null. */
  instance: string | null;
  /** True when the hub dialed the worker; false when the worker dialed the hub (outbound). */
  dialed: boolean;
  /** The peer's address, or the dialed URL. */
  remote: string;
  /** Slots taken: tasks in flight, plus those timed out or canceled whose answer is awaited. */
  in_flight: number;
  concurrency: number;
  draining: boolean;
  /** ISO 8601. */
  connected_at: string | null;
}

/** A service the hub knows, live or not. */
export interface OverviewService {
  service_id: number;
  service_name: string;
  service_description: string;
  /** True while it has a live connection. */
  live: boolean;
  queued: number;
  connections: OverviewConnection[];
}

/** A task, live or recently ended. */
export interface OverviewTask {
  task_id: string;
  service_id: number;
  service_name: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
  progress: number | null;
  message: string | null;
  attempts: number;
  /** The connection it runs on, while running. */
  connection_id: string | null;
  /** ISO 8601. */
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** `{code, message}` of a failed or canceled task. */
  error: { code: string; message: string } | null;
}

/** A hub of the cluster (or the one hub alone). */
export interface OverviewHub {
  hub_id: string;
  /** True for the hub that answered this overview. */
  self: boolean;
  /** Its own URL when it knows it (HUB_PUBLIC_URL), else null. */
  url: string | null;
  /** ISO 8601; null for a hub that did not answer. */
  started_at: string | null;
  /** False for a hub alive in the cluster that did not answer in time (its numbers are then 0). */
  answered: boolean;
  clients: number;
  running: number;
  queued: number;
  /** Its live worker connections. */
  worker_connections: number;
}

export interface Overview {
  /** ISO 8601, the hub's clock. */
  now: string;
  /** The id of the hub that answered (HUB_ID, else made at its start). */
  hub_id: string;
  /** The cluster's name (HUB_CLUSTER) in cluster mode; null for a hub alone. */
  cluster: string | null;
  /** Every hub of the cluster, this one first; just this one for a hub alone. */
  hubs: OverviewHub[];
  shutting_down: boolean;
  /** Open client WebSockets on this hub. */
  clients: number;
  /** Tasks running on this hub (`hubs` has the others'). */
  running: number;
  /** Tasks queued on this hub. */
  queued: number;
  /** The hub's message limit (HUB_MAX_MESSAGE_BYTES), which bounds a task's media. */
  max_message_bytes: number;
  /** Services with their connections on every hub (each connection names its hub). */
  services: OverviewService[];
  /** Running tasks, then a few queued ones, then the latest ended ones, newest first in each group. */
  tasks: OverviewTask[];
}
