/**
 * The REST routes of PROTOCOL.md section 2. Bodies are checked with the protocol's compiled
 * validators; every error leaves as `{"error": {code, message, ...}}` with its section 6 status.
 */
import type { FastifyInstance } from 'fastify';
import { HubError, inlineMedia, validate } from '@utils-hub/protocol';
import type { Hub, Subscriber } from '../core/hub.js';
import type { EndedTask } from '../core/ended-tasks.js';

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

export async function restRoutes(app: FastifyInstance, opts: { hub: Hub }): Promise<void> {
  const { hub } = opts;

  app.get('/services_list', async () => hub.servicesList());

  app.get<{ Params: { id: string } }>('/service_info/:id', async (req) => hub.serviceInfo(parseId(req.params.id, 'id')));

  app.post<{ Querystring: { wait?: string } }>('/add_task', async (req, reply) => {
    const wait = req.query.wait;
    if (wait !== undefined && !['true', 'false', '1', '0'].includes(wait)) {
      throw new HubError('bad_request', 'wait must be true or false');
    }
    const body = validate.addTaskBody.check(req.body);
    if (wait === 'false' || wait === '0') {
      const { taskId } = hub.submit(body);
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
    await ended;
    const t = await hub.endedTask(taskId);
    if (!t) throw new HubError('internal', 'the task ended but its end could not be read');
    const { status, body: out } = endAnswer(t);
    return reply.code(status).send(out);
  });

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
