/**
 * One client WebSocket (docs/protocol.md 5.2): services pushes, add_task with attachments, cancel,
 * subscribe and service_info; task events relayed as the hub produced them.
 */
import type { WebSocket } from 'ws';
import { FrameDecoder, HubError, parseMessage, type ClientToHubMessage, type ErrorMsg, type RejectedMsg, type ServiceInfoMsg } from '@utils-hub/protocol';
import type { ClientLink, Hub, LiveTaskSnapshot, PreparedTask, Requester, Subscriber } from '../core/hub.js';
import { newTaskId } from '../core/task-id.js';
import type { Heartbeat } from './heartbeat.js';
import { FloodGuard } from './flood.js';
import { acceptedFrame, clientFrame, snapshotFrame } from '../core/frames.js';
import { sendFrames } from './socket-send.js';
import type { IdempotentSubmits, SubmitOutcome } from '../delivery/idempotency.js';
import type { Webhooks, WebhookSpec } from '../delivery/webhooks.js';
import { completedWebhookUrl } from '../core/webhook-rows.js';

/** Most unfinished tasks one client connection follows at once. */
export const MAX_SUBSCRIPTIONS = 10_000;

export interface ClientConnDeps {
  hub: Hub;
  heartbeat: Heartbeat;
  /** Takes one request from the client's rate limit; false when it is spent. */
  allow?: () => boolean;
  /** Idempotency keys (`idempotency_key` of add_task); without it such a request is refused `bad_request`. */
  submits?: IdempotentSubmits;
  /** The scope of this connection's idempotency keys (see `keyScope`); default `''`. */
  keyScope?: string;
  /** Webhooks (`webhook` of add_task); without it such a request is refused `bad_request`. */
  webhooks?: Webhooks;
  /** The client key of the connection; null while no key is required. Other keys' tasks are unknown to it. */
  who?: Requester | null;
}

/** An event waiting to be sent: its text, its binary frames, and whether it is a progress. */
type Held = [text: string, binaries: readonly Uint8Array[] | null, progress: boolean];

/**
 * Events held for one task before its `accepted` past which a new progress replaces the latest
 * held one rather than joining it (a commit that waits long, as while the database is down).
 */
const MAX_HELD_EVENTS = 32;
/** Bytes of held events of one task past which, likewise, a progress replaces the latest one. */
const MAX_HELD_BYTES = 1024 * 1024;

/** The bytes an event holds: its text and its binary frames. */
function heldBytes(text: string, binaries: readonly Uint8Array[] | null): number {
  let n = text.length;
  if (binaries) for (const b of binaries) n += b.length;
  return n;
}

export function serveClient(ws: WebSocket, deps: ClientConnDeps): void {
  const { hub } = deps;
  const maxBuffered = hub.config.maxBufferedBytes;
  const flood = new FloodGuard();
  /** Unfinished tasks this connection follows. */
  const following = new Set<string>();
  /** Events produced while an add_task is being accepted: sent right after `accepted`. */
  let held: Held[] | null = null;
  /**
   * Events of tasks whose `accepted` waits for the task's row to be committed (HUB_COMMIT=stored),
   * sent right after it, with the bytes they hold. Past MAX_HELD_EVENTS or MAX_HELD_BYTES only the
   * latest progress is kept: while the database is down a task may run on for long.
   */
  const holding = new Map<string, { events: Held[]; bytes: number }>();
  let closed = false;

  const send = (text: string, binaries?: readonly Uint8Array[] | null) => sendFrames(ws, text, binaries, maxBuffered);

  const subscriber: Subscriber = {
    deliver(taskId, text, binaries, end, progress = false) {
      if (end) following.delete(taskId);
      if (held) {
        held.push([text, binaries, progress]);
        return;
      }
      const waiting = holding.get(taskId);
      if (!waiting) {
        send(text, binaries);
        return;
      }
      const { events } = waiting;
      const last = events[events.length - 1];
      const bytes = heldBytes(text, binaries);
      if (progress && last?.[2] && (events.length >= MAX_HELD_EVENTS || waiting.bytes + bytes > MAX_HELD_BYTES)) {
        waiting.bytes -= heldBytes(last[0], last[1]);
        events[events.length - 1] = [text, binaries, true];
      } else events.push([text, binaries, progress]);
      waiting.bytes += bytes;
    },
  };
  const link: ClientLink = { sendText: (text) => send(text) };

  const error = (err: HubError, extra: { task_id?: string; ref?: string } = {}) => {
    const body: ErrorMsg = { type: 'error', code: err.code, message: err.message };
    const ref = extra.ref ?? (err.details.ref as string | undefined);
    if (ref !== undefined) body.ref = ref;
    const taskId = extra.task_id ?? (err.details.task_id as string | undefined);
    if (taskId !== undefined) body.task_id = taskId;
    send(clientFrame(body));
  };

  /**
   * Follows a live task: its snapshot; 'already' when this connection follows it (no snapshot
   * is made); null when it is not live, or is another key's.
   */
  const follow = (taskId: string): LiveTaskSnapshot | 'already' | null => {
    if (following.has(taskId) && hub.isLive(taskId, deps.who)) return 'already';
    if (following.size >= MAX_SUBSCRIPTIONS && hub.isLive(taskId, deps.who)) {
      throw new HubError('bad_message', `a connection may follow at most ${MAX_SUBSCRIPTIONS} tasks`);
    }
    const snapshot = hub.subscribe(taskId, subscriber, deps.who);
    if (snapshot) following.add(taskId);
    return snapshot;
  };

  /**
   * A plain `add_task` (no idempotency key, no webhook): answered without an async function, the
   * commonest message of all; `accepted` (and the events held behind it) once the row is committed.
   */
  const addTask = (msg: Extract<ClientToHubMessage, { type: 'add_task' }>): void => {
    held = [];
    let accepted: { taskId: string; position: number };
    let stored: Promise<void> | null;
    try {
      const r = hub.submit(msg, { subscriber, owner: deps.who?.owner ?? null });
      following.add(r.taskId);
      accepted = r;
      stored = r.stored;
    } catch (err) {
      held = null;
      const e = err instanceof HubError ? err : new HubError('internal', 'the hub could not take the task');
      const rejected: RejectedMsg = { type: 'rejected', error: e.toJSON() };
      if (msg.ref !== undefined) rejected.ref = msg.ref;
      send(clientFrame(rejected));
      return;
    }
    const events = held;
    held = null;
    const acknowledge = () => {
      holding.delete(accepted.taskId);
      send(acceptedFrame(accepted.taskId, accepted.position, msg.ref));
      for (const [text, binaries] of events) send(text, binaries);
    };
    if (!stored) return acknowledge();
    // Acknowledged once the task's row is committed; its events wait behind `accepted`.
    holding.set(accepted.taskId, { events, bytes: events.reduce((n, [t, b]) => n + heldBytes(t, b), 0) });
    void stored.then(() => {
      if (!closed) acknowledge();
    });
  };

  /** True (and the message answered `rate_limited`) when the client's rate is used up. */
  const limited = (msg: ClientToHubMessage): boolean => {
    if (!deps.allow || deps.allow()) return false;
    const e = new HubError('rate_limited', 'too many requests from this client; slow down');
    if (msg.type === 'add_task' || msg.type === 'service_info') {
      const rejected: RejectedMsg = { type: 'rejected', error: e.toJSON() };
      if (msg.ref !== undefined) rejected.ref = msg.ref;
      send(clientFrame(rejected));
    } else error(e, { task_id: msg.task_id });
    return true;
  };

  const handle = async (msg: ClientToHubMessage) => {
    switch (msg.type) {
      case 'add_task':
        if (msg.idempotency_key !== undefined || msg.webhook !== undefined || msg.webhook_events !== undefined) return addWithExtras(msg);
        return addTask(msg);
      case 'cancel': {
        follow(msg.task_id);
        try {
          await hub.cancel(msg.task_id, deps.who);
        } catch (err) {
          error(err as HubError, { task_id: msg.task_id });
        }
        return;
      }
      case 'subscribe': {
        const t = follow(msg.task_id);
        // Already followed: its events come anyway, and a second snapshot would be work for nothing.
        if (t === 'already') return;
        if (t) {
          send(snapshotFrame(msg.task_id, t));
          return;
        }
        const ended = await hub.endedTask(msg.task_id, deps.who);
        if (ended) {
          send(ended.text, ended.binaries);
          return;
        }
        // Cluster mode: a task held by another hub (always null for one hub alone).
        const elsewhere = following.has(msg.task_id) ? null : await hub.followElsewhere(msg.task_id, subscriber, deps.who);
        if (elsewhere) {
          following.add(msg.task_id);
          send(snapshotFrame(msg.task_id, elsewhere));
        } else error(new HubError('task_not_found', 'no task has this id'), { task_id: msg.task_id });
        return;
      }
      case 'service_info': {
        try {
          const service = hub.serviceInfo(msg.service_id);
          const body: ServiceInfoMsg = { type: 'service_info', service };
          if (msg.ref !== undefined) body.ref = msg.ref;
          send(clientFrame(body));
        } catch (err) {
          const body: RejectedMsg = { type: 'rejected', error: (err as HubError).toJSON() };
          if (msg.ref !== undefined) body.ref = msg.ref;
          send(clientFrame(body));
        }
        return;
      }
    }
  };

  const reject = (err: unknown, ref: string | undefined) => {
    const e = err instanceof HubError ? err : new HubError('internal', 'the hub could not take the task');
    if (!(err instanceof HubError)) hub.log.error({ err }, 'an add_task with an idempotency key failed');
    const rejected: RejectedMsg = { type: 'rejected', error: e.toJSON() };
    if (ref !== undefined) rejected.ref = ref;
    send(clientFrame(rejected));
  };

  /**
   * add_task with `idempotency_key` (one task per key) or `webhook` (its URL checked first),
   * docs/protocol.md section 12: accepted after an await, its early events held meanwhile.
   */
  const addWithExtras = async (msg: Extract<ClientToHubMessage, { type: 'add_task' }>) => {
    const key = msg.idempotency_key;
    let out: SubmitOutcome<{ position: number; stored: Promise<void> | null }>;
    let prepared: PreparedTask;
    try {
      if (key !== undefined && !deps.submits) throw new HubError('bad_request', 'this hub takes no idempotency keys');
      let hook: WebhookSpec | null = null;
      if (msg.webhook !== undefined || msg.webhook_events !== undefined) {
        if (!deps.webhooks) throw new HubError('bad_request', 'this hub sends no webhooks');
        hook = await deps.webhooks.check(msg);
      }
      prepared = hub.prepare(msg);
      const owner = deps.who?.owner ?? null;
      const enqueue = (taskId: string, stored = false) => {
        // Its events wait behind `accepted`, which comes after an await (the key's row, the commit).
        holding.set(taskId, { events: [], bytes: 0 });
        try {
          const r = hub.enqueue(prepared, { taskId, subscriber, owner, stored, webhook: completedWebhookUrl(hook) });
          following.add(taskId);
          if (hook) deps.webhooks!.attach(taskId, hook);
          return r;
        } catch (err) {
          holding.delete(taskId);
          throw err;
        }
      };
      if (key !== undefined) out = await deps.submits!.submit(deps.keyScope ?? '', key, prepared, enqueue, owner, completedWebhookUrl(hook));
      else {
        const taskId = newTaskId();
        out = { duplicate: false, taskId, result: enqueue(taskId) };
      }
    } catch (err) {
      return reject(err, msg.ref);
    }
    if (!out.duplicate) {
      await out.result.stored; // HUB_COMMIT=stored: acknowledged once the task's row is committed
      const events = holding.get(out.taskId)?.events ?? [];
      holding.delete(out.taskId);
      if (closed) return;
      send(acceptedFrame(out.taskId, out.result.position, msg.ref));
      for (const [text, binaries] of events) send(text, binaries);
      return;
    }
    hub.repeated(out.taskId, prepared, deps.who?.owner ?? null);
    if (closed) return;
    // A repeat: the same task, then where it stands now (its snapshot, or its end event).
    // Already followed here (a repeat on the same connection): subscribing again is once.
    const followed = follow(out.taskId);
    let snap = followed === 'already' ? hub.subscribe(out.taskId, subscriber, deps.who) : followed;
    // Cluster mode: a task another hub runs, or that waits in the cluster's queue.
    if (!snap && !following.has(out.taskId)) {
      snap = await hub.followElsewhere(out.taskId, subscriber, deps.who);
      if (snap) following.add(out.taskId);
      if (closed) return;
    }
    send(acceptedFrame(out.taskId, snap?.position ?? 0, msg.ref, true));
    if (snap) {
      send(snapshotFrame(out.taskId, snap));
      return;
    }
    const ended = await hub.endedTask(out.taskId, deps.who);
    if (ended) send(ended.text, ended.binaries);
    else
      error(new HubError('task_not_found', 'the task of this idempotency key is no longer readable (its end expired, or a hub stopped before storing it)'), {
        task_id: out.taskId,
      });
  };

  const bad = (err: HubError) => {
    hub.recordBadMessage('client');
    error(err.code === 'bad_message' || err.code === 'payload_too_large' ? err : new HubError('bad_message', err.message));
    if (flood.hit()) ws.close(1008, 'too many bad messages');
  };

  const failed = (err: unknown) => {
    if (err instanceof HubError) return bad(err);
    hub.log.error({ err }, 'a client message failed');
    error(new HubError('internal', 'the hub failed to handle this message'));
  };

  const decoder = new FrameDecoder({
    maxAttachmentBytes: hub.config.maxMessageBytes,
    onMessage: (message) => {
      let msg: ClientToHubMessage;
      try {
        msg = parseMessage('clientToHub', message);
      } catch (err) {
        return bad(err as HubError);
      }
      if (limited(msg)) return;
      if (msg.type === 'add_task' && msg.idempotency_key === undefined && msg.webhook === undefined && msg.webhook_events === undefined) {
        try {
          addTask(msg);
        } catch (err) {
          failed(err);
        }
        return;
      }
      handle(msg).catch(failed);
    },
    onError: bad,
  });

  ws.on('message', (data, isBinary) => {
    if (!closed) decoder.push(data as Buffer, isBinary);
  });
  ws.on('error', (err) => hub.log.debug({ err: err.message }, 'client socket error'));
  ws.on('close', () => {
    closed = true;
    hub.detachClient(link);
    // Tasks go on without this client; it just stops hearing of them.
    for (const taskId of following) hub.unsubscribe(taskId, subscriber);
    following.clear();
    holding.clear();
  });
  hub.attachClient(link);
  deps.heartbeat.watch(ws);
  send(clientFrame({ type: 'services', services: hub.servicesList() }));
}
