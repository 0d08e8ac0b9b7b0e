/**
 * The OpenAPI 3.1 document of the hub's HTTP routes, built from the protocol's TypeBox schemas
 * (the same ones the routes validate with), so the reference cannot drift from the code. It is
 * handed to @fastify/swagger in static mode: the routes keep their own validation and error
 * shapes, and nothing here changes how they answer.
 *
 * OpenAPI 3.1 rather than 3.0: its schemas are JSON Schema, so TypeBox's `const`, `anyOf` and
 * `type: "null"` go in as they are.
 */
import { readFileSync } from 'node:fs';
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

/** A JSON value as the document holds it. */
type Json = Record<string, unknown>;

/** The schema without TypeBox's symbol keys. */
const plain = (schema: unknown): Json => JSON.parse(JSON.stringify(schema)) as Json;

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** Codes every keyed route may answer, whatever it does. */
const COMMON_CODES: ErrorCode[] = ['unauthorized', 'rate_limited', 'internal'];

const WHAT: Partial<Record<ErrorCode, string>> = {
  bad_request: 'malformed JSON, body or parameter',
  invalid_args: 'args do not fit the service\'s arguments; `details` lists each problem',
  unauthorized: 'client keys are required and the key is missing or wrong',
  service_not_found: 'no service has that id',
  task_not_found: 'no task has that id',
  already_finished: 'the task had already ended',
  canceled: 'the task was canceled while the call waited',
  payload_too_large: 'the body is over the hub\'s size limit',
  rate_limited: 'too many requests from this client',
  task_failed: 'the worker reported a failure; `worker_error` holds its `{code, message}`',
  worker_lost: 'the connection carrying the task died and no attempt was left',
  no_worker: 'no live connection took the task within its queue timeout',
  queue_full: 'the service\'s queue is at its limit',
  shutting_down: 'the hub is stopping',
  unavailable: 'cluster mode: this needs another hub and the broker is unreachable',
  interrupted: 'the hub stopped while the task was unfinished',
  timeout: 'the run deadline passed',
  internal: 'a fault of the hub (logged with detail)',
};

/** The error responses for `codes` (plus the common ones), grouped by HTTP status. */
function errorResponses(codes: ErrorCode[]): Json {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of [...codes, ...COMMON_CODES]) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Json = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = {
      description: list.map((c) => `\`${c}\`: ${WHAT[c] ?? c}`).join('; '),
      content: {
        'application/json': {
          schema: {
            allOf: [ref('ErrorBody'), { type: 'object', properties: { error: { type: 'object', properties: { code: { enum: list } } } } }],
          },
        },
      },
    };
  }
  return out;
}

const json = (schema: Json, description: string) => ({ description, content: { 'application/json': { schema } } });

const idParam = (name: string, schema: Json, description: string) => ({ name, in: 'path', required: true, description, schema });

function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

/** Builds the OpenAPI 3.1 document of the hub's HTTP routes. */
export function openApiDocument(): Json {
  const taskId = idParam('task_id', { type: 'string', minLength: 1, maxLength: 64 }, 'The task\'s id (a nanoid made by the hub).');
  const open = { security: [] as unknown[] };
  return {
    openapi: '3.1.0',
    info: {
      title: 'utils-hub',
      version: version(),
      description:
        'The REST routes of a utils-hub (PROTOCOL.md section 2) and its operator routes (section 10). ' +
        'Every error answers `{"error": {"code", "message", ...details}}` with the status of its code. ' +
        'Tasks also run over the `/client` WebSocket (section 5.2), which this document does not describe. ' +
        'When client keys are required, send `Authorization: Bearer <key>`.',
    },
    tags: [
      { name: 'tasks', description: 'Services and tasks (section 2)' },
      { name: 'operator', description: 'Health, metrics and the live view of the page (section 10)' },
    ],
    security: [{ clientKey: [] }, {}],
    paths: {
      '/services_list': {
        get: {
          tags: ['tasks'],
          operationId: 'servicesList',
          summary: 'The services that have a live connection, ordered by service_id',
          responses: { '200': json(ref('ServicesList'), 'The live services'), ...errorResponses([]) },
        },
      },
      '/service_info/{id}': {
        get: {
          tags: ['tasks'],
          operationId: 'serviceInfo',
          summary: 'A service\'s description and arguments, with its connections, in-flight and queued counts',
          parameters: [idParam('id', { type: 'integer', minimum: 0 }, 'The service_id.')],
          responses: { '200': json(ref('ServiceInfo'), 'The service'), ...errorResponses(['bad_request', 'service_not_found']) },
        },
      },
      '/add_task': {
        post: {
          tags: ['tasks'],
          operationId: 'addTask',
          summary: 'Runs a task; waits for its end unless wait=false',
          parameters: [
            {
              name: 'wait',
              in: 'query',
              required: false,
              description: 'false (or 0): answer 202 at once with the task_id; default true: wait for the end.',
              schema: { type: 'string', enum: ['true', 'false', '1', '0'] },
            },
          ],
          requestBody: { required: true, content: { 'application/json': { schema: ref('AddTaskBody') } } },
          responses: {
            '200': json(ref('AddTaskSucceeded'), 'The task succeeded; media in `result` are inline base64'),
            '202': json(ref('AddTaskQueued'), 'With wait=false: the task was taken'),
            ...errorResponses([
              'bad_request',
              'invalid_args',
              'service_not_found',
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
      '/tasks/{task_id}': {
        get: {
          tags: ['tasks'],
          operationId: 'getTask',
          summary: 'A task\'s state, and its result or error once ended (readable for HUB_RESULT_TTL_MS)',
          parameters: [taskId],
          responses: { '200': json(ref('TaskView'), 'The task'), ...errorResponses(['task_not_found']) },
        },
        delete: {
          tags: ['tasks'],
          operationId: 'cancelTask',
          summary: 'Cancels a queued or running task',
          parameters: [taskId],
          responses: { '200': json(ref('TaskView'), 'The task, now canceled'), ...errorResponses(['task_not_found', 'already_finished']) },
        },
      },
      '/healthz': {
        get: {
          tags: ['operator'],
          operationId: 'healthz',
          summary: 'The process is up (no key needed)',
          ...open,
          responses: { '200': json({ type: 'object', properties: { status: { const: 'ok' } }, required: ['status'] }, 'Up') },
        },
      },
      '/readyz': {
        get: {
          tags: ['operator'],
          operationId: 'readyz',
          summary: 'The database answers, its migrations are applied and the hub is not stopping (no key needed)',
          ...open,
          responses: {
            '200': json(ref('Readiness'), 'Ready to take tasks'),
            '503': json(ref('Readiness'), 'Not ready; `reason` says why'),
          },
        },
      },
      '/metrics': {
        get: {
          tags: ['operator'],
          operationId: 'metrics',
          summary: 'Prometheus metrics: tasks by service and end, durations, queues, connections, refusals',
          responses: {
            '200': { description: 'The Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } },
            ...errorResponses([]),
          },
        },
      },
      '/api/overview': {
        get: {
          tags: ['operator'],
          operationId: 'overview',
          summary: 'The live view of the page: services, connections, queues and recent tasks',
          responses: { '200': json(ref('Overview'), 'The hub now'), ...errorResponses([]) },
        },
      },
    },
    components: {
      securitySchemes: {
        clientKey: { type: 'http', scheme: 'bearer', description: 'A client key (HUB_API_KEYS or `utils-hub keys create`), needed only when keys exist.' },
      },
      schemas: {
        Argument: plain(Argument),
        ServicesList: plain(ServicesList),
        ServiceInfo: plain(ServiceInfo),
        AddTaskBody: plain(AddTaskBody),
        AddTaskSucceeded: plain(AddTaskSucceeded),
        AddTaskQueued: plain(AddTaskQueued),
        TaskView: plain(TaskView),
        ErrorBody: plain(ErrorBody),
        Readiness: {
          type: 'object',
          properties: { status: { enum: ['ready', 'not_ready'] }, reason: { type: 'string' } },
          required: ['status'],
        },
        Overview: {
          type: 'object',
          description: 'See server/src/overview-shape.ts: now, shutting_down, clients, running, queued, services (with connections), tasks.',
          properties: {
            now: { type: 'string' },
            shutting_down: { type: 'boolean' },
            clients: { type: 'integer' },
            running: { type: 'integer' },
            queued: { type: 'integer' },
            services: { type: 'array', items: { type: 'object' } },
            tasks: { type: 'array', items: { type: 'object' } },
          },
          required: ['now', 'shutting_down', 'services', 'tasks'],
        },
      },
    },
  };
}
