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
import { HubError, inlineMedia, resolveRefs } from '@utils-hub/protocol';
import type { Hub, LiveTaskSnapshot, Subscriber } from '../core/hub.js';
import { snapshotFrame } from '../core/frames.js';

/** How often an idle stream gets a comment line, so that proxies do not cut it: 15 s, in ms. */
export const SSE_KEEP_ALIVE_MS = 15_000;

/**
 * One event in the `text/event-stream` form. A frame with binaries gets its media inline as
 * `{mime, data: "<base64>", name?}`; line breaks inside the frame's text (a worker's pretty JSON)
 * become continuation `data:` lines, which the reader joins back with `\n`.
 */
export function sseEvent(text: string, binaries: readonly Uint8Array[] | null): { chunk: string; seq: number | null } {
  let msg = JSON.parse(text) as Record<string, unknown>;
  if (binaries?.length) {
    // The frame's text is parsed afresh here, so its refs may be resolved in place.
    resolveRefs(msg, binaries, 1);
    msg = inlineMedia(msg) as Record<string, unknown>;
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
  if (Array.isArray(value) || !/^\d{1,15}$/.test(value.trim()))
    throw new HubError('bad_request', 'Last-Event-ID must be the seq of an event, a non-negative integer');
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

  app.get<{ Params: { task_id: string } }>('/tasks/:task_id/events', { schema: EVENTS_SCHEMA, config: { queryKey: true } }, async (req, reply) => {
    const taskId = req.params.task_id;
    const after = parseLastEventId(req.headers['last-event-id']);
    const notFound = () => new HubError('task_not_found', 'no task has this id', { task_id: taskId.slice(0, 64) });
    const maxBuffered = hub.config.maxBufferedBytes;
    let timer: NodeJS.Timeout | null = null;
    let res: ServerResponse | null = null;
    /** Events that come before the stream is open (between subscribing and hijacking). */
    const early: Array<[string, readonly Uint8Array[] | null, boolean]> = [];
    const stop = () => {
      if (timer) clearInterval(timer);
      timer = null;
      hub.unsubscribe(taskId, subscriber);
    };
    const write = (text: string, binaries: readonly Uint8Array[] | null, end: boolean) => {
      const out = res!;
      if (out.destroyed) return stop();
      let event: ReturnType<typeof sseEvent>;
      try {
        event = sseEvent(text, binaries);
      } catch (err) {
        hub.log.warn({ err, task_id: taskId }, 'an event could not be written as a server-sent event');
        return;
      }
      if (after !== null && event.seq !== null && event.seq <= after) return;
      out.write(event.chunk);
      if (end) {
        stop();
        out.end();
      } else if (out.writableLength > maxBuffered) {
        // A reader that does not read: cut it rather than hold its events (it may resume).
        stop();
        out.destroy();
      }
    };
    const subscriber: Subscriber = {
      deliver(_id, text, binaries, end) {
        if (res) write(text, binaries, end);
        else early.push([text, binaries, end]);
      },
    };
    // Another client key's task answers as an unknown one (docs/protocol.md, "Whose task it is").
    const who = req.client ?? null;
    let snap: LiveTaskSnapshot | null = hub.subscribe(taskId, subscriber, who);
    if (!snap) {
      const ended = await hub.endedTask(taskId, who);
      // An id is live before it is ended, never after: no need to look again.
      if (!ended) throw notFound();
      if (after !== null && after >= ended.seq) return reply.code(204).send();
      reply.hijack();
      const out = reply.raw;
      open(out);
      out.end(sseEvent(ended.text, ended.binaries).chunk);
      return;
    }
    reply.hijack();
    res = reply.raw;
    open(res);
    if (after === null || snap.seq > after) {
      res.write(sseEvent(snapshotFrame(taskId, snap), null).chunk);
    }
    snap = null;
    for (const [text, binaries, end] of early.splice(0)) write(text, binaries, end);
    if (res.writableEnded) return;
    const stream = res;
    timer = setInterval(() => {
      if (stream.destroyed || stream.writableEnded) stop();
      else stream.write(': keep-alive\n\n');
    }, keepAliveMs);
    timer.unref();
    stream.on('close', stop);
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
