/**
 * How fastify checks requests and writes responses against the routes' schemas, so that the
 * wire stays the contract's (docs/protocol.md sections 2 and 6):
 *
 * - Requests are checked with the protocol's own ajv (protocol/src/validators.ts: no coercion,
 *   no removal of unknown fields, finite numbers only), and a failure is the contract's
 *   `bad_request` HubError, its message naming the first problem as it did before the routes had
 *   schemas, rather than fastify's validation error.
 * - Success bodies of the REST routes are written by fast-json-stringify from their schema
 *   (objects keep unknown fields: the protocol's schemas allow them). Error bodies, and the
 *   operator routes' loose bodies, are written by JSON.stringify as they are built.
 */
import type { FastifySchemaCompiler, FastifySerializerCompiler } from 'fastify';
import fastJson from 'fast-json-stringify';
import type { TSchema } from '@sinclair/typebox';
import { HubError, compile, validate, type Validator } from '@utils-hub/protocol';
import { resolveShared } from './openapi.js';

/** Messages of a schema's failures, where a sentence reads better than ajv's (see {@link withMessage}). */
const MESSAGES = new WeakMap<object, (data: Record<string, unknown>) => string>();

/** Gives `schema` (of a route's params or querystring) its own failure message. Returns the schema. */
export function withMessage<T extends TSchema>(schema: T, message: (data: Record<string, unknown>) => string): T {
  MESSAGES.set(schema, message);
  return schema;
}

/** Validators already compiled by the protocol, by schema: the route uses the same one. */
const COMPILED = new Map<TSchema, Validator<unknown>>([[validate.addTaskBody.schema, validate.addTaskBody]]);

const PART_NAMES: Record<string, string> = { body: 'body', querystring: 'query', params: 'path', headers: 'headers' };

/** fastify's validator compiler: the protocol's ajv; a failure is `bad_request`. */
export const validatorCompiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart }) => {
  const resolved = resolveShared(schema);
  const v = COMPILED.get(resolved) ?? compile(resolved, PART_NAMES[httpPart ?? ''] ?? 'value');
  const message = MESSAGES.get(schema as object);
  return (data: unknown) => {
    if (v(data)) return { value: data };
    return { error: new HubError('bad_request', message ? message((data ?? {}) as Record<string, unknown>) : v.problem()) };
  };
};

const stringify = (data: unknown) => JSON.stringify(data);

/** fastify's serializer compiler for the operator routes and every error: JSON.stringify. */
export const plainSerializerCompiler: FastifySerializerCompiler<unknown> = () => stringify;

/** fastify's serializer compiler for the REST routes: fast-json-stringify for success bodies. */
export const restSerializerCompiler: FastifySerializerCompiler<unknown> = ({ schema, httpStatus }) => {
  if (!/^2/.test(String(httpStatus))) return stringify;
  return fastJson(resolveShared(schema) as unknown as Parameters<typeof fastJson>[0]) as (data: unknown) => string;
};
