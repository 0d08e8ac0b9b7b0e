/**
 * The REST routes of docs/protocol.md section 2. Each declares its schema (TypeBox, through
 * fastify's type provider): fastify checks params, query and body with the protocol's validators
 * and writes success bodies from their schema (schema-compilers.ts), and @fastify/swagger
 * documents the route from it. Every error leaves as `{"error": {code, message, ...}}` with its
 * section 6 status.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { HubError, inlineMedia } from '@utils-hub/protocol';
import { nodeBase64 } from '../core/node-base64.js';
import type { Hub, Requester, Subscriber } from '../core/hub.js';
import { resultOf, type EndedTask } from '../core/ended-tasks.js';
import { errorResponses, json, ref } from './openapi.js';
import { restSerializerCompiler, withMessage } from './schema-compilers.js';
import { bearer } from '../access/auth.js';
import { keyScope, parseIdempotencyHeader, type IdempotentSubmits } from '../delivery/idempotency.js';
import type { Webhooks, WebhookSpec } from '../delivery/webhooks.js';
import { completedWebhookUrl } from '../core/webhook-rows.js';

/** The message of a path parameter that is not a non-negative integer. */
function notAnId(value: unknown, name: string): string {
  return `${name} must be a non-negative integer, got ${JSON.stringify(String(value).slice(0, 40))}`;
}

/** Parses a non-negative integer path parameter, or throws `bad_request` naming it. */
export function parseId(value: string, name: string): number {
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) throw new HubError('bad_request', notAnId(value, name));
  return Number(value);
}

/** `{id}`: a service_id, as digits (up to 2^53 - 1, checked by parseId). */
const ServiceIdParams = withMessage(
  Type.Object({ id: Type.String({ pattern: '^[0-9]{1,16}$', description: 'The service_id: a non-negative integer.' }) }),
  (p) => notAnId(p.id, 'id'),
);

/** `{task_id}`: any string; an id the hub never made is `task_not_found`. */
const TaskIdParams = Type.Object({ task_id: Type.String({ description: "The task's id (a nanoid made by the hub)." }) });

const WaitQuery = withMessage(
  Type.Object(
    {
      wait: Type.Optional(
        Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')], {
          description: 'false (or 0): answer 202 at once with the task_id; default true: wait for the end.',
        }),
      ),
    },
    { additionalProperties: true },
  ),
  () => 'wait must be true, false, 1 or 0',
);

function endAnswer(ended: EndedTask): { status: number; body: unknown } {
  if (ended.status === 'succeeded') {
    return { status: 200, body: { task_id: ended.id, status: 'succeeded', result: inlineMedia(resultOf(ended), nodeBase64) } };
  }
  const err = HubError.from(ended.error);
  return { status: err.status, body: { error: { ...err.toJSON(), task_id: ended.id } } };
}

export async function restRoutes(fastify: FastifyInstance, opts: { hub: Hub; submits?: IdempotentSubmits; webhooks?: Webhooks }): Promise<void> {
  const { hub, submits, webhooks } = opts;
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  app.setSerializerCompiler(restSerializerCompiler);

  app.get(
    '/services_list',
    {
      schema: {
        tags: ['tasks'],
        operationId: 'servicesList',
        summary: 'The services that have a live connection, ordered by service_id',
        response: { 200: json(ref('ServicesList'), 'The live services'), ...errorResponses([]) },
      },
    },
    async () => hub.servicesList(),
  );

  app.get(
    '/service_info/:id',
    {
      schema: {
        tags: ['tasks'],
        operationId: 'serviceInfo',
        summary: "A service's description and arguments, with its connections, in-flight and queued counts",
        params: ServiceIdParams,
        response: { 200: json(ref('ServiceInfo'), 'The service'), ...errorResponses(['bad_request', 'service_not_found']) },
      },
    },
    async (req) => hub.serviceInfo(parseId(req.params.id, 'id')),
  );

  app.post(
    '/add_task',
    {
      schema: {
        tags: ['tasks'],
        operationId: 'addTask',
        summary:
          'Runs a task; waits for its end unless wait=false. Header Idempotency-Key (1 to 255 printable ASCII characters, as "..." or bare): one task per key and client key for 24 h, a repeat answers the same task with Idempotent-Replayed: true; webhook and webhook_events: signed POSTs of the task (docs/protocol.md section 12)',
        querystring: WaitQuery,
        body: ref('AddTaskBody'),
        response: {
          200: json(ref('AddTaskSucceeded'), 'The task succeeded; media in `result` are inline base64'),
          202: json(ref('AddTaskQueued'), 'With wait=false: the task was taken (with HUB_COMMIT=stored, its row committed)'),
          ...errorResponses([
            'bad_request',
            'invalid_args',
            'service_not_found',
            'idempotency_mismatch',
            'canceled',
            'payload_too_large',
            'task_failed',
            'worker_lost',
            'no_worker',
            'queue_full',
            'shutting_down',
            'interrupted',
            'timeout',
          ]),
        },
      },
    },
    async (req, reply) => {
      const wait = req.query.wait;
      const body = req.body;
      const key = parseIdempotencyHeader(req.headers['idempotency-key']);
      let hook: WebhookSpec | null = null;
      if (body.webhook !== undefined || body.webhook_events !== undefined) {
        if (!webhooks) throw new HubError('bad_request', 'this hub sends no webhooks');
        hook = await webhooks.check(body);
      }
      if (key !== null) {
        if (!submits) throw new HubError('bad_request', 'this hub takes no Idempotency-Key');
        return keyedAddTask(submits, key, body, wait !== 'false' && wait !== '0', keyScope(bearer(req.raw, null)), reply, hook, req.client ?? null);
      }
      if (wait === 'false' || wait === '0') {
        const { taskId, stored } = hub.submit(body, { owner: req.client?.owner ?? null, webhook: completedWebhookUrl(hook) });
        if (hook) webhooks!.attach(taskId, hook);
        await stored; // HUB_COMMIT=stored: a 202 only once the task's row is committed
        return reply.code(202).send({ task_id: taskId, status: 'queued' });
      }
      let taskId = '';
      const ended = new Promise<void>((resolve) => {
        const waiter: Subscriber = {
          deliver: (_id, _text, _bins, end) => {
            if (end) resolve();
          },
        };
        taskId = hub.submit(body, { subscriber: waiter, owner: req.client?.owner ?? null, webhook: completedWebhookUrl(hook) }).taskId;
      });
      if (hook) webhooks!.attach(taskId, hook);
      await ended;
      const t = await hub.endedTask(taskId, req.client);
      if (!t) throw new HubError('internal', 'the task ended but its end could not be read');
      const { status, body: out } = endAnswer(t);
      // The status and body of a success or of any error (errors are written as built, unchecked).
      return reply.code(status as 200).send(out as never);
    },
  );

  /**
   * `POST /add_task` with `Idempotency-Key` (docs/protocol.md section 12): the first request makes
   * the task; a repeat answers the same task (waiting for its end, as the first did), with the
   * header `Idempotent-Replayed: true`.
   */
  async function keyedAddTask(
    submits: IdempotentSubmits,
    key: string,
    body: Parameters<Hub['prepare']>[0],
    wait: boolean,
    scope: string,
    reply: FastifyReply,
    hook: WebhookSpec | null,
    who: Requester | null,
  ) {
    const prepared = hub.prepare(body);
    let resolveEnd!: () => void;
    const ended = new Promise<void>((resolve) => (resolveEnd = resolve));
    const waiter: Subscriber = {
      deliver: (_id, _text, _bins, end) => {
        if (end) resolveEnd();
      },
    };
    const owner = who?.owner ?? null;
    const webhook = completedWebhookUrl(hook);
    const out = await submits.submit(
      scope,
      key,
      prepared,
      (taskId, stored) => {
        const r = hub.enqueue(prepared, { taskId, subscriber: wait ? waiter : undefined, owner, stored, webhook });
        if (hook) webhooks!.attach(taskId, hook);
        return r;
      },
      owner,
      webhook,
    );
    if (out.duplicate) {
      reply.header('idempotent-replayed', 'true');
      hub.repeated(out.taskId, prepared, owner);
    } else await out.result.stored; // HUB_COMMIT=stored: acknowledged once the task's row is committed
    if (!wait)
      return reply.code(202).send(out.duplicate ? { task_id: out.taskId, status: 'queued', duplicate: true } : { task_id: out.taskId, status: 'queued' });
    // A repeat: wait for the task here, or (cluster mode) where another hub runs it or it waits.
    if (out.duplicate && !hub.subscribe(out.taskId, waiter, who) && !(await hub.followElsewhere(out.taskId, waiter, who))) resolveEnd();
    await ended;
    const t = await hub.endedTask(out.taskId, who);
    if (!t) {
      throw new HubError('task_not_found', 'the task of this Idempotency-Key is no longer readable (its end expired, or a hub stopped before storing it)', {
        task_id: out.taskId,
      });
    }
    const { status, body: answer } = endAnswer(t);
    return reply.code(status).send(answer);
  }

  app.get(
    '/tasks/:task_id',
    {
      schema: {
        tags: ['tasks'],
        operationId: 'getTask',
        summary: "A task's state, and its result or error once ended (readable for HUB_RESULT_TTL_MS)",
        params: TaskIdParams,
        response: { 200: json(ref('TaskView'), 'The task'), ...errorResponses(['task_not_found']) },
      },
    },
    async (req) => {
      // Another key's task answers as an unknown one (docs/protocol.md, "Whose task it is").
      const view = await hub.view(req.params.task_id, req.client);
      if (!view) throw new HubError('task_not_found', 'no task has this id', { task_id: req.params.task_id.slice(0, 64) });
      return view;
    },
  );

  app.delete(
    '/tasks/:task_id',
    {
      schema: {
        tags: ['tasks'],
        operationId: 'cancelTask',
        summary: 'Cancels a queued or running task',
        params: TaskIdParams,
        response: { 200: json(ref('TaskView'), 'The task, now canceled'), ...errorResponses(['task_not_found', 'already_finished']) },
      },
    },
    async (req) => {
      await hub.cancel(req.params.task_id, req.client);
      return hub.view(req.params.task_id, req.client);
    },
  );
}
