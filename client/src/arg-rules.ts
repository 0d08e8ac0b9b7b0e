/**
 * The hub's rules for one argument value (docs/protocol.md sections 3 and 4), told to a person:
 * the same checks as the protocol package's `checkArgs` (int range, min and max, string length in
 * code points, choices, mime family and list, max_bytes, JSON depth), on its shared rules but
 * without its ajv validators, so that a conversation runs in a browser too.
 */
import type { Argument } from '@utils-hub/protocol';
import {
  base64ByteLength,
  baseMime,
  codePoints,
  deepEqual,
  isBase64,
  isMediaType,
  isMime,
  jsonProblem,
  MAX_JSON_DEPTH,
  MAX_SAFE_INT,
  MEDIA_FAMILY,
  mimeMatches,
  parseDataUrl,
  type MediaType,
} from '@utils-hub/protocol/core';
import { isBlob } from './media.js';

export { isMediaType };

/** How a person is told what a media argument needs. */
const NOUN: Record<MediaType, string> = {
  image: 'an image',
  audio: 'an audio recording',
  video: 'a video',
  file: 'a file',
};

/** What a media argument needs, for a person: "an image", "a file". */
export function mediaNoun(type: string): string {
  return isMediaType(type) ? NOUN[type] : 'a file';
}

/** The mime patterns a media argument accepts: its `mime` list, else its family (`image/*`). */
export function acceptedMimes(arg: Argument): string[] {
  if (Array.isArray(arg.mime)) return arg.mime.slice();
  const prefix = isMediaType(arg.type) ? MEDIA_FAMILY[arg.type].prefix : null;
  return [prefix ? `${prefix}*` : '*/*'];
}

/**
 * `min`/`max` as a phrase: "from 1 to 10", "at least 1", "at most 10", or "". With a `unit`
 * (" character"), the noun agrees with the number it follows: "at least 1 character", "at most 5
 * characters".
 */
export function rangePhrase(min: number | undefined, max: number | undefined, unit = ''): string {
  const of = (n: number) => (unit === '' || n === 1 ? unit : `${unit}s`);
  if (min !== undefined && max !== undefined) return `from ${min} to ${max}${of(max)}`;
  if (min !== undefined) return `at least ${min}${of(min)}`;
  if (max !== undefined) return `at most ${max}${of(max)}`;
  return '';
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function sizeText(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** The mime type and size (bytes) of a media value, or a problem. */
function mediaFacts(type: string, v: unknown): { mime?: string; size: number } | string {
  const noun = mediaNoun(type);
  if (typeof v === 'string') {
    if (v.slice(0, 5).toLowerCase() !== 'data:') return `Please send ${noun}.`;
    const parts = parseDataUrl(v);
    if (!parts) return `That ${noun.replace(/^an? /, '')} could not be read.`;
    return { mime: parts.mime, size: base64ByteLength(parts.base64) };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return `Please send ${noun}.`;
  const o = v as { mime?: unknown; data?: unknown; url?: unknown; name?: unknown };
  if (o.name !== undefined && typeof o.name !== 'string') return `Please send ${noun} whose name is text.`;
  if (o.mime !== undefined && typeof o.mime !== 'string')
    return `Please send ${noun} with its type, such as ${type === 'file' ? 'application/pdf' : `${type}/…`}.`;
  if (o.data instanceof Uint8Array || o.data instanceof ArrayBuffer) return { mime: o.mime as string | undefined, size: o.data.byteLength };
  if (isBlob(o.data)) return { mime: o.mime as string | undefined, size: o.data.size };
  if (typeof o.data === 'string') {
    if (!isBase64(o.data)) return `That ${noun.replace(/^an? /, '')} could not be read.`;
    return { mime: o.mime as string | undefined, size: base64ByteLength(o.data) };
  }
  if (o.data === undefined && typeof o.url === 'string' && o.url.length > 0) return { mime: o.mime as string | undefined, size: 0 };
  return `Please send ${noun}.`;
}

function mediaProblem(arg: Argument, v: unknown): string | undefined {
  const facts = mediaFacts(arg.type, v);
  if (typeof facts === 'string') return facts;
  const noun = mediaNoun(arg.type);
  const isUrl = typeof v === 'object' && v !== null && (v as { data?: unknown }).data === undefined;
  if (facts.mime === undefined) {
    // Bytes without a type: the hub takes them as application/octet-stream for a plain file only.
    if (isUrl || (arg.type === 'file' && !arg.mime)) return undefined;
    return `Please send ${noun} with its type (mime), such as ${acceptedMimes(arg)[0].replace('*', 'png')}.`;
  }
  if (!isMime(facts.mime)) return `That ${noun.replace(/^an? /, '')} has a type I cannot read (${facts.mime.slice(0, 40)}).`;
  const base = baseMime(facts.mime);
  const prefix = isMediaType(arg.type) ? MEDIA_FAMILY[arg.type].prefix : null;
  if (prefix && !base.startsWith(prefix)) return `Please send ${noun}; this is ${base}.`;
  if (Array.isArray(arg.mime) && !arg.mime.some((p) => mimeMatches(p, base))) {
    return `Please send ${noun} of type ${arg.mime.join(' or ')}; this one is ${base}.`;
  }
  if (typeof arg.max_bytes === 'number' && facts.size > arg.max_bytes) {
    return `That is too large (${sizeText(facts.size)}); the limit is ${sizeText(arg.max_bytes)}.`;
  }
  return undefined;
}

/**
 * Why `v` does not fit argument `arg`, as a sentence a person understands, or undefined when it
 * fits. Checks the type, then the choices, then min and max (or the media rules), as the hub does.
 */
export function valueProblem(arg: Argument, v: unknown): string | undefined {
  if (isMediaType(arg.type)) return mediaProblem(arg, v);
  const min = num(arg.min);
  const max = num(arg.max);
  switch (arg.type) {
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) return 'Please send a whole number, like 12.';
      if (Math.abs(v) > MAX_SAFE_INT) return 'That number is too large.';
      break;
    case 'float':
      if (typeof v !== 'number' || !Number.isFinite(v)) return 'Please send a number, like 1.5.';
      break;
    case 'str':
      if (typeof v !== 'string') return 'Please send some text.';
      break;
    case 'bool':
      if (typeof v !== 'boolean') return 'Please answer yes or no.';
      break;
    case 'json':
      if (v === undefined || jsonProblem(v, MAX_JSON_DEPTH) !== undefined)
        return `Please send valid JSON (nested at most ${MAX_JSON_DEPTH} levels), like {"a": 1}.`;
      break;
    default:
      return 'This question cannot be answered: the service has an argument type this client does not know.';
  }
  if (Array.isArray(arg.choices) && !arg.choices.some((c) => deepEqual(c, v))) return 'Please pick one of the choices.';
  if (typeof v === 'number' && (arg.type === 'int' || arg.type === 'float')) {
    if ((min !== undefined && v < min) || (max !== undefined && v > max)) return `Please send a number ${rangePhrase(min, max)}.`;
  }
  if (typeof v === 'string' && arg.type === 'str') {
    const n = codePoints(v);
    if ((min !== undefined && n < min) || (max !== undefined && n > max)) {
      return `Please send text of ${rangePhrase(min, max, ' character')}${max !== undefined && n > max ? ` (this is ${n})` : ''}.`;
    }
  }
  return undefined;
}
