/**
 * The small rules of values (docs/protocol.md, sections 3 and 4) that the hub's checks and the
 * SDKs share: own keys, JSON depth, equality of choices, string length, mime types and families,
 * `data:` URLs. Pure functions without imports of Node or ajv, so that they run in a browser.
 */
import { isBase64 } from './bytes.js';
import { MAX_DESCRIPTION_DEPTH, MAX_MIME_CHARS, MEDIA_TYPES, type MediaType } from './limits.js';

/** True when `o` has `key` as an own property (never through its prototype). */
export function hasOwn(o: object, key: string): boolean {
  return Object.hasOwn(o, key);
}

/**
 * Sets an own property even when the key is `__proto__` (a plain assignment would set the
 * prototype of an object that does not already own that key).
 */
export function setOwn(o: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  else o[key] = value;
}

/** Length in code points, as a person (and most languages other than JS) counts characters. */
export function codePoints(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** Structural equality of JSON values, key order ignored; false past MAX_DESCRIPTION_DEPTH levels. */
export function deepEqual(a: unknown, b: unknown, depth = 0): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || depth > MAX_DESCRIPTION_DEPTH) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i], depth + 1)) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (!hasOwn(b, k) || !deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], depth + 1)) return false;
  return true;
}

/**
 * Why `v` is not a JSON value nested at most `maxDepth` deep, or undefined. Iterative, so a deep
 * value cannot blow the stack; bytes count as a leaf (they travel as attachments). `describe`
 * names a value that is not JSON (a function, a BigInt...).
 */
export function jsonProblem(v: unknown, maxDepth: number, describe: (v: unknown) => string = (x) => typeof x): string | undefined {
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length > 0) {
    const [x, depth] = stack.pop()!;
    switch (typeof x) {
      case 'string':
      case 'boolean':
      case 'undefined':
        continue;
      case 'number':
        if (!Number.isFinite(x)) return `holds ${x}, which JSON cannot carry`;
        continue;
      case 'object':
        break;
      default:
        return `holds ${describe(x)}, which is not JSON`;
    }
    if (x === null || x instanceof Uint8Array) continue;
    if (depth >= maxDepth) return `is nested more than ${maxDepth} levels deep`;
    if (Array.isArray(x)) for (let i = x.length - 1; i >= 0; i--) stack.push([x[i], depth + 1]);
    else for (const k of Object.keys(x)) stack.push([(x as Record<string, unknown>)[k], depth + 1]);
  }
  return undefined;
}

/** True when argument type `t` is a media type. */
export function isMediaType(t: unknown): t is MediaType {
  return (MEDIA_TYPES as readonly unknown[]).includes(t);
}

/** The mime family of each media type (`null`: any type) and an example type of it. */
export const MEDIA_FAMILY: Readonly<Record<MediaType, { prefix: string | null; example: string }>> = {
  image: { prefix: 'image/', example: 'image/png' },
  audio: { prefix: 'audio/', example: 'audio/mpeg' },
  video: { prefix: 'video/', example: 'video/mp4' },
  file: { prefix: null, example: 'application/pdf' },
};

/** A mime type: `type/subtype`, with optional parameters. */
export const MIME_RE = /^[A-Za-z0-9][\w!#$&^.+-]*\/[A-Za-z0-9][\w!#$&^.+-]*(?:\s*;[^\r\n]*)?$/;

/** True when `mime` is a well-formed mime type of at most MAX_MIME_CHARS characters. */
export function isMime(mime: unknown): boolean {
  return typeof mime === 'string' && mime.length <= MAX_MIME_CHARS && MIME_RE.test(mime);
}

/** `type/subtype` in lower case, parameters dropped. */
export function baseMime(mime: string): string {
  const semi = mime.indexOf(';');
  return (semi < 0 ? mime : mime.slice(0, semi)).trim().toLowerCase();
}

/** Whether base mime `base` fits pattern `pattern` (`image/png`, `image/*` or `*\/*`). */
export function mimeMatches(pattern: string, base: string): boolean {
  const p = baseMime(pattern);
  if (p === '*/*' || p === base) return true;
  return p.endsWith('/*') && base.startsWith(p.slice(0, -1));
}

/**
 * Splits a `data:` URL into its mime type and base64 text without decoding it, or returns null if
 * it is not a well-formed base64 data URL (`data:[<mime>][;params];base64,<base64>`). An empty
 * mime type reads as `text/plain` (RFC 2397).
 */
export function parseDataUrl(url: string): { mime: string; base64: string } | null {
  if (typeof url !== 'string' || url.length < 5 || url.slice(0, 5).toLowerCase() !== 'data:') return null;
  const comma = url.indexOf(',');
  if (comma < 0 || comma > 512) return null;
  const params = url.slice(5, comma).split(';');
  if (params.pop()!.trim().toLowerCase() !== 'base64') return null;
  const mime = params.join(';').trim() || 'text/plain';
  if (!isMime(mime)) return null;
  const base64 = url.slice(comma + 1);
  return isBase64(base64) ? { mime, base64 } : null;
}

/**
 * `ref` and `task_id` of a refused message, when they fit their schema, so that the error answer
 * names the request it refuses (docs/protocol.md, "WebSocket framing").
 */
export function messageLabels(msg: object): Record<string, unknown> {
  const m = msg as { ref?: unknown; task_id?: unknown };
  const out: Record<string, unknown> = {};
  if (hasOwn(m, 'ref') && typeof m.ref === 'string' && m.ref.length <= 256) out.ref = m.ref;
  // A task id has 1 to 64 characters (TaskId): an empty one is not echoed, or the answer would stray too.
  if (hasOwn(m, 'task_id') && typeof m.task_id === 'string' && m.task_id.length >= 1 && m.task_id.length <= 64) out.task_id = m.task_id;
  return out;
}
