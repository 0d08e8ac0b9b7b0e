/**
 * The pieces of the hub's OpenAPI 3.1 document that the routes share: the protocol's TypeBox
 * schemas, added to fastify by name (`addSchema`) so that routes refer to them and
 * @fastify/swagger lists them under `components.schemas`; the error responses of a route by
 * status; and the document's head (info, tags, security). @fastify/swagger builds the document
 * from the routes' own schemas (the ones fastify validates and serialises with), so the reference
 * cannot drift from the code.
 *
 * OpenAPI 3.1 rather than 3.0: its schemas are JSON Schema, so TypeBox's `const`, `anyOf` and
 * `type: "null"` go in as they are.
 */
import { readFileSync } from 'node:fs';
import type { SwaggerOptions } from '@fastify/swagger';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  AddTaskBody,
  AddTaskQueued,
  AddTaskSucceeded,
  Argument,
  ERROR_STATUS,
  ErrorBody,
  ServiceInfo,
  ServicesList,
  TaskView,
  type ErrorCode,
} from '@utils-hub/protocol';

/** `/readyz`'s body. */
const Readiness = Type.Object(
  { status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]), reason: Type.Optional(Type.String()) },
  { additionalProperties: true },
);

/** `/api/overview`'s body, in outline (server/src/http/overview-shape.ts has it in full). */
const Overview = Type.Object(
  {
    now: Type.String(),
    hub_id: Type.Optional(Type.String()),
    cluster: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    hubs: Type.Optional(Type.Array(Type.Object({}, { additionalProperties: true }))),
    shutting_down: Type.Boolean(),
    clients: Type.Optional(Type.Integer()),
    running: Type.Optional(Type.Integer()),
    queued: Type.Optional(Type.Integer()),
    services: Type.Array(Type.Object({}, { additionalProperties: true })),
    tasks: Type.Array(Type.Object({}, { additionalProperties: true })),
  },
  {
    additionalProperties: true,
    description:
      "See server/src/http/overview-shape.ts: now, hub_id, cluster, hubs (the cluster's hubs), shutting_down, clients, running, queued, services (with connections, each naming its hub), tasks.",
  },
);

/** The schemas the routes refer to by name: `components.schemas` of the document. */
export const SHARED_SCHEMAS = {
  Argument,
  ServicesList,
  ServiceInfo,
  AddTaskBody,
  AddTaskSucceeded,
  AddTaskQueued,
  TaskView,
  ErrorBody,
  Readiness,
  Overview,
} satisfies Record<string, TSchema>;

/** The name of a shared schema. */
export type SharedName = keyof typeof SHARED_SCHEMAS;

/** The shared schemas as fastify takes them (`app.addSchema`): plain JSON with an `$id`. */
export function sharedSchemas(): Array<Record<string, unknown>> {
  return Object.entries(SHARED_SCHEMAS).map(([name, schema]) => ({ $id: name, ...(JSON.parse(JSON.stringify(schema)) as object) }));
}

/** A reference to a shared schema, typed as the schema (for fastify's TypeBox type provider). */
export function ref<N extends SharedName>(name: N): ReturnType<typeof Type.Unsafe<Static<(typeof SHARED_SCHEMAS)[N]>>> {
  return Type.Unsafe<Static<(typeof SHARED_SCHEMAS)[N]>>({ $ref: `${name}#` });
}

/** The shared schema a route's schema refers to (`{$ref: "Name#"}`), else the schema itself. */
export function resolveShared(schema: unknown): TSchema {
  const name = (schema as { $ref?: unknown } | null)?.$ref;
  if (typeof name === 'string' && name.endsWith('#') && Object.hasOwn(SHARED_SCHEMAS, name.slice(0, -1))) {
    return SHARED_SCHEMAS[name.slice(0, -1) as SharedName];
  }
  return schema as TSchema;
}

/** Codes every keyed route may answer, whatever it does. */
const COMMON_CODES: ErrorCode[] = ['unauthorized', 'rate_limited', 'internal'];

const WHAT: Partial<Record<ErrorCode, string>> = {
  bad_request: 'malformed JSON, body or parameter',
  invalid_args: "args do not fit the service's arguments; `details` lists each problem",
  unauthorized: 'client keys are required and the key is missing or wrong',
  service_not_found: 'no service has that id',
  task_not_found: 'no task has that id',
  already_finished: 'the task had already ended',
  canceled: 'the task was canceled while the call waited',
  payload_too_large: "the body is over the hub's size limit, or the task's messages are over what its worker takes (its hello's `max_message_bytes`)",
  rate_limited: 'too many requests from this client',
  task_failed: 'the worker reported a failure; `worker_error` holds its `{code, message}`',
  worker_lost: 'the connection carrying the task died and no attempt was left; the message says how it closed',
  no_worker: 'no live connection took the task within its queue timeout',
  queue_full: "the service's queue is at its limit",
  shutting_down: 'the hub is stopping',
  unavailable: 'cluster mode: this needs another hub and the broker is unreachable',
  interrupted: 'the hub stopped while the task was unfinished',
  timeout: 'the run deadline passed',
  internal: 'a fault of the hub (logged with detail)',
};

/** A response of a route's schema: its description and its JSON body. */
export function json(schema: TSchema | Record<string, unknown>, description: string) {
  return { description, content: { 'application/json': { schema } } };
}

/**
 * The error responses of a route that may answer `codes` (plus those every keyed route may
 * answer), by HTTP status, each an ErrorBody whose code is one of them. Error bodies are sent as
 * `HubError.toBody()` builds them (see schema-compilers.ts), these schemas only describe them.
 */
export function errorResponses(codes: ErrorCode[], options: { common?: boolean } = {}): Record<string, ReturnType<typeof json>> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of [...codes, ...(options.common === false ? [] : COMMON_CODES)]) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, ReturnType<typeof json>> = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = json(
      { allOf: [{ $ref: 'ErrorBody#' }, { type: 'object', properties: { error: { type: 'object', properties: { code: { enum: list } } } } }] },
      list.map((c) => `\`${c}\`: ${WHAT[c] ?? c}`).join('; '),
    );
  }
  return out;
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** @fastify/swagger's options: the document's head; the paths come from the routes that have tags. */
export function swaggerOptions(): SwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'utils-hub',
        version: version(),
        description:
          'The REST routes of a utils-hub (docs/protocol.md section 2) and its operator routes (section 10). ' +
          'Every error answers `{"error": {"code", "message", ...details}}` with the status of its code. ' +
          'Tasks also run over the `/client` WebSocket (section 5.2), which this document does not describe. ' +
          'When client keys are required, send `Authorization: Bearer <key>`.',
      },
      tags: [
        { name: 'tasks', description: 'Services and tasks (section 2)' },
        { name: 'operator', description: 'Health, metrics and the live view of the page (section 10)' },
      ],
      security: [{ clientKey: [] }, {}],
      components: {
        securitySchemes: {
          clientKey: { type: 'http', scheme: 'bearer', description: 'A client key (HUB_API_KEYS or `utils-hub keys create`), needed only when keys exist.' },
        },
      },
    },
    // The WebSocket upgrades and the page's files have no tags: they are not REST routes.
    hideUntagged: true,
    convertConstToEnum: false,
    // Shared schemas under their own names, not def-0, def-1...
    refResolver: { buildLocalReference: (schema, _baseUri, _fragment, i) => (typeof schema.$id === 'string' ? schema.$id : `def-${i}`) },
  };
}
