/**
 * JSON Schemas of every REST body and WebSocket message of the utils-hub contract, written once
 * with TypeBox so that the TypeScript types (`Static<typeof X>`) and the ajv validators
 * (validators.ts) come from the same declaration and cannot drift.
 *
 * Objects allow unknown properties: every party ignores fields it does not know (docs/protocol.md section 1).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ARG_TYPES, MAX_ARGUMENTS, MAX_ATTACHMENTS, MAX_SAFE_INT } from './limits.js';

const Obj = <T extends Parameters<typeof Type.Object>[0]>(props: T) => Type.Object(props, { additionalProperties: true });

export const ServiceName = Type.String({ pattern: '^[A-Za-z0-9_.\\-]{1,64}$' });
export const ArgumentName = Type.String({ pattern: '^[A-Za-z0-9_]{1,64}$' });
export const TaskId = Type.String({ minLength: 1, maxLength: 64 });
export const Ref = Type.String({ maxLength: 256 });
export const ServiceId = Type.Integer({ minimum: 0, maximum: MAX_SAFE_INT });

/** An argument type (section 3). */
export const ArgType = Type.Union(ARG_TYPES.map((t) => Type.Literal(t)));
export type ArgType = (typeof ARG_TYPES)[number];

/** One argument of a service (an entry of `/me` `input` or `output`), with its optional extras. */
export const Argument = Obj({
  argument_name: ArgumentName,
  argument_description: Type.Optional(Type.String({ maxLength: 4096 })),
  type: ArgType,
  required: Type.Optional(Type.Boolean()),
  default: Type.Optional(Type.Unknown()),
  choices: Type.Optional(Type.Array(Type.Unknown(), { minItems: 1, maxItems: 1000 })),
  min: Type.Optional(Type.Number()),
  max: Type.Optional(Type.Number()),
  mime: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { minItems: 1, maxItems: 64 })),
  max_bytes: Type.Optional(Type.Integer({ minimum: 0 })),
  prompt: Type.Optional(Type.String({ maxLength: 4096 })),
});
export type Argument = Static<typeof Argument>;

/** The service description a worker serves at `GET /me` and sends in `hello`. */
export const ServiceDescription = Obj({
  name: ServiceName,
  description: Type.String({ maxLength: 65536 }),
  input: Type.Array(Argument, { maxItems: MAX_ARGUMENTS }),
  output: Type.Optional(Type.Array(Argument, { maxItems: MAX_ARGUMENTS })),
});
export type ServiceDescription = Static<typeof ServiceDescription>;

// ---- values (section 4) ----

/** Media inline as base64: `{"mime": "image/png", "data": "<base64>", "name": "cat.png"}`. */
export const MediaBase64 = Obj({
  mime: Type.String({ minLength: 1, maxLength: 255 }),
  data: Type.String(),
  name: Type.Optional(Type.String({ maxLength: 1024 })),
});
export type MediaBase64 = Static<typeof MediaBase64>;
/** Media by reference; the hub passes it on and never fetches it. */
export const MediaUrl = Obj({
  url: Type.String({ minLength: 1, maxLength: 8192 }),
  mime: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  name: Type.Optional(Type.String({ maxLength: 1024 })),
});
export type MediaUrl = Static<typeof MediaUrl>;
/** On a WebSocket only: the k-th binary frame that follows the message. */
export const AttachmentRef = Obj({
  $attachment: Type.Integer({ minimum: 0, maximum: MAX_ATTACHMENTS - 1 }),
  mime: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  name: Type.Optional(Type.String({ maxLength: 1024 })),
});
export type AttachmentRef = Static<typeof AttachmentRef>;

/** An error as it travels in messages and bodies. */
export const ErrorInfo = Obj({
  code: Type.String({ minLength: 1, maxLength: 128 }),
  message: Type.String({ maxLength: 65536 }),
});
export type ErrorInfo = Static<typeof ErrorInfo>;

const Attachments = Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ATTACHMENTS }));
const Progress = Type.Optional(Type.Number({ minimum: 0, maximum: 1 }));
const TimeoutMs = Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_SAFE_INT }));
const QueueTimeoutMs = Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_SAFE_INT }));
/**
 * An idempotency key (section 12 of docs/protocol.md): 1 to 255 printable ASCII characters, as
 * the `Idempotency-Key` header carries it.
 */
export const IdempotencyKey = Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x20-\\x7e]{1,255}$' });
/** The events a webhook is sent for (default `["completed"]`). */
export const WEBHOOK_EVENTS = ['started', 'progress', 'completed'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];
/** A webhook URL: `http` or `https`, at most 2048 characters (checked further by the hub). */
export const WebhookUrl = Type.String({ minLength: 1, maxLength: 2048, pattern: '^[Hh][Tt][Tt][Pp][Ss]?://' });
export const WebhookEvents = Type.Array(Type.Union(WEBHOOK_EVENTS.map((e) => Type.Literal(e))), { minItems: 1, maxItems: 3, uniqueItems: true });
/** `args`: positional (array) or named (object). */
export const Args = Type.Union([Type.Array(Type.Unknown()), Type.Object({}, { additionalProperties: true })]);

// ---- REST (section 2) ----

export const ServiceListEntry = Obj({ service_id: ServiceId, service_name: ServiceName });
export type ServiceListEntry = Static<typeof ServiceListEntry>;
export const ServicesList = Type.Array(ServiceListEntry);
export type ServicesList = Static<typeof ServicesList>;

export const ServiceInfo = Obj({
  service_id: ServiceId,
  service_name: ServiceName,
  service_description: Type.String(),
  arguments: Type.Array(Argument),
  output: Type.Optional(Type.Array(Argument)),
  connections: Type.Optional(Type.Integer({ minimum: 0 })),
  in_flight: Type.Optional(Type.Integer({ minimum: 0 })),
  queued: Type.Optional(Type.Integer({ minimum: 0 })),
});
export type ServiceInfo = Static<typeof ServiceInfo>;

export const AddTaskBody = Obj({
  service_id: ServiceId,
  args: Args,
  timeout_ms: TimeoutMs,
  queue_timeout_ms: QueueTimeoutMs,
  webhook: Type.Optional(WebhookUrl),
  webhook_events: Type.Optional(WebhookEvents),
});
export type AddTaskBody = Static<typeof AddTaskBody>;

export const TASK_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TaskStatusSchema = Type.Union(TASK_STATUSES.map((s) => Type.Literal(s)));

export const AddTaskSucceeded = Obj({ task_id: TaskId, status: Type.Literal('succeeded'), result: Type.Unknown() });
export const AddTaskQueued = Obj({ task_id: TaskId, status: Type.Literal('queued') });

export const TaskView = Obj({
  task_id: TaskId,
  service_id: ServiceId,
  status: TaskStatusSchema,
  progress: Type.Union([Type.Number(), Type.Null()]),
  message: Type.Union([Type.String(), Type.Null()]),
  result: Type.Optional(Type.Unknown()),
  error: Type.Optional(Type.Unknown()),
  attempts: Type.Optional(Type.Integer({ minimum: 0 })),
  created_at: Type.String(),
  started_at: Type.Union([Type.String(), Type.Null()]),
  finished_at: Type.Union([Type.String(), Type.Null()]),
});
export type TaskView = Static<typeof TaskView>;

export const ErrorBody = Obj({
  error: Obj({ code: Type.String(), message: Type.String(), task_id: Type.Optional(TaskId) }),
});
export type ErrorBody = Static<typeof ErrorBody>;

// ---- worker <-> hub (section 5.1) ----

/** Least `max_message_bytes` a worker may announce in `hello`: 1 KiB. */
export const MIN_MESSAGE_BYTES = 1024;

export const HelloMsg = Obj({
  type: Type.Literal('hello'),
  protocol: Type.Integer({ minimum: 0 }),
  me: Type.Unknown(), // checked by checkServiceDescription, which names the offending field
  concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
  instance: Type.Optional(Type.String({ maxLength: 256 })),
  /**
   * The largest message the worker takes, in bytes: its text frame, and the binary frames of one
   * message together. The hub never sends it a task over it (docs/protocol.md, "Frame limits").
   */
  max_message_bytes: Type.Optional(Type.Integer({ minimum: MIN_MESSAGE_BYTES, maximum: MAX_SAFE_INT })),
});
export type HelloMsg = Static<typeof HelloMsg>;
export const WelcomeMsg = Obj({
  type: Type.Literal('welcome'),
  service_id: ServiceId,
  connection_id: Type.String(),
  heartbeat_ms: Type.Integer({ minimum: 1 }),
});
export type WelcomeMsg = Static<typeof WelcomeMsg>;
export const TaskMsg = Obj({
  type: Type.Literal('task'),
  task_id: TaskId,
  args: Type.Object({}, { additionalProperties: true }),
  timeout_ms: Type.Integer({ minimum: 1 }),
  attempt: Type.Integer({ minimum: 1 }),
  attachments: Attachments,
});
export type TaskMsg = Static<typeof TaskMsg>;
export const CANCEL_REASONS = ['client', 'timeout', 'shutdown'] as const;
export type CancelReason = (typeof CANCEL_REASONS)[number];
export const WorkerCancelMsg = Obj({
  type: Type.Literal('cancel'),
  task_id: TaskId,
  reason: Type.Union(CANCEL_REASONS.map((r) => Type.Literal(r))),
});
export type WorkerCancelMsg = Static<typeof WorkerCancelMsg>;
export const WorkerProgressMsg = Obj({
  type: Type.Literal('progress'),
  task_id: TaskId,
  progress: Progress,
  message: Type.Optional(Type.String({ maxLength: 65536 })),
  data: Type.Optional(Type.Unknown()),
  attachments: Attachments,
});
export type WorkerProgressMsg = Static<typeof WorkerProgressMsg>;
export const WorkerResultMsg = Obj({
  type: Type.Literal('result'),
  task_id: TaskId,
  result: Type.Unknown(),
  attachments: Attachments,
});
export type WorkerResultMsg = Static<typeof WorkerResultMsg>;
export const WorkerFailedMsg = Obj({ type: Type.Literal('failed'), task_id: TaskId, error: ErrorInfo });
export type WorkerFailedMsg = Static<typeof WorkerFailedMsg>;
export const DrainMsg = Obj({ type: Type.Literal('drain') });
export type DrainMsg = Static<typeof DrainMsg>;
export const ErrorMsg = Obj({
  type: Type.Literal('error'),
  code: Type.String(),
  message: Type.String(),
  task_id: Type.Optional(TaskId),
  ref: Type.Optional(Ref),
});
export type ErrorMsg = Static<typeof ErrorMsg>;

// ---- client <-> hub (section 5.2) ----

export const ClientAddTaskMsg = Obj({
  type: Type.Literal('add_task'),
  ref: Type.Optional(Ref),
  service_id: ServiceId,
  args: Args,
  timeout_ms: TimeoutMs,
  queue_timeout_ms: QueueTimeoutMs,
  idempotency_key: Type.Optional(IdempotencyKey),
  webhook: Type.Optional(WebhookUrl),
  webhook_events: Type.Optional(WebhookEvents),
  attachments: Attachments,
});
export type ClientAddTaskMsg = Static<typeof ClientAddTaskMsg>;
export const ClientCancelMsg = Obj({ type: Type.Literal('cancel'), task_id: TaskId });
export type ClientCancelMsg = Static<typeof ClientCancelMsg>;
export const SubscribeMsg = Obj({ type: Type.Literal('subscribe'), task_id: TaskId });
export type SubscribeMsg = Static<typeof SubscribeMsg>;
export const ServiceInfoRequestMsg = Obj({ type: Type.Literal('service_info'), ref: Type.Optional(Ref), service_id: ServiceId });
export type ServiceInfoRequestMsg = Static<typeof ServiceInfoRequestMsg>;

export const ServicesMsg = Obj({ type: Type.Literal('services'), services: ServicesList });
export type ServicesMsg = Static<typeof ServicesMsg>;
export const AcceptedMsg = Obj({
  type: Type.Literal('accepted'),
  ref: Type.Optional(Ref),
  task_id: TaskId,
  position: Type.Integer({ minimum: 0 }),
  /** True when an `idempotency_key` named a task made before: this is that task. */
  duplicate: Type.Optional(Type.Boolean()),
});
export type AcceptedMsg = Static<typeof AcceptedMsg>;
export const RejectedMsg = Obj({ type: Type.Literal('rejected'), ref: Type.Optional(Ref), error: ErrorInfo });
export type RejectedMsg = Static<typeof RejectedMsg>;
const Seq = Type.Integer({ minimum: 1 });
export const QueuedMsg = Obj({
  type: Type.Literal('queued'),
  task_id: TaskId,
  seq: Seq,
  position: Type.Integer({ minimum: 0 }),
  /** Why the task waits again: `worker_lost`, with how its connection closed. */
  reason: Type.Optional(ErrorInfo),
});
export type QueuedMsg = Static<typeof QueuedMsg>;
export const StartedMsg = Obj({ type: Type.Literal('started'), task_id: TaskId, seq: Seq, attempt: Type.Integer({ minimum: 1 }) });
export type StartedMsg = Static<typeof StartedMsg>;
export const ClientProgressMsg = Obj({
  type: Type.Literal('progress'),
  task_id: TaskId,
  seq: Seq,
  progress: Progress,
  message: Type.Optional(Type.String()),
  data: Type.Optional(Type.Unknown()),
  attachments: Attachments,
});
export type ClientProgressMsg = Static<typeof ClientProgressMsg>;
export const ClientResultMsg = Obj({ type: Type.Literal('result'), task_id: TaskId, seq: Seq, result: Type.Unknown(), attachments: Attachments });
export type ClientResultMsg = Static<typeof ClientResultMsg>;
export const ClientFailedMsg = Obj({ type: Type.Literal('failed'), task_id: TaskId, seq: Seq, error: ErrorInfo });
export type ClientFailedMsg = Static<typeof ClientFailedMsg>;
export const CanceledMsg = Obj({ type: Type.Literal('canceled'), task_id: TaskId, seq: Seq });
export type CanceledMsg = Static<typeof CanceledMsg>;
export const SnapshotMsg = Obj({
  type: Type.Literal('snapshot'),
  task_id: TaskId,
  seq: Type.Integer({ minimum: 0 }),
  status: TaskStatusSchema,
  progress: Type.Union([Type.Number(), Type.Null()]),
  message: Type.Union([Type.String(), Type.Null()]),
  position: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()]),
});
export type SnapshotMsg = Static<typeof SnapshotMsg>;
export const ServiceInfoMsg = Obj({ type: Type.Literal('service_info'), ref: Type.Optional(Ref), service: ServiceInfo });
export type ServiceInfoMsg = Static<typeof ServiceInfoMsg>;

/** Messages a worker may send to the hub, by `type`. */
export const WORKER_TO_HUB = {
  hello: HelloMsg,
  progress: WorkerProgressMsg,
  result: WorkerResultMsg,
  failed: WorkerFailedMsg,
  drain: DrainMsg,
} as const satisfies Record<string, TSchema>;
/** Messages the hub may send to a worker, by `type`. */
export const HUB_TO_WORKER = {
  welcome: WelcomeMsg,
  task: TaskMsg,
  cancel: WorkerCancelMsg,
  error: ErrorMsg,
} as const satisfies Record<string, TSchema>;
/** Messages a client may send to the hub, by `type`. */
export const CLIENT_TO_HUB = {
  add_task: ClientAddTaskMsg,
  cancel: ClientCancelMsg,
  subscribe: SubscribeMsg,
  service_info: ServiceInfoRequestMsg,
} as const satisfies Record<string, TSchema>;
/** Messages the hub may send to a client, by `type`. */
export const HUB_TO_CLIENT = {
  services: ServicesMsg,
  accepted: AcceptedMsg,
  rejected: RejectedMsg,
  queued: QueuedMsg,
  started: StartedMsg,
  progress: ClientProgressMsg,
  result: ClientResultMsg,
  failed: ClientFailedMsg,
  canceled: CanceledMsg,
  snapshot: SnapshotMsg,
  service_info: ServiceInfoMsg,
  error: ErrorMsg,
} as const satisfies Record<string, TSchema>;

type MessageOf<M extends Record<string, TSchema>> = { [K in keyof M]: Static<M[K]> }[keyof M];
export type WorkerToHubMessage = MessageOf<typeof WORKER_TO_HUB>;
export type HubToWorkerMessage = MessageOf<typeof HUB_TO_WORKER>;
export type ClientToHubMessage = MessageOf<typeof CLIENT_TO_HUB>;
export type HubToClientMessage = MessageOf<typeof HUB_TO_CLIENT>;
