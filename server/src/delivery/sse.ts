/**
 * `GET /tasks/{id}/events` (docs/protocol.md section 12): a task's events as server-sent events,
 * for clients that speak HTTP but not WebSocket. First the task's state now (a `snapshot`, or
 * the end event of an ended task), then each later event as `id: <seq>`, `event: <type>`,
 * `data: <the frame as /client gets it>`, media inline as base64 as over REST; the stream closes
 * after the end event. `Last-Event-ID` resumes: the snapshot is left out when nothing happened
 * after that seq, and an ended task whose end was seen answers 204 (which stops a browser's
 * EventSource from reconnecting).
 */
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { errorResponses } from '../http/openapi.js';
import type { ServerResponse } from 'node:http';
import { HubError, inlineMedia } from '@utils-hub/protocol';
import type { Hub, Subscriber } from '../core/hub.js';
import { resolveRefs } from '../core/task-persistence.js';

/** How often an idle stream gets a comment line, so that proxies do not cut it: 15 s, in ms. */
export const SSE_KEEP_ALIVE_MS = 15_000;

/**
 * One event in the `text/event-stream` form. A frame with binaries gets its media inline as
 * `{mime, data: "<base64>", name?}`; line breaks inside the frame's text (a worker's pretty JSON)
 * become continuation `data:` lines, which the reader joins back with `\n`.
 */
export function sseEvent(text: string, binaries: readonly Buffer[] | null): { chunk: string; seq: number | null } {
  let msg = JSON.parse(text) as Record<string, unknown>;
  if (binaries?.length) {
    msg = inlineMedia(resolveRefs(msg, binaries)) as Record<string, unknown>;
    delete msg.attachments;
    text = JSON.stringify(msg);
  }
  const seq = typeof msg.seq === 'number' ? msg.seq : null;
  const type = typeof msg.type === 'string' ? msg.type.replace(/[\r\n]/g, '') : 'message';
  const data = text.replace(/\r\n|\r|\n/g, '\ndata: ');
  return { chunk: `${seq === null ? '' : `id: ${seq}\n`}event: ${type}\ndata: ${data}\n\n`, seq };
}

/** Reads `Last-Event-ID`: a seq (a non-negative integer), null when absent; `bad_request` otherwise. */
export function parseLastEventId(value: string | string[] | undefined): number | null {
  if (value === undefined || value === '') return null;
  if (Array.isArray(value) || !/^\d{1,15}$/.test(value.trim())) throw new HubError('bad_request', 'Last-Event-ID must be the seq of an event, a non-negative integer');
  return Number(value.trim());
}

/** The route's schema, for the OpenAPI document (@fastify/swagger). */
const EVENTS_SCHEMA = {
  tags: ['tasks'],
  operationId: 'taskEvents',
  summary:
    "The task's events as server-sent events: its state now (snapshot, or its end event), then each event (id: seq, event: type, data: the /client frame), closed after the end; Last-Event-ID resumes (204 once the end was seen); ?key= is taken here",
  params: Type.Object({ task_id: Type.String({ description: "The task's id (a nanoid made by the hub)." }) }),
  headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ description: 'The seq of the last event seen: resume after it.' })) }),
  response: {
    200: { description: 'The event stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
    204: { description: 'The task ended and its end was seen (Last-Event-ID): nothing more comes', type: 'null' },
    ...errorResponses(['bad_request', 'task_not_found']),
  },
};

export async function sseRoutes(app: FastifyInstance, opts: { hub: Hub; keepAliveMs?: number }): Promise<void> {
  const { hub } = opts;
  const keepAliveMs = opts.keepAliveMs ?? SSE_KEEP_ALIVE_MS;

  app.get<{ Params: { task_id: string } }>('/tasks/:task_id/events', { schema: EVENTS_SCHEMA }, async (req, reply) => {
    const taskId = req.params.task_id;
    const after = parseLastEventId(req.headers['last-event-id']);
    const notFound = () => new HubError('task_not_found', 'no task has this id', { task_id: taskId.slice(0, 64) });
    let first: string[] = [];
    let live = hub.dispatcher.task(taskId);
    if (!live) {
      const ended = await hub.endedTask(taskId);
      // It may have started meanwhile? No: an id is live before it is ended, never after.
      live = hub.dispatcher.task(taskId);
      if (!live) {
        if (!ended) throw notFound();
        if (after !== null && after >= ended.seq) return reply.code(204).send();
        first = [sseEvent(ended.text, ended.binaries).chunk];
        reply.hijack();
        const res = reply.raw;
        open(res);
        res.end(first[0]);
        return;
      }
    }
    const t = live;
    if (after === null || t.seq > after) {
      const snapshot = JSON.stringify({ type: 'snapshot', task_id: t.id, seq: t.seq, status: t.status, progress: t.progress, message: t.message, position: hub.dispatcher.position(t.id) });
      first = [sseEvent(snapshot, null).chunk];
    }
    reply.hijack();
    const res = reply.raw;
    open(res);
    for (const chunk of first) res.write(chunk);
    const maxBuffered = hub.config.maxBufferedBytes;
    let timer: NodeJS.Timeout | null = null;
    const stop = () => {
      if (timer) clearInterval(timer);
      timer = null;
      hub.dispatcher.task(taskId)?.payload.subscribers.delete(subscriber);
    };
    const subscriber: Subscriber = {
      deliver(_id, text, binaries, end) {
        if (res.destroyed) return stop();
        let event: ReturnType<typeof sseEvent>;
        try {
          event = sseEvent(text, binaries);
        } catch (err) {
          hub.log.warn({ err, task_id: taskId }, 'an event could not be written as a server-sent event');
          return;
        }
        if (after !== null && event.seq !== null && event.seq <= after) return;
        res.write(event.chunk);
        if (end) {
          stop();
          res.end();
        } else if (res.writableLength > maxBuffered) {
          // A reader that does not read: cut it rather than hold its events (it may resume).
          stop();
          res.destroy();
        }
      },
    };
    t.payload.subscribers.add(subscriber);
    timer = setInterval(() => {
      if (res.destroyed || res.writableEnded) stop();
      else res.write(': keep-alive\n\n');
    }, keepAliveMs);
    timer.unref();
    res.on('close', stop);
  });

  function open(res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // nginx buffers responses unless told not to.
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
  }
}
