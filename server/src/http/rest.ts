/**
 * The REST routes of PROTOCOL.md section 2. Bodies are checked with the protocol's compiled
 * validators; every error leaves as `{"error": {code, message, ...}}` with its section 6 status.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { HubError, inlineMedia, validate } from '@utils-hub/protocol';
import type { Hub, Subscriber } from '../core/hub.js';
import type { EndedTask } from '../core/ended-tasks.js';
import { bearer } from '../access/auth.js';
import { keyScope, parseIdempotencyHeader, type IdempotentSubmits } from '../delivery/idempotency.js';
import type { Webhooks, WebhookSpec } from '../delivery/webhooks.js';

/** Parses a non-negative integer path parameter, or throws `bad_request` naming it. */
export function parseId(value: string, name: string): number {
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new HubError('bad_request', `${name} must be a non-negative integer, got ${JSON.stringify(value.slice(0, 40))}`);
  }
  return Number(value);
}

function endAnswer(ended: EndedTask): { status: number; body: unknown } {
  if (ended.status === 'succeeded') {
    return { status: 200, body: { task_id: ended.id, status: 'succeeded', result: inlineMedia(ended.result) } };
  }
  const err = HubError.from(ended.error);
  return { status: err.status, body: { error: { ...err.toJSON(), task_id: ended.id } } };
}

export async function restRoutes(app: FastifyInstance, opts: { hub: Hub; submits?: IdempotentSubmits; webhooks?: Webhooks }): Promise<void> {
  const { hub, submits, webhooks } = opts;

  app.get('/services_list', async () => hub.registry.list());

  app.get<{ Params: { id: string } }>('/service_info/:id', async (req) => hub.serviceInfo(parseId(req.params.id, 'id')));

  app.post<{ Querystring: { wait?: string } }>('/add_task', async (req, reply) => {
    const wait = req.query.wait;
    if (wait !== undefined && !['true', 'false', '1', '0'].includes(wait)) {
      throw new HubError('bad_request', 'wait must be true or false');
    }
    const key = parseIdempotencyHeader(req.headers['idempotency-key']);
    const body = validate.addTaskBody.check(req.body);
    let hook: WebhookSpec | null = null;
    if (body.webhook !== undefined || body.webhook_events !== undefined) {
      if (!webhooks) throw new HubError('bad_request', 'this hub sends no webhooks');
      hook = await webhooks.check(body);
    }
    if (key !== null) {
      if (!submits) throw new HubError('bad_request', 'this hub takes no Idempotency-Key');
      return keyedAddTask(submits, key, body, wait !== 'false' && wait !== '0', keyScope(bearer(req.raw, 'key')), reply, hook);
    }
    if (wait === 'false' || wait === '0') {
      const { taskId } = hub.submit(body);
      if (hook) webhooks!.attach(taskId, hook);
      return reply.code(202).send({ task_id: taskId, status: 'queued' });
    }
    let taskId = '';
    const ended = new Promise<void>((resolve) => {
      const waiter: Subscriber = {
        deliver: (_id, _text, _bins, end) => {
          if (end) resolve();
        },
      };
      taskId = hub.submit(body, { subscriber: waiter }).taskId;
    });
    if (hook) webhooks!.attach(taskId, hook);
    await ended;
    const t = await hub.endedTask(taskId);
    if (!t) throw new HubError('internal', 'the task ended but its end could not be read');
    const { status, body: out } = endAnswer(t);
    return reply.code(status).send(out);
  });

  /**
   * `POST /add_task` with `Idempotency-Key` (docs/protocol.md section 12): the first request makes
   * the task; a repeat answers the same task (waiting for its end, as the first did), with the
   * header `Idempotent-Replayed: true`.
   */
  async function keyedAddTask(submits: IdempotentSubmits, key: string, body: Parameters<Hub['prepare']>[0], wait: boolean, scope: string, reply: FastifyReply, hook: WebhookSpec | null) {
    const prepared = hub.prepare(body);
    let resolveEnd!: () => void;
    const ended = new Promise<void>((resolve) => (resolveEnd = resolve));
    const waiter: Subscriber = {
      deliver: (_id, _text, _bins, end) => {
        if (end) resolveEnd();
      },
    };
    const out = await submits.submit(scope, key, prepared, (taskId) => {
      const r = hub.enqueue(prepared, { taskId, subscriber: wait ? waiter : undefined });
      if (hook) webhooks!.attach(taskId, hook);
      return r;
    });
    if (out.duplicate) reply.header('idempotent-replayed', 'true');
    if (!wait) return reply.code(202).send(out.duplicate ? { task_id: out.taskId, status: 'queued', duplicate: true } : { task_id: out.taskId, status: 'queued' });
    if (out.duplicate) {
      const live = hub.dispatcher.task(out.taskId);
      if (live) live.payload.subscribers.add(waiter);
      else resolveEnd();
    }
    await ended;
    const t = await hub.endedTask(out.taskId);
    if (!t) {
      throw new HubError('task_not_found', 'the task of this Idempotency-Key is no longer readable (its end expired, or a hub stopped before storing it)', { task_id: out.taskId });
    }
    const { status, body: answer } = endAnswer(t);
    return reply.code(status).send(answer);
  }

  app.get<{ Params: { id: string } }>('/tasks/:id', async (req) => {
    const view = await hub.view(req.params.id);
    if (!view) throw new HubError('task_not_found', 'no task has this id', { task_id: req.params.id.slice(0, 64) });
    return view;
  });

  app.delete<{ Params: { id: string } }>('/tasks/:id', async (req) => {
    await hub.cancel(req.params.id);
    return hub.view(req.params.id);
  });
}
