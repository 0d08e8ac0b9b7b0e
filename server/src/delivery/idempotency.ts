/**
 * Idempotent submit (docs/protocol.md section 12): the first submit of a key makes a task, every
 * later one within 24 hours gets that task. The `idempotency_keys` table is the arbiter (so hubs
 * and restarts agree); in memory, submits of one key on this hub wait for each other (no second
 * insert while the first is in flight) and recent keys are cached, bounded in bytes, so that a
 * repeat costs no database round trip. A submit with a key costs one indexed insert: with the
 * task store (`options.store`), in the same transaction as the task's queued row.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Knex } from 'knex';
import { HubError } from '@utils-hub/protocol';
import type { PreparedTask } from '../core/hub.js';
import { newTaskId } from '../core/task-id.js';
import { claimKeys, purgeKeys, releaseKey, type ClaimOutcome, type IdempotencyRow } from '../store/idempotency-keys.js';
import { queuedTaskRow, type TaskRow } from '../store/tasks.js';

/**
 * Where claims go: the task store, which commits a key's claim with its task's queued row, in
 * its writer thread with the batch of task rows (see `TaskStore.claim`).
 */
export interface KeyClaims {
  claim(key: IdempotencyRow, row: TaskRow, expiredBefore: number): Promise<ClaimOutcome>;
}

/** How long a key names its task: 24 hours, in ms. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;

/** Default bound of the cache of recent keys, in bytes (about 20 000 keys of 100 characters). */
export const IDEMPOTENCY_CACHE_BYTES = 8 * 1024 * 1024;

/** Bytes a cache entry costs besides its key and scope (ids, hash, Map overhead). */
const ENTRY_OVERHEAD = 256;

/** The scope of keys: sha256 hex of the client key presented, or `''` without one. */
export function keyScope(clientKey: string | null | undefined): string {
  return clientKey ? createHash('sha256').update(clientKey, 'utf8').digest('hex') : '';
}

/**
 * Reads an `Idempotency-Key` header: the IETF draft's structured-field string (`"..."`, with
 * `\"` and `\\` escapes) or, leniently, the bare value. Returns null without the header; throws
 * `bad_request` for an empty, repeated, over-long or non-ASCII one.
 */
export function parseIdempotencyHeader(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  if (Array.isArray(value)) throw new HubError('bad_request', 'Idempotency-Key may be given once');
  let key = value.trim();
  if (key.startsWith('"')) {
    const m = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/.exec(key);
    if (!m) throw new HubError('bad_request', 'Idempotency-Key is not a well-formed string ("...")');
    key = m[1].replace(/\\(["\\])/g, '$1');
  }
  if (key.length === 0 || key.length > 255 || !/^[\x20-\x7e]+$/.test(key)) {
    throw new HubError('bad_request', 'Idempotency-Key must be 1 to 255 printable ASCII characters');
  }
  return key;
}

/** Feeds a value into `hash` as canonical JSON: object keys sorted, bytes as themselves. */
function feed(hash: Hash, value: unknown, depth = 0): void {
  if (depth > 256) throw new HubError('bad_request', 'args are nested too deeply');
  if (value === null || value === undefined) {
    hash.update('n');
  } else if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    hash.update(`b${value.byteLength}:`);
    hash.update(value);
  } else if (Array.isArray(value)) {
    hash.update(`a${value.length}[`);
    for (const v of value) feed(hash, v, depth + 1);
    hash.update(']');
  } else if (typeof value === 'object') {
    const keys = Object.keys(value).sort();
    hash.update(`o${keys.length}{`);
    for (const k of keys) {
      hash.update(JSON.stringify(k));
      feed(hash, (value as Record<string, unknown>)[k], depth + 1);
    }
    hash.update('}');
  } else {
    hash.update(JSON.stringify(value));
  }
}

/**
 * sha256 hex of a prepared task's service id and args (keyed by name, defaults filled in), so
 * that `[3]` and `{"x": 3}` for the same service are the same request, and media compare by bytes.
 */
export function argsHash(task: Pick<PreparedTask, 'serviceId' | 'args'>): string {
  const hash = createHash('sha256');
  hash.update(`s${task.serviceId}`);
  feed(hash, task.args);
  return hash.digest('hex');
}

/** The queued row of a keyed submit's task, committed with its key's claim. */
function queuedRow(key: IdempotencyRow, owner: string | null, webhook: string | null): TaskRow {
  return queuedTaskRow(key.task_id, key.service_id, key.created_at, owner, webhook);
}

/** What `IdempotentSubmits.submit` did. */
export type SubmitOutcome<R> = { duplicate: false; taskId: string; result: R } | { duplicate: true; taskId: string };

interface Entry {
  taskId: string;
  serviceId: number;
  hash: string;
  createdAt: number;
  bytes: number;
}

/** Options of {@link IdempotentSubmits}. */
export interface IdempotencyOptions {
  /** How long a key holds, in ms. Default {@link IDEMPOTENCY_TTL_MS}. */
  ttlMs?: number;
  /** Bound of the cache of recent keys, in bytes. Default {@link IDEMPOTENCY_CACHE_BYTES}. */
  cacheBytes?: number;
  now?: () => number;
  /**
   * The task store: a claim is committed with the task's queued row, in the store's next write
   * (off the event loop where the store has a writer thread). Without it, claims are grouped
   * inserts through knex and the task's row is written after (the caller's `enqueue` is told).
   */
  store?: KeyClaims;
}

export class IdempotentSubmits {
  private readonly ttlMs: number;
  private readonly cacheBytes: number;
  private readonly now: () => number;
  private readonly store: KeyClaims | null;
  /** Recent keys, least recently used first. */
  private readonly cache = new Map<string, Entry>();
  private cachedBytes = 0;
  /** Claims in flight on this hub, by scope and key. */
  private readonly pending = new Map<string, Promise<unknown>>();
  /** Claims waiting for the next grouped insert. */
  private batch: Array<{ row: IdempotencyRow; resolve: (o: ClaimOutcome) => void; reject: (err: unknown) => void }> = [];

  constructor(
    private readonly db: Knex,
    options: IdempotencyOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? IDEMPOTENCY_TTL_MS;
    this.cacheBytes = options.cacheBytes ?? IDEMPOTENCY_CACHE_BYTES;
    this.now = options.now ?? Date.now;
    this.store = options.store ?? null;
  }

  /** Bytes the cache holds now (for the bound's test and the security document). */
  get cacheSize(): { entries: number; bytes: number } {
    return { entries: this.cache.size, bytes: this.cachedBytes };
  }

  /**
   * Submits `task` once per `key` in `scope`: the first call runs `enqueue(taskId, stored)` (which
   * must queue the task under that id, synchronously; `stored`: its queued row, owned by `owner`,
   * is committed already, with the key) and answers its result; a later call with the same
   * request answers the same task id as a duplicate. Throws `idempotency_mismatch` when the key
   * names a task of another service or other args, and whatever `enqueue` throws (the key is
   * then released, so that a retry may make the task). `webhook`: the URL of the task's
   * `completed` webhook, on its queued row.
   */
  async submit<R>(
    scope: string,
    key: string,
    task: PreparedTask,
    enqueue: (taskId: string, stored: boolean) => R,
    owner: string | null = null,
    webhook: string | null = null,
  ): Promise<SubmitOutcome<R>> {
    const id = `${scope}\u0000${key}`;
    const hash = argsHash(task);
    for (;;) {
      const cached = this.cache.get(id);
      if (cached && cached.createdAt >= this.now() - this.ttlMs) {
        this.touch(id, cached);
        return this.repeat(cached, task.serviceId, hash);
      }
      const pending = this.pending.get(id);
      if (pending) {
        // Another submit of this key is in flight here: its outcome decides (or, if it failed, try again).
        await pending.catch(() => undefined);
        continue;
      }
      const claim = this.claim(id, scope, key, task, hash, enqueue, owner, webhook);
      this.pending.set(id, claim);
      try {
        return await claim;
      } finally {
        this.pending.delete(id);
      }
    }
  }

  private async claim<R>(
    id: string,
    scope: string,
    key: string,
    task: PreparedTask,
    hash: string,
    enqueue: (taskId: string, stored: boolean) => R,
    owner: string | null,
    webhook: string | null,
  ): Promise<SubmitOutcome<R>> {
    const now = this.now();
    const row: IdempotencyRow = { scope, key, task_id: newTaskId(), service_id: task.serviceId, args_hash: hash, created_at: now };
    const outcome = this.store ? await this.store.claim(row, queuedRow(row, owner, webhook), now - this.ttlMs) : await this.claimGrouped(row, now - this.ttlMs);
    if (!outcome.won) {
      const held = outcome.row;
      const entry = this.remember(id, { taskId: held.task_id, serviceId: held.service_id, hash: held.args_hash, createdAt: held.created_at });
      return this.repeat(entry, task.serviceId, hash);
    }
    let result: R;
    try {
      result = enqueue(row.task_id, this.store !== null);
    } catch (err) {
      await releaseKey(this.db, scope, key, row.task_id).catch(() => undefined);
      // The queued row committed with the key names a task that never was.
      if (this.store)
        await this.db('tasks')
          .where({ id: row.task_id, status: 'queued' })
          .delete()
          .catch(() => undefined);
      throw err;
    }
    this.remember(id, { taskId: row.task_id, serviceId: row.service_id, hash, createdAt: now });
    return { duplicate: false, taskId: row.task_id, result };
  }

  /**
   * Claims a key together with the others asked for in the same turn of the event loop: one
   * insert and one read for all of them (a burst of keyed submits costs two statements, not two
   * per submit).
   */
  private claimGrouped(row: IdempotencyRow, expiredBefore: number): Promise<ClaimOutcome> {
    return new Promise((resolve, reject) => {
      this.batch.push({ row, resolve, reject });
      if (this.batch.length > 1) return;
      setImmediate(() => {
        const group = this.batch;
        this.batch = [];
        claimKeys(
          this.db,
          group.map((g) => g.row),
          expiredBefore,
        ).then(
          (outcomes) => {
            for (let i = 0; i < group.length; i++) group[i].resolve(outcomes[i]);
          },
          (err: unknown) => {
            for (const g of group) g.reject(err);
          },
        );
      });
    });
  }

  private repeat(entry: Entry, serviceId: number, hash: string): SubmitOutcome<never> {
    if (entry.serviceId !== serviceId || entry.hash !== hash) {
      throw new HubError('idempotency_mismatch', 'this Idempotency-Key was used for another service_id or other args', { task_id: entry.taskId });
    }
    return { duplicate: true, taskId: entry.taskId };
  }

  private remember(id: string, e: Omit<Entry, 'bytes'>): Entry {
    const old = this.cache.get(id);
    if (old) {
      this.cache.delete(id);
      this.cachedBytes -= old.bytes;
    }
    const entry: Entry = { ...e, bytes: id.length * 2 + ENTRY_OVERHEAD };
    this.cache.set(id, entry);
    this.cachedBytes += entry.bytes;
    for (const [oldest, v] of this.cache) {
      if (this.cachedBytes <= this.cacheBytes) break;
      this.cache.delete(oldest);
      this.cachedBytes -= v.bytes;
    }
    return entry;
  }

  private touch(id: string, entry: Entry): void {
    this.cache.delete(id);
    this.cache.set(id, entry);
  }

  /** Deletes expired keys from the table and the cache; returns how many rows went. */
  async purge(): Promise<number> {
    const before = this.now() - this.ttlMs;
    for (const [id, e] of this.cache) {
      if (e.createdAt < before) {
        this.cache.delete(id);
        this.cachedBytes -= e.bytes;
      }
    }
    return purgeKeys(this.db, before);
  }
}
