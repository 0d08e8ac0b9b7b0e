/**
 * The ajv validators of schemas.ts, compiled once at import. Each returns the typed value or a
 * `HubError` whose message names the first problem; never throws on any input.
 */
import { Ajv, type ValidateFunction, type ErrorObject } from 'ajv';
import type { Static, TSchema } from '@sinclair/typebox';
import * as S from './schemas.js';
import { HubError, type ErrorCode } from './errors.js';
import { messageLabels } from './rules.js';

// `strict: false` would also let Infinity pass as a number or an integer (JSON reads `1e999` as
// Infinity); `strictNumbers` keeps numbers finite.
const ajv = new Ajv({ allErrors: false, strict: false, strictNumbers: true, coerceTypes: false, useDefaults: false });

/** A compiled validator: `check(value)` gives the value typed, or throws a HubError. */
export interface Validator<T> {
  (value: unknown): value is T;
  /** The value typed, or a `HubError` with `code` (default `bad_request`) naming the first problem. */
  check(value: unknown, code?: ErrorCode): T;
  /** The first problem of the last failed call, as a sentence. */
  problem(): string;
  readonly schema: TSchema;
}

/** Describes an ajv error as one short sentence: `/args/0 must be integer`. */
export function describeAjvError(e: ErrorObject | undefined, what = 'value'): string {
  if (!e) return `${what} is invalid`;
  const at = e.instancePath ? `${e.instancePath}` : what;
  if (e.keyword === 'required') return `${at === what ? what : at} needs "${(e.params as { missingProperty: string }).missingProperty}"`;
  if (e.keyword === 'const') return `${at} must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
  return `${at} ${e.message ?? 'is invalid'}`;
}

/**
 * Describes the first problem of a failed validation. When it comes from a union (`anyOf`) whose
 * branches all failed on `const` or `type` at the same place, names every alternative
 * (`/reason must be one of "client", "timeout", "shutdown"`) rather than the first branch only.
 */
export function describeAjvErrors(errors: readonly ErrorObject[] | null | undefined, what = 'value'): string {
  const first = errors?.[0];
  if (!first) return describeAjvError(first, what);
  const union = errors.find((e) => e.keyword === 'anyOf' && e.instancePath === first.instancePath && first.schemaPath.startsWith(`${e.schemaPath}/`));
  if (union) {
    const branches = errors.filter((e) => e !== union && e.instancePath === first.instancePath && e.schemaPath.startsWith(`${union.schemaPath}/`));
    const at = first.instancePath || what;
    if (branches.every((e) => e.keyword === 'const')) {
      const values = branches.map((e) => JSON.stringify((e.params as { allowedValue: unknown }).allowedValue));
      return `${at} must be one of ${[...new Set(values)].join(', ')}`;
    }
    if (branches.every((e) => e.keyword === 'type' || e.keyword === 'const')) {
      const kinds = branches.map((e) =>
        e.keyword === 'type' ? String((e.params as { type: unknown }).type) : JSON.stringify((e.params as { allowedValue: unknown }).allowedValue),
      );
      return `${at} must be ${[...new Set(kinds)].join(' or ')}`;
    }
  }
  return describeAjvError(first, what);
}

/** Compiles `schema` into a Validator. Exported so other packages can compile their own schemas once. */
export function compile<T extends TSchema>(schema: T, what = 'value'): Validator<Static<T>> {
  const fn: ValidateFunction = ajv.compile(schema);
  const v = ((value: unknown) => fn(value)) as Validator<Static<T>>;
  v.problem = () => describeAjvErrors(fn.errors, what);
  v.check = (value: unknown, code: ErrorCode = 'bad_request') => {
    if (fn(value)) return value as Static<T>;
    throw new HubError(code, describeAjvErrors(fn.errors, what));
  };
  Object.defineProperty(v, 'schema', { value: schema });
  return v;
}

function compileMap<M extends Record<string, TSchema>>(map: M): { [K in keyof M]: Validator<Static<M[K]>> } {
  const out: Record<string, Validator<unknown>> = {};
  for (const [type, schema] of Object.entries(map)) out[type] = compile(schema, `"${type}" message`);
  return out as { [K in keyof M]: Validator<Static<M[K]>> };
}

export const validate = {
  serviceDescription: compile(S.ServiceDescription, 'service description'),
  argument: compile(S.Argument, 'argument'),
  mediaBase64: compile(S.MediaBase64, 'media'),
  mediaUrl: compile(S.MediaUrl, 'media'),
  attachmentRef: compile(S.AttachmentRef, 'media'),
  addTaskBody: compile(S.AddTaskBody, 'body'),
  servicesList: compile(S.ServicesList, 'services list'),
  serviceInfo: compile(S.ServiceInfo, 'service info'),
  addTaskSucceeded: compile(S.AddTaskSucceeded, 'answer'),
  addTaskQueued: compile(S.AddTaskQueued, 'answer'),
  taskView: compile(S.TaskView, 'task'),
  errorBody: compile(S.ErrorBody, 'error body'),
  workerToHub: compileMap(S.WORKER_TO_HUB),
  hubToWorker: compileMap(S.HUB_TO_WORKER),
  clientToHub: compileMap(S.CLIENT_TO_HUB),
  hubToClient: compileMap(S.HUB_TO_CLIENT),
};

type Direction = 'workerToHub' | 'hubToWorker' | 'clientToHub' | 'hubToClient';
type MessageIn<D extends Direction> = D extends 'workerToHub'
  ? S.WorkerToHubMessage
  : D extends 'hubToWorker'
    ? S.HubToWorkerMessage
    : D extends 'clientToHub'
      ? S.ClientToHubMessage
      : S.HubToClientMessage;

/**
 * Checks a parsed message against the schema of its `type` for one direction. Returns the typed
 * message, or throws `bad_message` saying what is wrong (unknown type, or the first schema
 * problem), with the message's `ref` and `task_id` as details when it has them.
 */
export function parseMessage<D extends Direction>(direction: D, msg: unknown): MessageIn<D> {
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
    throw new HubError('bad_message', 'a message must be a JSON object');
  }
  const type = (msg as { type?: unknown }).type;
  if (typeof type !== 'string') throw new HubError('bad_message', 'a message needs a string "type"', messageLabels(msg));
  const table = validate[direction] as Record<string, Validator<unknown>>;
  const v = Object.hasOwn(table, type) ? table[type] : undefined;
  if (!v) throw new HubError('bad_message', `unknown message type ${JSON.stringify(type.slice(0, 64))}`, messageLabels(msg));
  if (!v(msg)) throw new HubError('bad_message', v.problem(), messageLabels(msg));
  return msg as MessageIn<D>;
}
