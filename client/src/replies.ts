/**
 * Reads a person's chat reply as a value of the argument asked for: "12", "1,5", "yes", "n",
 * a choice by its label or its number, JSON text, media. Checking the value against the
 * argument's rules is arg-rules' job; this only reads.
 */
import type { Argument } from '@utils-hub/protocol';
import { deepEqual } from '@utils-hub/protocol/core';

/** The kind of answer a question expects, to choose a keyboard or buttons. */
export type AnswerKind = 'number' | 'integer' | 'text' | 'yes-no' | 'choice' | 'media' | 'json';

/** A reply read: skipped, a value, or a problem for the person. */
export type ReadReply =
  | { skip: true; value?: undefined; problem?: undefined }
  | { skip?: false; value: unknown; problem?: undefined }
  | { skip?: false; value?: undefined; problem: string };

const YES = new Set(['yes', 'y', 'true', '1', 'on']);
const NO = new Set(['no', 'n', 'false', '0', 'off']);
const SKIP = new Set(['skip', '/skip']);

/** The button label of a choice: strings as they are, true/false as yes/no, the rest as JSON. */
export function choiceLabel(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return JSON.stringify(v) ?? String(v);
}

/** A number as a person types it: "12", "-3", "1.5", "1,5", "1e3"; undefined otherwise. */
export function parseNumber(text: string): number | undefined {
  let t = text.trim();
  if (/^[+-]?\d+,\d+$/.test(t)) t = t.replace(',', '.');
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** yes/y/true/1/on or no/n/false/0/off, any case; undefined otherwise. */
export function parseYesNo(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  return YES.has(t) ? true : NO.has(t) ? false : undefined;
}

function readChoice(arg: Argument, reply: unknown): ReadReply {
  const choices = arg.choices ?? [];
  const labels = choices.map(choiceLabel);
  const problem = `Please pick one of: ${labels.join(', ')}.`;
  if (typeof reply !== 'string') {
    const i = choices.findIndex((c) => deepEqual(c, reply));
    return i >= 0 ? { value: structuredClone(choices[i]) } : { problem };
  }
  const t = reply.trim();
  let i = labels.indexOf(reply);
  if (i < 0) i = labels.indexOf(t);
  if (i < 0) i = labels.findIndex((l) => l.toLowerCase() === t.toLowerCase());
  if (i < 0 && (arg.type === 'int' || arg.type === 'float')) {
    const n = parseNumber(t);
    i = n === undefined ? -1 : choices.indexOf(n);
  }
  if (i < 0 && arg.type === 'bool') {
    const b = parseYesNo(t);
    i = b === undefined ? -1 : choices.indexOf(b);
  }
  // Last, the choice's number as a list shows it (from 1).
  if (i < 0 && /^\d+$/.test(t) && Number(t) >= 1 && Number(t) <= choices.length) i = Number(t) - 1;
  return i >= 0 ? { value: structuredClone(choices[i]) } : { problem };
}

/**
 * Reads `reply` for argument `arg` of kind `kind`. Skips: undefined, null, an empty or blank
 * reply, and "skip" or "/skip" (except as text for a required text argument, and except a choice
 * of that label). Strings are read by kind; any other value is taken as the value itself.
 */
export function readReply(arg: Argument, kind: AnswerKind, reply: unknown): ReadReply {
  if (reply === undefined || reply === null) return { skip: true };
  if (kind === 'choice') {
    if (typeof reply === 'string' && reply.trim() === '') return { skip: true };
    const r = readChoice(arg, reply);
    if (r.problem !== undefined && typeof reply === 'string' && SKIP.has(reply.trim().toLowerCase())) return { skip: true };
    return r;
  }
  if (typeof reply !== 'string') return { value: reply };
  const t = reply.trim();
  const optional = arg.required === false || arg.default !== undefined;
  if (t === '' || (SKIP.has(t.toLowerCase()) && (optional || kind !== 'text'))) return { skip: true };
  switch (kind) {
    case 'integer': {
      const n = parseNumber(t);
      return n === undefined || !Number.isInteger(n) ? { problem: 'Please send a whole number, like 12.' } : { value: n };
    }
    case 'number': {
      const n = parseNumber(t);
      return n === undefined ? { problem: 'Please send a number, like 1.5.' } : { value: n };
    }
    case 'yes-no': {
      const b = parseYesNo(t);
      return b === undefined ? { problem: 'Please answer yes or no.' } : { value: b };
    }
    case 'json':
      try {
        return { value: JSON.parse(reply) };
      } catch {
        return { problem: 'Please send valid JSON, like {"a": 1} or "text" in quotes.' };
      }
    case 'media':
      // Text carries media only as a data: URL; the rules tell a person what else to send.
      return { value: t };
    default:
      return { value: reply };
  }
}
