/**
 * Argument checking (docs/protocol.md sections 3 and 4): the args of a task against a service's
 * `input`, and a `/me` description against the rules that its JSON Schema cannot say.
 *
 * Args come from strangers: nothing here throws on them, every string echoed in a problem is cut
 * short, and names are looked up in Maps and written to null-prototype objects so that keys such
 * as `__proto__` or `constructor` are only names.
 */
import type { Argument, ServiceDescription } from './schemas.js';
import { ARG_TYPES, MAX_DESCRIPTION_DEPTH, MAX_JSON_DEPTH, MAX_SAFE_INT, MEDIA_TYPES, OCTET_STREAM, type MediaType } from './limits.js';
import { HubError, type ArgProblem } from './errors.js';
import { validate } from './validators.js';
import { base64ByteLength, isBase64, portableBase64, type Base64Codec } from './bytes.js';
import {
  baseMime,
  codePoints,
  deepEqual,
  hasOwn,
  isMediaType,
  isMime,
  jsonProblem as jsonShapeProblem,
  MEDIA_FAMILY,
  mimeMatches,
  parseDataUrl,
} from './rules.js';

/** Media as the hub and SDKs hold it after decoding: bytes, or a URL passed on as is. */
export type MediaValue = MediaBytes | MediaLink;
/** Media with its bytes (a Buffer where the caller's base64 codec or frames give Buffers). */
export interface MediaBytes {
  mime: string;
  name?: string;
  data: Uint8Array;
}
/** Media by URL; the hub never fetches it. */
export interface MediaLink {
  url: string;
  mime?: string;
  name?: string;
}

/** Options of checkArgs. */
export interface CheckArgsOptions {
  /** Upper bound of the decoded bytes of all media together (the hub's message limit). Default: no bound. */
  maxTotalBytes?: number;
  /** How base64 media are decoded. Default: the portable codec (plain Uint8Arrays). */
  base64?: Base64Codec;
}

/** The outcome of checkArgs: args keyed by name with defaults filled in, or every problem found. */
export type CheckArgsResult = { ok: true; args: Record<string, unknown> } | { ok: false; problems: ArgProblem[] };

/** Most characters of a stranger's string that a problem quotes. */
export const ECHO_CHARS = 40;

type Obj = Record<string, unknown>;

/** `s` cut to `max` characters (not splitting a surrogate pair), with `…` when cut. */
function excerpt(s: string, max = ECHO_CHARS): string {
  if (s.length <= max) return s;
  let end = max;
  const c = s.charCodeAt(end - 1);
  if (c >= 0xd800 && c <= 0xdbff) end--;
  return `${s.slice(0, end)}…`;
}

/** A value as a problem quotes it: strings quoted and cut short, containers by kind. */
function show(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(excerpt(v));
    case 'number':
    case 'boolean':
      return String(v);
    case 'bigint':
      return 'a BigInt';
    case 'undefined':
      return 'nothing';
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
  }
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Uint8Array) return 'bytes';
  return 'an object';
}

/** At most `max` values shown, then how many there are. */
function showList(values: readonly unknown[], fmt: (v: unknown) => string = show, max = 10): string {
  const shown = values.slice(0, max).map(fmt).join(', ');
  return values.length > max ? `${shown}, … (${values.length} in all)` : shown;
}

/** Why `v` is not a JSON value nested at most `maxDepth` deep, or undefined (values named as problems name them). */
function jsonProblem(v: unknown, maxDepth: number): string | undefined {
  return jsonShapeProblem(v, maxDepth, show);
}

/** Why `v` is not a value of scalar type `type` (any type but media), or undefined. */
function typeProblem(type: string, v: unknown): string | undefined {
  switch (type) {
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) return `expected int, got ${show(v)}`;
      if (Math.abs(v) > MAX_SAFE_INT) return `expected int between -${MAX_SAFE_INT} and ${MAX_SAFE_INT}, got ${v}`;
      return undefined;
    case 'float':
      return typeof v === 'number' && Number.isFinite(v) ? undefined : `expected float, got ${show(v)}`;
    case 'str':
      return typeof v === 'string' ? undefined : `expected str, got ${show(v)}`;
    case 'bool':
      return typeof v === 'boolean' ? undefined : `expected bool, got ${show(v)}`;
    case 'json':
      return jsonProblem(v, MAX_JSON_DEPTH);
    default:
      return `has a type this hub does not know (${show(type)})`;
  }
}

/** Why `v` (already of the argument's scalar type) breaks its `min` or `max`, or undefined. */
function boundsProblem(arg: Argument, v: unknown): string | undefined {
  const { min, max } = arg;
  if (typeof v === 'number' && (arg.type === 'int' || arg.type === 'float')) {
    if (typeof min === 'number' && v < min) return `must be at least ${min}`;
    if (typeof max === 'number' && v > max) return `must be at most ${max}`;
  } else if (typeof v === 'string' && arg.type === 'str' && (typeof min === 'number' || typeof max === 'number')) {
    const n = codePoints(v);
    if (typeof min === 'number' && n < min) return `must be at least ${min} characters long`;
    if (typeof max === 'number' && n > max) return `must be at most ${max} characters long`;
  }
  return undefined;
}

function choicesProblem(arg: Argument, v: unknown): string | undefined {
  const choices = arg.choices;
  if (!Array.isArray(choices) || choices.some((c) => deepEqual(c, v))) return undefined;
  return `must be one of ${showList(choices)}`;
}

// ---- media ----

/** How a problem names each media family. */
const NOUN: Record<MediaType, string> = {
  image: 'an image (image/*)',
  audio: 'audio (audio/*)',
  video: 'a video (video/*)',
  file: 'a file',
};

/** Why media `mime` does not fit the argument, or undefined. */
function mimeProblem(type: MediaType, arg: Argument, mime: unknown): string | undefined {
  if (typeof mime !== 'string' || !isMime(mime)) return `has a malformed mime type ${show(mime)}`;
  const base = baseMime(mime);
  const { prefix } = MEDIA_FAMILY[type];
  const noun = NOUN[type];
  if (prefix && !base.startsWith(prefix)) return `expected ${noun}, got ${excerpt(base)}`;
  const list = arg.mime;
  if (Array.isArray(list) && !list.some((p) => typeof p === 'string' && mimeMatches(p, base))) {
    return `has type ${excerpt(base)}, but must be one of ${showList(list, String)}`;
  }
  return undefined;
}

/** What media of all arguments add up to, against the caller's bound. */
interface Budget {
  used: number;
  max: number;
  base64: Base64Codec;
}

type Outcome = { value: unknown; bytes: number; problem?: undefined } | { problem: string };

function checkMedia(type: MediaType, arg: Argument, v: unknown, budget: Budget, b64: Base64Codec): Outcome {
  const fail = (problem: string): Outcome => ({ problem });
  let mime: unknown;
  let name: unknown;
  let base64: string | undefined;
  let bytes: Uint8Array | undefined;
  const expected = `expected ${type} as {"mime", "data"}, a data: URL or {"url"}, got`;

  if (typeof v === 'string') {
    if (v.slice(0, 5).toLowerCase() !== 'data:') return fail(`${expected} ${show(v)}`);
    const parts = parseDataUrl(v);
    if (!parts) return fail('is not a well-formed base64 data: URL');
    ({ mime, base64 } = parts);
  } else if (typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array)) {
    const o = v as Obj;
    if (hasOwn(o, '$attachment')) return fail('refers to an attachment, which only a WebSocket message can carry');
    name = hasOwn(o, 'name') ? o.name : undefined;
    if (name !== undefined && (typeof name !== 'string' || name.length > 1024)) {
      return fail(`has a "name" that is not a string of at most 1024 characters (${show(name)})`);
    }
    mime = hasOwn(o, 'mime') ? o.mime : undefined;
    const data = hasOwn(o, 'data') ? o.data : undefined;
    if (data instanceof Uint8Array) {
      bytes = data;
      if (mime === undefined && type === 'file' && !arg.mime) mime = OCTET_STREAM;
      else if (mime === undefined) return fail(`needs a "mime" such as ${MEDIA_FAMILY[type].example}`);
    } else if (typeof data === 'string') {
      if (mime === undefined) return fail(`needs a "mime" such as ${MEDIA_FAMILY[type].example}`);
      if (!isBase64(data)) return fail('has malformed base64 data');
      base64 = data;
    } else if (data !== undefined) {
      return fail(`has "data" that is not base64 text (${show(data)})`);
    } else if (hasOwn(o, 'url')) {
      const url = o.url;
      if (typeof url !== 'string' || url.length === 0 || url.length > 8192) {
        return fail(`has a "url" that is not a string of 1 to 8192 characters (${show(url)})`);
      }
      if (mime !== undefined) {
        const p = mimeProblem(type, arg, mime);
        if (p) return fail(p);
      }
      return { value: v, bytes: 0 }; // passed on as it is: the hub never fetches it
    } else {
      return fail(`${expected} an object without "data" or "url"`);
    }
  } else {
    return fail(`${expected} ${show(v)}`);
  }

  const p = mimeProblem(type, arg, mime);
  if (p) return fail(p);
  // Sizes are known before decoding, so oversized base64 is never decoded.
  const size = bytes ? bytes.length : base64ByteLength(base64!);
  if (typeof arg.max_bytes === 'number' && size > arg.max_bytes) {
    return fail(`is ${size} bytes, over the limit of ${arg.max_bytes}`);
  }
  if (budget.used + size > budget.max) {
    return fail(`brings the media of this call to ${budget.used + size} bytes, over the limit of ${budget.max}`);
  }
  const out: MediaBytes = { mime: mime as string, data: bytes ?? b64.decode(base64!) };
  if (typeof name === 'string') out.name = name;
  return { value: out, bytes: size };
}

/** Checks one value against its argument: type, then choices, then min/max (or media rules). */
function checkValue(arg: Argument, v: unknown, budget: Budget): Outcome {
  if (isMediaType(arg.type)) return checkMedia(arg.type, arg, v, budget, budget.base64);
  const problem = typeProblem(arg.type, v) ?? choicesProblem(arg, v) ?? boundsProblem(arg, v);
  return problem ? { problem } : { value: v, bytes: 0 };
}

function runCheckArgs(input: readonly Argument[], args: unknown, options: CheckArgsOptions): CheckArgsResult {
  let positional: readonly unknown[] | undefined;
  let named: Obj | undefined;
  if (Array.isArray(args)) positional = args;
  else if (typeof args === 'object' && args !== null && !(args instanceof Uint8Array)) named = args as Obj;
  else {
    return {
      ok: false,
      problems: [{ argument_name: 'args', problem: `must be an array (in the order of the arguments) or an object keyed by argument name, got ${show(args)}` }],
    };
  }
  const problems: ArgProblem[] = [];
  const out = Object.create(null) as Obj;
  const max = options.maxTotalBytes;
  const budget: Budget = { used: 0, max: typeof max === 'number' && max >= 0 ? max : Infinity, base64: options.base64 ?? portableBase64 };

  for (let i = 0; i < input.length; i++) {
    const arg = input[i];
    const name = arg.argument_name;
    let v: unknown = positional ? positional[i] : hasOwn(named!, name) ? named![name] : undefined;
    let fromDefault = false;
    if (v === undefined) {
      if (arg.default === undefined) {
        if (arg.required !== false) problems.push({ argument_name: name, problem: 'is required' });
        continue;
      }
      v = arg.default;
      fromDefault = true;
    }
    const r = checkValue(arg, v, budget);
    if (r.problem !== undefined) {
      problems.push({ argument_name: name, problem: r.problem });
      continue;
    }
    budget.used += r.bytes;
    // A default is the service's own object: give each task its copy.
    let value = r.value;
    if (fromDefault && typeof value === 'object' && value !== null && !isMediaType(arg.type)) value = structuredClone(value);
    out[name] = value;
  }

  if (named) {
    const known = new Set(input.map((a) => a.argument_name));
    for (const key of Object.keys(named)) {
      if (!known.has(key)) problems.push({ argument_name: excerpt(key, 64), problem: 'is not an argument of this service' });
    }
  } else if (positional!.length > input.length) {
    problems.push({
      argument_name: `args[${input.length}]`,
      problem: `is one too many: this service takes ${input.length} argument${input.length === 1 ? '' : 's'}, got ${positional!.length}`,
    });
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, args: out };
}

/**
 * Checks `args` (positional array or object keyed by argument_name) against a service's `input`.
 * Fills defaults, checks types and extras, decodes media given as base64 or data URL into
 * `{mime, name?, data: bytes}` (decoded by `options.base64`; media already holding bytes, from
 * attachments, are accepted as they are; URL objects pass unchanged). Never throws; the returned `args` object has a null
 * prototype so that hostile names cannot reach Object.prototype.
 *
 * Choices made where the contract is silent: `undefined` (from JS callers) means "not given", but
 * `null` is a value (of `json` only); a value is checked for its type, then its choices, then its
 * min/max, and gives at most one problem; string lengths count code points; media given as bytes
 * without a mime type are `application/octet-stream` for a `file` argument with no `mime` list
 * and a problem otherwise; extra positional args give one problem named `args[n]`; problems come
 * in the order of `input`, then unknown names.
 */
export function checkArgs(input: readonly Argument[], args: unknown, options: CheckArgsOptions = {}): CheckArgsResult {
  try {
    return runCheckArgs(input, args, options);
  } catch {
    // Only a hostile JS object (a throwing getter, a proxy) gets here; JSON input cannot.
    return { ok: false, problems: [{ argument_name: 'args', problem: 'could not be read' }] };
  }
}

// ---- service descriptions ----

function bad(message: string): HubError {
  return new HubError('bad_service_description', message);
}

/** `/input/1/argument_name` as `input[1].argument_name`. */
function fieldPath(pointer: string): string {
  let path = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    path += /^\d+$/.test(seg) ? `[${seg}]` : path ? `.${seg}` : seg;
  }
  return path;
}

function valueAt(root: unknown, pointer: string): unknown {
  let v = root;
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (typeof v !== 'object' || v === null || !hasOwn(v, seg)) return undefined;
    v = (v as Obj)[seg];
  }
  return v;
}

/** The validator's first problem (`/input/0/type must be string`) as `input[0].type: ...`. */
function schemaProblem(me: unknown, problem: string): string {
  let m = /^(\/\S*) needs "(.*)"$/.exec(problem);
  if (m) return `${fieldPath(m[1])}.${m[2]}: is required`;
  m = /^service description needs "(.*)"$/.exec(problem);
  if (m) return `${m[1]}: is required`;
  m = /^(\/\S*) (.*)$/.exec(problem);
  if (!m) return problem.replace(/^service description /, 'service description: ');
  const path = fieldPath(m[1]);
  // `type` is a union of literals: the validator would only name the first of them.
  if (/^(input|output)\[\d+\]\.type$/.test(path)) {
    return `${path}: must be one of ${ARG_TYPES.join(', ')}, got ${show(valueAt(me, m[1]))}`;
  }
  return `${path}: ${m[2]}`;
}

/** Why an entry of an argument's `mime` list does not fit its type, or undefined. */
function mimePatternProblem(type: MediaType, entry: string): string | undefined {
  const m = /^([A-Za-z0-9][\w!#$&^.+-]*|\*)\/([A-Za-z0-9][\w!#$&^.+-]*|\*)$/.exec(entry);
  if (!m || (m[1] === '*' && m[2] !== '*'))
    return `is not a mime type such as ${MEDIA_FAMILY[type].example} or ${type === 'file' ? 'text/*' : `${type}/*`} (${show(entry)})`;
  const prefix = MEDIA_FAMILY[type].prefix;
  if (prefix && !entry.toLowerCase().startsWith(prefix)) return `expected ${NOUN[type].replace(/ \(.*\)$/, '')} type (${prefix}*), got ${show(entry)}`;
  return undefined;
}

function checkArgumentList(list: 'input' | 'output', args: readonly Argument[]): void {
  const seen = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const at = `${list}[${i}]`;
    const t = a.type;
    if (seen.has(a.argument_name)) throw bad(`${at}.argument_name: duplicate ${show(a.argument_name)}`);
    seen.add(a.argument_name);
    const numeric = t === 'int' || t === 'float';
    const media = isMediaType(t);
    for (const k of ['min', 'max'] as const) {
      const b = a[k];
      if (b === undefined) continue;
      if (!numeric && t !== 'str') throw bad(`${at}.${k}: only int, float and str arguments take min and max`);
      if (t === 'str' && !(Number.isInteger(b) && b >= 0)) throw bad(`${at}.${k}: a length bound must be a whole number of 0 or more, got ${b}`);
    }
    if (a.min !== undefined && a.max !== undefined && a.min > a.max) throw bad(`${at}.max: must not be less than min (${a.min}), got ${a.max}`);
    if (!media) {
      if (a.mime !== undefined) throw bad(`${at}.mime: only media arguments (${MEDIA_TYPES.join(', ')}) take mime`);
      if (a.max_bytes !== undefined) throw bad(`${at}.max_bytes: only media arguments (${MEDIA_TYPES.join(', ')}) take max_bytes`);
    } else if (a.mime) {
      for (let j = 0; j < a.mime.length; j++) {
        const p = mimePatternProblem(t, a.mime[j]);
        if (p) throw bad(`${at}.mime[${j}]: ${p}`);
      }
    }
    if (a.choices !== undefined) {
      if (media) throw bad(`${at}.choices: media arguments take no choices`);
      for (let j = 0; j < a.choices.length; j++) {
        const p = typeProblem(t, a.choices[j]) ?? boundsProblem(a, a.choices[j]);
        if (p) throw bad(`${at}.choices[${j}]: ${p}`);
      }
    }
    if (a.default !== undefined) {
      const r = checkValue(a, a.default, { used: 0, max: Infinity, base64: portableBase64 });
      if (r.problem !== undefined) throw bad(`${at}.default: ${r.problem}`);
    }
  }
}

/**
 * Checks a `/me` service description: the schema and the rules of section 3 that a schema cannot
 * say (unique argument names, defaults and choices of the argument's type, min <= max, mime and
 * max_bytes only on media). Returns it typed, or throws HubError `bad_service_description` whose
 * message names the offending field, such as `input[1].default: expected int, got "x"`.
 *
 * Beyond the letter of section 3: a description may nest at most MAX_DESCRIPTION_DEPTH levels and
 * hold JSON values only; `min`/`max` of a `str` are whole numbers; choices must also fit min/max;
 * media arguments take no choices; a `mime` entry is `type/subtype` or `type/*` of the argument's
 * family (`*\/*` for `file` too); `required: true` beside a `default` is allowed (the default wins).
 */
export function checkServiceDescription(me: unknown): ServiceDescription {
  const v = validate.serviceDescription;
  if (!v(me)) throw bad(schemaProblem(me, v.problem()));
  for (const key of Object.keys(me)) {
    // The description itself is the first level.
    const p = jsonProblem((me as Obj)[key], MAX_DESCRIPTION_DEPTH - 1);
    if (p) throw bad(`${key}: ${p.startsWith('is nested') ? `nests the description more than ${MAX_DESCRIPTION_DEPTH} levels deep` : p}`);
  }
  checkArgumentList('input', me.input);
  if (me.output) checkArgumentList('output', me.output);
  return me;
}

/**
 * JSON with object keys sorted, so that two equal descriptions compare equal as strings.
 * Arrays keep their order; `undefined` gives `null`.
 */
export function canonicalJson(value: unknown): string {
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
    const sorted = Object.create(null) as Obj;
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Obj)[k];
    return sorted;
  });
  return text ?? 'null';
}
