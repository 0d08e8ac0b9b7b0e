/**
 * A task as the hub hands it to the store and reads it back, and as the `tasks` table holds it:
 * the checks a row must pass and the conversions between the two.
 */
import { TASK_STATUSES, type TaskStatus } from '@utils-hub/protocol';

/** The statuses after which a task never changes. */
export const ENDED_STATUSES: readonly TaskStatus[] = Object.freeze(['succeeded', 'failed', 'canceled'] as const);

/** Longest task id the table holds. */
export const MAX_TASK_ID_LENGTH = 32;

/** The error of a failed task, as the wire carries it: `{code, message, ...details}`. */
export interface TaskErrorValue {
  code: string;
  message: string;
  [detail: string]: unknown;
}

/**
 * A task as stored: the columns of `tasks`. Times in ms since the epoch. The store serialises
 * `error` and `result` as JSON; `attachments` holds the result's media bytes packed with
 * `packAttachments`, or the pieces of that blob from `attachmentPieces`, joined only when written
 * (the result refers to them as `{"$attachment": k, "mime", "name"}`).
 */
export interface TaskRow {
  id: string;
  service_id: number;
  status: TaskStatus;
  /** Attempts started so far. */
  attempts: number;
  /** Seq of the task's latest event (its end event's, once ended); `undefined` when not given. */
  seq?: number;
  /** 0 to 1, or null before any progress. */
  progress: number | null;
  message: string | null;
  error: TaskErrorValue | null;
  /** Any JSON value; `undefined` when there is no result (a JSON `null` result stays `null`). */
  result?: unknown;
  attachments: Buffer | readonly Uint8Array[] | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  /** Who the task belongs to (the client key that submitted it); null or absent: no key was required. */
  owner?: string | null;
  /**
   * The URL of the task's `completed` webhook (null or absent: none). Written with the task's
   * first row and kept after (a later row does not change it): a task a crash left unfinished
   * gets its delivery at the next start (`TaskStore.markInterrupted`).
   */
  webhook?: string | null;
  /**
   * Cluster mode: the hub writing the row (docs/cluster.md). Null or absent: left as the table
   * has it (a hub alone writes none).
   */
  hub_id?: string | null;
  /**
   * Cluster mode: the highest `seq` the hub running the task may send (docs/cluster.md, "Seq
   * across attempts"). Null or absent, or lower than the table's: left as the table has it.
   */
  seq_reserved?: number | null;
}

/** A task as read back: its media as one blob. */
export type StoredTaskRow = TaskRow & { attachments: Buffer | null };

/** The row as the database takes it: JSON serialised, `seq` null when not given. */
export interface TaskColumns {
  id: string;
  service_id: number;
  status: string;
  attempts: number;
  seq: number | null;
  progress: number | null;
  message: string | null;
  error: string | null;
  result: string | null;
  /** The blob, or its pieces to join when written. */
  attachments: Buffer | readonly Uint8Array[] | null;
  /** SQLite on a file: the file holding the blob instead (set when written). */
  media_file: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  owner: string | null;
  webhook: string | null;
  hub_id: string | null;
  seq_reserved: number | null;
}

/** A row as the driver answers a select: numbers may come as strings, blobs as any Uint8Array. */
export type RawTaskColumns = Omit<TaskColumns, 'progress' | 'seq' | 'attachments' | 'seq_reserved'> & {
  progress: number | string | null;
  seq: number | string | null;
  seq_reserved?: number | string | null;
  attachments: Buffer | Uint8Array | null;
};

/** The row of a task that waits, not yet started: what its first write holds. */
export function queuedTaskRow(id: string, serviceId: number, createdAt: number, owner: string | null, webhook: string | null = null): TaskRow {
  return {
    id,
    service_id: serviceId,
    status: 'queued',
    attempts: 0,
    seq: 0,
    progress: null,
    message: null,
    error: null,
    attachments: null,
    created_at: createdAt,
    started_at: null,
    finished_at: null,
    owner,
    webhook,
  };
}

/** The blob of `attachments` given as a blob or as its pieces. */
export function joined(attachments: Buffer | readonly Uint8Array[]): Buffer {
  return Buffer.isBuffer(attachments) ? attachments : Buffer.concat(attachments);
}

/** Byte length of `attachments` given as a blob or as its pieces. */
export function lengthOf(attachments: Buffer | readonly Uint8Array[]): number {
  if (Buffer.isBuffer(attachments)) return attachments.length;
  let n = 0;
  for (const p of attachments) n += p.byteLength;
  return n;
}

/** Bytes the columns hold in memory besides their small fields: media, result, error, message. */
export function heldBy(r: TaskColumns): number {
  return (r.attachments === null ? 0 : lengthOf(r.attachments)) + (r.result?.length ?? 0) + (r.error?.length ?? 0) + (r.message?.length ?? 0);
}

function fail(row: TaskRow, what: string): never {
  throw new TypeError(`TaskStore.save: task ${JSON.stringify(row?.id)} has ${what}`);
}

function isTime(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Checks a row and turns it into what the database takes. Throws TypeError on a bad row. */
export function toColumns(row: TaskRow): TaskColumns {
  if (typeof row !== 'object' || row === null) throw new TypeError('TaskStore.save: a row must be an object');
  if (typeof row.id !== 'string' || row.id.length < 1 || row.id.length > MAX_TASK_ID_LENGTH) {
    fail(row, `an invalid id (1 to ${MAX_TASK_ID_LENGTH} characters)`);
  }
  if (!Number.isSafeInteger(row.service_id) || row.service_id < 0) fail(row, 'an invalid service_id');
  if (!(TASK_STATUSES as readonly string[]).includes(row.status)) fail(row, `an unknown status ${JSON.stringify(row.status)}`);
  if (!Number.isSafeInteger(row.attempts) || row.attempts < 0) fail(row, 'an invalid attempts count');
  if (row.seq !== undefined && (!Number.isSafeInteger(row.seq) || row.seq < 0)) fail(row, 'an invalid seq');
  if (row.progress !== null && !(typeof row.progress === 'number' && Number.isFinite(row.progress))) {
    fail(row, 'an invalid progress');
  }
  if (row.message !== null && typeof row.message !== 'string') fail(row, 'a message that is not a string');
  if (
    row.attachments !== null &&
    !Buffer.isBuffer(row.attachments) &&
    !(Array.isArray(row.attachments) && row.attachments.every((p) => p instanceof Uint8Array))
  ) {
    fail(row, 'attachments that are neither a Buffer nor a list of Buffers');
  }
  if (!isTime(row.created_at)) fail(row, 'an invalid created_at');
  if (row.started_at !== null && !isTime(row.started_at)) fail(row, 'an invalid started_at');
  if (row.finished_at !== null && !isTime(row.finished_at)) fail(row, 'an invalid finished_at');
  if (row.owner != null && (typeof row.owner !== 'string' || row.owner.length > 80)) fail(row, 'an invalid owner (a string of at most 80 characters)');
  if (row.webhook != null && (typeof row.webhook !== 'string' || row.webhook.length > 2048)) fail(row, 'an invalid webhook (a URL of at most 2048 characters)');
  if (row.hub_id != null && (typeof row.hub_id !== 'string' || row.hub_id.length > 64)) fail(row, 'an invalid hub_id (a string of at most 64 characters)');
  if (row.seq_reserved != null && (!Number.isSafeInteger(row.seq_reserved) || row.seq_reserved < 0)) fail(row, 'an invalid seq_reserved');
  // JSON.stringify answers undefined for undefined (and functions): stored as NULL.
  const result = row.result === undefined ? null : (JSON.stringify(row.result) ?? null);
  const error = row.error === null || row.error === undefined ? null : (JSON.stringify(row.error) ?? null);
  return {
    id: row.id,
    service_id: row.service_id,
    status: row.status,
    attempts: row.attempts,
    seq: row.seq ?? null,
    progress: row.progress,
    message: row.message,
    error,
    result,
    attachments: row.attachments,
    media_file: null,
    created_at: row.created_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
    owner: row.owner ?? null,
    webhook: row.webhook ?? null,
    hub_id: row.hub_id ?? null,
    seq_reserved: row.seq_reserved ?? null,
  };
}

function num(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

/** The row of a select as the hub reads it (media from a file not included: see task-media.ts). */
export function fromColumns(r: RawTaskColumns): StoredTaskRow {
  const row: StoredTaskRow = {
    id: r.id,
    service_id: Number(r.service_id),
    status: r.status as TaskStatus,
    attempts: Number(r.attempts),
    progress: num(r.progress),
    message: r.message ?? null,
    error: r.error === null ? null : (JSON.parse(r.error) as TaskErrorValue),
    attachments: r.attachments === null ? null : Buffer.from(r.attachments),
    created_at: Number(r.created_at),
    started_at: num(r.started_at),
    finished_at: num(r.finished_at),
  };
  if (r.seq !== null) row.seq = Number(r.seq);
  if (r.result !== null) row.result = JSON.parse(r.result);
  row.owner = r.owner ?? null;
  if (r.webhook) row.webhook = r.webhook;
  return row;
}
