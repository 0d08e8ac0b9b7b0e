/**
 * The numbers of the contract (docs/protocol.md, sections 3 to 5) that the schemas, the codec,
 * the argument checks and the SDKs share. No imports, so that a browser bundle takes them alone.
 */

/** Largest integer an `int` value may carry: 2^53 - 1. */
export const MAX_SAFE_INT = Number.MAX_SAFE_INTEGER;
/** Most binary frames one message may announce. */
export const MAX_ATTACHMENTS = 16;
/** Most arguments a service may declare. */
export const MAX_ARGUMENTS = 64;
/** The only protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;
/** Deepest nesting of a `json` value (or a default or choice), in arrays and objects. */
export const MAX_JSON_DEPTH = 32;
/** Deepest nesting of a whole service description, in arrays and objects. */
export const MAX_DESCRIPTION_DEPTH = 64;
/**
 * Deepest level of objects and arrays (the message itself being level 1) that the codec walks; an
 * attachment ref or media object may sit in a container of the last level. A message with
 * attachments that nests containers deeper is refused with `bad_message`; encoding and
 * `inlineMedia` leave anything deeper untouched.
 */
export const MAX_MESSAGE_DEPTH = 64;
/** Default bound of the bytes of all binary frames of one message: 32 MiB (HUB_MAX_MESSAGE_BYTES). */
export const DEFAULT_MAX_ATTACHMENT_BYTES = 33_554_432;
/** Longest mime type, in characters. */
export const MAX_MIME_CHARS = 255;
/** The mime type given to bytes that come without one. */
export const OCTET_STREAM = 'application/octet-stream';

/** Longest delay that setTimeout honours: 2^31 - 1 ms, about 24.8 days (a longer one fires at once). */
export const MAX_TIMER_MS = 2_147_483_647;

/** The argument types (section 3). */
export const ARG_TYPES = ['int', 'float', 'str', 'bool', 'json', 'image', 'audio', 'video', 'file'] as const;
/** The argument types whose values are media (section 4). */
export const MEDIA_TYPES = ['image', 'audio', 'video', 'file'] as const;
/** An argument type whose values are media. */
export type MediaType = (typeof MEDIA_TYPES)[number];
