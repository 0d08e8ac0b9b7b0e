/**
 * Argument checking (PROTOCOL.md sections 3 and 4). STUB: signatures fixed, body to be written.
 */
import type { Argument, ServiceDescription } from './schemas.js';
import type { ArgProblem } from './errors.js';

/** Media as the hub and SDKs hold it after decoding: bytes in a Buffer, or a URL passed on as is. */
export type MediaValue = MediaBytes | MediaLink;
/** Media with its bytes. */
export interface MediaBytes { mime: string; name?: string; data: Buffer }
/** Media by URL; the hub never fetches it. */
export interface MediaLink { url: string; mime?: string; name?: string }

/** Options of checkArgs. */
export interface CheckArgsOptions {
  /** Upper bound of the decoded bytes of all media together (the hub's message limit). Default: no bound. */
  maxTotalBytes?: number;
}

/** The outcome of checkArgs: args keyed by name with defaults filled in, or every problem found. */
export type CheckArgsResult =
  | { ok: true; args: Record<string, unknown> }
  | { ok: false; problems: ArgProblem[] };

/**
 * Checks `args` (positional array or object keyed by argument_name) against a service's `input`.
 * Fills defaults, checks types and extras, decodes media given as base64 or data URL into
 * `{mime, name?, data: Buffer}` (media already holding a Buffer, from attachments, are accepted as
 * they are; URL objects pass unchanged). Never throws; the returned `args` object has a null
 * prototype so that hostile names cannot reach Object.prototype.
 */
export declare function checkArgs(input: readonly Argument[], args: unknown, options?: CheckArgsOptions): CheckArgsResult;

/**
 * Checks a `/me` service description: the schema and the rules of section 3 that a schema cannot
 * say (unique argument names, defaults and choices of the argument's type, min <= max, mime and
 * max_bytes only on media). Returns it typed, or throws HubError `bad_service_description` whose
 * message names the offending field, such as `input[1].default: expected int, got "x"`.
 */
export declare function checkServiceDescription(me: unknown): ServiceDescription;

/** JSON with object keys sorted, so that two equal descriptions compare equal as strings. */
export declare function canonicalJson(value: unknown): string;
