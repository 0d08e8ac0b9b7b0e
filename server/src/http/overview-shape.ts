/**
 * The body of `GET /api/overview`, the live view of the operator page. Plain types with no
 * imports, so that the page's browser code shares them without pulling in the server.
 */

/** A live worker connection. */
export interface OverviewConnection {
  connection_id: string;
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

export interface Overview {
  /** ISO 8601, the hub's clock. */
  now: string;
  shutting_down: boolean;
  /** Open client WebSockets. */
  clients: number;
  running: number;
  queued: number;
  /** The hub's message limit (HUB_MAX_MESSAGE_BYTES), which bounds a task's media. */
  max_message_bytes: number;
  services: OverviewService[];
  /** Running tasks, then a few queued ones, then the latest ended ones, newest first in each group. */
  tasks: OverviewTask[];
}
