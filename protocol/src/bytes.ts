/**
 * Bytes without Node: `Uint8Array` (of which Node's Buffer is a subclass, so a Buffer passes
 * through everything here as itself), UTF-8 text and base64, for the hub, the SDKs and a browser.
 *
 * Base64 goes through a `Base64Codec`: the portable one below by default; a Node caller on a hot
 * path hands in one built on Buffer (the hub and the worker SDK do), which is faster and returns
 * Buffers.
 */

/** True when `v` is bytes: a Uint8Array, a Buffer included. */
export function isBytes(v: unknown): v is Uint8Array {
  return v instanceof Uint8Array;
}

/** The bytes of `parts` one after the other, in one new array (`parts[0]` itself when it is alone). */
export function joinBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

// Keeps a leading BOM, as Buffer's toString does: a text frame that starts with one is not JSON.
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** UTF-8 bytes as text; malformed sequences become U+FFFD. */
export function decodeUtf8(bytes: Uint8Array): string {
  return UTF8.decode(bytes);
}

/** How base64 text and bytes are turned into each other. */
export interface Base64Codec {
  /** Standard base64 (with padding) of `bytes`. */
  encode(bytes: Uint8Array): string;
  /** The bytes of well-formed standard base64 `text` (checked by the caller: see isBase64). */
  decode(text: string): Uint8Array;
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const DIGIT = new Uint8Array(128);
for (let i = 0; i < ALPHABET.length; i++) DIGIT[ALPHABET.charCodeAt(i)] = i;
/** Bytes per chunk of encoding: the chunk's text is built from character codes as call arguments, which are bounded. */
const CHUNK = 0x6000;

/** Standard base64 of `bytes`, in any runtime. */
function encodePortable(bytes: Uint8Array): string {
  let out = '';
  const codes: number[] = [];
  for (let start = 0; start < bytes.length; start += CHUNK) {
    const end = Math.min(bytes.length, start + CHUNK);
    codes.length = 0;
    let i = start;
    for (; i + 2 < end; i += 3) {
      const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
      codes.push(ALPHABET.charCodeAt(n >>> 18), ALPHABET.charCodeAt((n >>> 12) & 63), ALPHABET.charCodeAt((n >>> 6) & 63), ALPHABET.charCodeAt(n & 63));
    }
    if (end - i === 1) {
      const n = bytes[i] << 16;
      codes.push(ALPHABET.charCodeAt(n >>> 18), ALPHABET.charCodeAt((n >>> 12) & 63), 61, 61);
    } else if (end - i === 2) {
      const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
      codes.push(ALPHABET.charCodeAt(n >>> 18), ALPHABET.charCodeAt((n >>> 12) & 63), ALPHABET.charCodeAt((n >>> 6) & 63), 61);
    }
    out += String.fromCharCode(...codes);
  }
  return out;
}

/** The bytes of well-formed base64 `text`, in any runtime. */
function decodePortable(text: string): Uint8Array {
  const out = new Uint8Array(base64ByteLength(text));
  let n = 0;
  let bits = 0;
  let at = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 61 /* = */) break;
    n = ((n << 6) | DIGIT[c & 127]) & 0x3fff; // only the bits not yet written matter
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (n >>> bits) & 255;
    }
  }
  return out;
}

/** Base64 in any runtime (browsers, Node, workers), on plain Uint8Arrays. */
export const portableBase64: Base64Codec = { encode: encodePortable, decode: decodePortable };

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

/** True when `s` is well-formed base64 (standard alphabet, padding optional but consistent). */
export function isBase64(s: string): boolean {
  if (typeof s !== 'string') return false;
  const n = s.length;
  if (n % 4 === 1) return false;
  if (n > 0 && s.charCodeAt(n - 1) === 61 /* = */ && n % 4 !== 0) return false;
  return BASE64_RE.test(s);
}

/** The number of bytes that well-formed base64 `s` decodes to, without decoding it. */
export function base64ByteLength(s: string): number {
  let n = s.length;
  if (n > 0 && s.charCodeAt(n - 1) === 61) n--;
  if (n > 0 && s.charCodeAt(n - 1) === 61) n--;
  return Math.floor((n * 3) / 4);
}
