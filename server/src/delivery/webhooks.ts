/**
 * Webhooks (docs/protocol.md section 12): a task submitted with `webhook` has its events (those
 * of `webhook_events`, default `completed`) written to the `webhook_deliveries` outbox as they
 * happen, and a sender POSTs due rows, signed per Standard Webhooks, retrying after about 1 s,
 * 5 s, 30 s, 2 min, 10 min, then hourly for up to 24 hours. Everything here is asynchronous I/O
 * (the database through the task store's writer thread, the HTTP requests): nothing blocks the
 * hub's event loop.
 */
import http from 'node:http';
import https from 'node:https';
import type { Knex } from 'knex';
import type { FastifyBaseLogger } from 'fastify';
import { HubError, type WebhookEvent } from '@utils-hub/protocol';
import type { Hub, Subscriber } from '../core/hub.js';
import { deliveryRow } from '../core/webhook-rows.js';
import { checkWebhookUrl, guardedLookup, refusedLiteral } from './address-check.js';
import { secretBytes, signWebhook } from './webhook-sign.js';
import { purgeDeliveries, type DeliveryRow } from '../store/webhook-deliveries.js';
import type { DeliveryUpdate } from '../store/unit-sql.js';

/**
 * Where the outbox is written and read: the task store, which commits outbox rows and outcomes
 * with its batches of task rows (a task's `completed` row with its end row, in one transaction)
 * and leases due rows, in its writer thread where it has one (no synchronous SQLite on the event
 * loop per delivery).
 */
export interface DeliveryStore {
  saveDeliveries(rows: readonly DeliveryRow[]): void;
  recordDelivery(update: DeliveryUpdate): void;
  leaseDeliveries(now: number, limit: number, until: number, skip: readonly string[]): Promise<DeliveryRow[]>;
  watchOutbox(watcher: () => void): void;
}

/** Delays before the 2nd, 3rd, ... try, in ms; then hourly. */
export const RETRY_DELAYS_MS = [1_000, 5_000, 30_000, 120_000, 600_000];
/** Delay between tries after the schedule above: 1 hour. */
export const HOURLY_MS = 3_600_000;
/** How long a delivery is tried: 24 hours, in ms. */
export const DELIVERY_WINDOW_MS = 24 * 3_600_000;
/** Deadline of one try, in ms. */
export const TRY_TIMEOUT_MS = 15_000;
/** Least time between two progress webhooks of one task, in ms. */
export const PROGRESS_INTERVAL_MS = 500;
/** Bytes of a receiver's answer read at most (the rest is dropped with the connection). */
export const MAX_ANSWER_BYTES = 4096;
/**
 * Tries in flight at once, per hub: with a receiver that answers in 20 ms, 16 sent at most about
 * 350 a second (docs/performance.md, "Webhook sender"). Twice the sockets of one host, so that
 * a try waits for a socket at most one try long (its deadline counts from its start).
 */
const MAX_IN_FLIGHT = 128;
/** Connections to one host at once (kept alive). */
const MAX_SOCKETS_PER_HOST = 64;
/** Tries started in one turn of the event loop, at most. */
const SENDS_PER_TURN = 8;
/** Rows one lease takes at most. */
const LEASE_ROWS = 64;
/** Bytes of bodies in flight above which no more rows are leased (bodies are up to HUB_WEBHOOK_MAX_BODY_BYTES). */
const MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024;
/** How often due rows are looked for when nothing woke the sender, in ms. */
const POLL_MS = 1_000;

/** What `add_task` asked for. */
export interface WebhookSpec {
  url: string;
  events: ReadonlySet<WebhookEvent>;
}

/** The delay before the try after `attempts` failed ones, honouring a `Retry-After` (s or a date). */
export function nextDelay(attempts: number, retryAfter: string | undefined, now: number): number {
  const scheduled = attempts <= RETRY_DELAYS_MS.length ? RETRY_DELAYS_MS[attempts - 1] : HOURLY_MS;
  if (!retryAfter) return scheduled;
  let asked: number | null = null;
  if (/^\d{1,10}$/.test(retryAfter.trim())) asked = Number(retryAfter.trim()) * 1000;
  else {
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) asked = at - now;
  }
  if (asked === null || asked < 0) return scheduled;
  return Math.min(asked, HOURLY_MS * 24);
}

export class Webhooks {
  private readonly key: Buffer | null;
  private readonly agents: { http: http.Agent; https: https.Agent };
  private readonly inFlight = new Map<string, http.ClientRequest | null>();
  private readonly sending = new Set<Promise<void>>();
  /** Characters of the bodies of the tries in flight. */
  private inFlightBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private again = false;
  private closed = false;

  constructor(
    private readonly db: Knex,
    private readonly hub: Hub,
    private readonly log: FastifyBaseLogger,
    private readonly store: DeliveryStore,
    private readonly now: () => number = Date.now,
  ) {
    // Rows just committed may be due now.
    store.watchOutbox(() => this.wake());
    const { webhookSecret, webhookAllowPrivate } = hub.config;
    this.key = webhookSecret ? secretBytes(webhookSecret) : null;
    const lookup = guardedLookup(webhookAllowPrivate);
    this.agents = {
      http: new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS_PER_HOST, lookup }),
      https: new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS_PER_HOST, lookup }),
    };
  }

  /**
   * Checks the webhook fields of an add_task: null without `webhook`; else the spec, once the
   * URL passed its checks (section 12). Throws `bad_request`.
   */
  async check(body: { webhook?: string; webhook_events?: readonly WebhookEvent[] }): Promise<WebhookSpec | null> {
    if (body.webhook === undefined) {
      if (body.webhook_events !== undefined) throw new HubError('bad_request', 'webhook_events needs a webhook');
      return null;
    }
    if (!this.key) throw new HubError('bad_request', 'this hub sends no webhooks: HUB_WEBHOOK_SECRET is not set');
    const url = await checkWebhookUrl(body.webhook, this.hub.config.webhookAllowPrivate);
    return { url: url.href, events: new Set(body.webhook_events ?? ['completed']) };
  }

  /**
   * Follows a task just submitted with `spec` for its `started` and `progress` events, written to
   * the outbox as they happen (its `completed` delivery is the hub's, see `completedWebhookUrl`).
   */
  attach(taskId: string, spec: WebhookSpec): void {
    if (!spec.events.has('started') && !spec.events.has('progress')) return;
    let lastProgressAt = -Infinity;
    let trailing: NodeJS.Timeout | null = null;
    const write = (event: WebhookEvent) => {
      const view = this.hub.viewNow(taskId);
      if (view) this.enqueue([deliveryRow(taskId, spec.url, event, view, this.now())]);
    };
    const progress = () => {
      trailing = null;
      lastProgressAt = this.now();
      write('progress');
    };
    const subscriber: Subscriber = {
      deliver: (_id, text, _binaries, end) => {
        if (end) {
          if (trailing) clearTimeout(trailing);
          trailing = null;
          return;
        }
        const type = frameType(text);
        if (type === 'started' && spec.events.has('started')) write('started');
        else if (type === 'progress' && spec.events.has('progress') && !trailing) {
          // At most one per 500 ms: a burst sends its latest state once the interval has passed.
          const wait = lastProgressAt + PROGRESS_INTERVAL_MS - this.now();
          if (wait <= 0) progress();
          else trailing = setTimeout(progress, wait);
        }
      },
    };
    const now = this.hub.subscribe(taskId, subscriber);
    // A connection with room starts the task inside the submit, before this subscriber was added.
    if (now?.status === 'running' && spec.events.has('started')) write('started');
  }

  /** Outbox rows go with the task store's next write (the sender is woken once they are committed). */
  private enqueue(rows: DeliveryRow[]): void {
    try {
      this.store.saveDeliveries(rows);
    } catch (err) {
      this.log.error({ err, task_ids: rows.map((r) => r.task_id) }, 'webhook deliveries could not be stored');
    }
  }

  /** Starts the sender: due rows (from before a restart too) are sent from now on. */
  start(): void {
    if (this.closed || this.timer) return;
    this.timer = setInterval(() => this.wake(), POLL_MS);
    this.timer.unref();
    this.wake();
  }

  /**
   * Looks for due rows now, unless more than half of the tries allowed are in flight: the sender
   * refills once half are done, so that each lease takes several rows (a lease per finished try
   * would be a transaction per delivery).
   */
  wake(): void {
    if (this.closed || this.inFlight.size > MAX_IN_FLIGHT / 2 || this.inFlightBytes > MAX_IN_FLIGHT_BYTES) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    this.ticking = true;
    this.tick()
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'the webhook sender could not read its deliveries'))
      .finally(() => {
        this.ticking = false;
        if (this.again) {
          this.again = false;
          this.wake();
        }
      });
  }

  private async tick(): Promise<void> {
    if (!this.key) return;
    while (!this.closed && this.inFlight.size < MAX_IN_FLIGHT && this.inFlightBytes <= MAX_IN_FLIGHT_BYTES) {
      const now = this.now();
      // Due rows, each leased for longer than one try: a hub that dies mid-try leaves the row to be tried again after it.
      const room = Math.min(LEASE_ROWS, MAX_IN_FLIGHT - this.inFlight.size);
      const rows = await this.store.leaseDeliveries(now, room, now + TRY_TIMEOUT_MS * 2, [...this.inFlight.keys()]);
      for (let i = 0; i < rows.length; i++) {
        // A few tries per turn of the event loop: each costs some 50 to 100 µs of the hub's
        // thread to start (request, headers, signature), and a lease of 64 started at once
        // would hold the hub's sockets for milliseconds.
        if (i > 0 && i % SENDS_PER_TURN === 0) {
          await new Promise((resolve) => setImmediate(resolve));
          // Stopped meanwhile: the rows not started stay leased, and are due again after the lease.
          if (this.closed) return;
        }
        const row = rows[i];
        this.inFlight.set(row.id, null);
        this.inFlightBytes += row.body.length;
        const p: Promise<void> = this.send(row)
          .catch((err: unknown) => this.log.warn({ err: (err as Error).message, webhook_id: row.id }, 'a webhook outcome could not be stored'))
          .finally(() => {
            this.inFlight.delete(row.id);
            this.inFlightBytes -= row.body.length;
            this.sending.delete(p);
            this.wake();
          });
        this.sending.add(p);
      }
      if (rows.length < room) return; // every due row is taken
    }
  }

  /** One try of one delivery, and its outcome recorded. */
  private async send(row: DeliveryRow): Promise<void> {
    const count = (outcome: string) => this.hub.recordWebhookDelivery(outcome);
    const url = new URL(row.url);
    const refused = refusedLiteral(url, this.hub.config.webhookAllowPrivate);
    let result: { status: number; retryAfter?: string } | { error: string; refused?: boolean };
    if (refused) result = { error: `a ${refused} address`, refused: true };
    else result = await this.post(row, url);
    const now = this.now();
    const attempts = row.attempts + 1;
    // Outcomes go with the task store's next write; the lease keeps the row from being tried meanwhile.
    const record = (change: Pick<DeliveryUpdate, 'status' | 'next_at' | 'last_status' | 'last_error'>) =>
      this.store.recordDelivery({ id: row.id, attempts, updated_at: now, ...change });
    if ('status' in result && result.status >= 200 && result.status < 300) {
      count('delivered');
      record({ status: 'delivered', next_at: now, last_status: result.status, last_error: null });
      return;
    }
    if ('status' in result && result.status === 410) {
      count('gone');
      record({ status: 'gone', next_at: now, last_status: 410, last_error: row.last_error });
      return;
    }
    const lastError = 'error' in result ? result.error.slice(0, 255) : `HTTP ${result.status}`;
    const lastStatus = 'status' in result ? result.status : null;
    if ('refused' in result && result.refused) {
      count('refused');
      count('failed');
      record({ status: 'failed', next_at: now, last_status: null, last_error: lastError });
      return;
    }
    const next = now + nextDelay(attempts, 'status' in result ? result.retryAfter : undefined, now);
    if (next > row.created_at + DELIVERY_WINDOW_MS) {
      count('failed');
      record({ status: 'failed', next_at: now, last_status: lastStatus, last_error: lastError });
      return;
    }
    count('retried');
    record({ status: 'pending', next_at: next, last_status: lastStatus, last_error: lastError });
  }

  /**
   * POSTs a delivery; resolves with the answer's status, or the error (never rejects). A kept-alive
   * socket that the receiver closed as it was reused (its idle timeout, often 5 s, is also our
   * second retry delay) is not a failed try: the request goes again at once on a new socket.
   */
  private async post(row: DeliveryRow, url: URL): Promise<{ status: number; retryAfter?: string } | { error: string; refused?: boolean }> {
    const first = await this.postOnce(row, url);
    if ('stale' in first && first.stale) return this.postOnce(row, url);
    return first;
  }

  private postOnce(row: DeliveryRow, url: URL): Promise<{ status: number; retryAfter?: string } | { error: string; refused?: boolean; stale?: boolean }> {
    const timestamp = Math.floor(this.now() / 1000);
    const headers = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(row.body, 'utf8')),
      'user-agent': 'utils-hub',
      'webhook-id': row.id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signWebhook(this.key!, row.id, timestamp, row.body),
    };
    return new Promise((resolve) => {
      let settled = false;
      const done = (r: { status: number; retryAfter?: string } | { error: string; refused?: boolean; stale?: boolean }) => {
        if (settled) return;
        settled = true;
        clearTimeout(deadline);
        resolve(r);
      };
      const lib = url.protocol === 'https:' ? https : http;
      // No redirect is followed: Node's client never does; a 3xx is a failed try.
      const req = lib.request(url, { method: 'POST', headers, agent: url.protocol === 'https:' ? this.agents.https : this.agents.http }, (res) => {
        const status = res.statusCode ?? 0;
        const retryAfter = typeof res.headers['retry-after'] === 'string' ? res.headers['retry-after'] : undefined;
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) {
            res.destroy();
            done({ status, retryAfter });
          }
        });
        res.on('end', () => done({ status, retryAfter }));
        res.on('error', () => done({ status, retryAfter }));
        res.on('close', () => done({ status, retryAfter }));
      });
      const deadline = setTimeout(() => {
        req.destroy(new Error(`no answer within ${TRY_TIMEOUT_MS / 1000} s`));
      }, TRY_TIMEOUT_MS);
      req.on('error', (err: NodeJS.ErrnoException) =>
        done({
          error: err.message,
          refused: err.code === 'EWEBHOOKREFUSED',
          stale: req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE') && !this.closed,
        }),
      );
      this.inFlight.set(row.id, req);
      // The body as a string: Node writes it with the headers in one write (a Buffer goes as a
      // second chunk, one writev, after a copy of the body).
      req.end(row.body, 'utf8');
    });
  }

  /** Deletes finished deliveries older than 24 hours. */
  purge(): Promise<number> {
    return purgeDeliveries(this.db, this.now() - DELIVERY_WINDOW_MS);
  }

  /**
   * Stops the sender: tries in flight are cut, and recorded as failed tries (due again a second
   * later, for the next start or another hub). Call before the database closes.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    // The deliveries of the tasks the stop ended are in the task store's buffer: its close (after
    // this one) commits them with their ends, and they are sent after the restart.
    for (const req of this.inFlight.values()) req?.destroy(new Error('the hub is stopping'));
    await Promise.allSettled([...this.sending]);
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

/** The `type` of a frame, read without parsing the whole of a worker's (maybe large) message. */
function frameType(text: string): string | null {
  if (text.startsWith('{"type":"')) return text.slice(9, text.indexOf('"', 9));
  try {
    const t = (JSON.parse(text) as { type?: unknown }).type;
    return typeof t === 'string' ? t : null;
  } catch {
    return null;
  }
}
