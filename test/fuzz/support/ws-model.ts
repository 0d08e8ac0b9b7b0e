/**
 * A model of what the hub must answer to a sequence of WebSocket frames, written from the
 * contract, the project's protocol document (docs/protocol.md section 5, "WebSocket
 * framing"), not from the hub's code:
 *
 * - a text frame that is not a JSON object with a string `type`: `bad_message`;
 * - `"attachments": n` outside 1..16: `bad_message` (a whole number over 16 also swallows the
 *   n binary frames that follow);
 * - a text frame while binary frames are owed: `bad_message` about the owed message, and the new
 *   frame is read;
 * - a binary frame nobody announced: `bad_message`;
 * - attachments over the byte limit: `payload_too_large`, and the frames still owed are swallowed;
 * - a `$attachment` that names no frame sent, or containers nested deeper than 64 levels in a
 *   message with attachments: `bad_message`;
 * - otherwise the whole message reaches its handler, whose answer the generator knows.
 * Errors about a message name its `ref` (a string of at most 256) and `task_id` (1 to 64 characters, as TaskId).
 */

/** What the hub answers to one message, as a predicate's description. */
export interface Expect {
  /** The answer's `type`. */
  type: string;
  /** `code` of an `error`, or `error.code` of a `rejected`. */
  code?: string;
  ref?: string;
  task_id?: string;
  /** For `invalid_args`: the argument names of the details, in any order. */
  problems?: string[];
  /** For `service_info`: the service's id. */
  serviceId?: number;
  /** For `snapshot`: the task's status. */
  status?: string;
  /** For `accepted`: the service the task went to (bookkeeping of the test). */
  service?: string;
  /** An end event again (`result`, `failed` or `canceled`) for `task_id`. */
  anyEnd?: boolean;
}

/** `ref` and `task_id` of a message, as errors about it carry them. */
export function about(msg: unknown): { ref?: string; task_id?: string } {
  const out: { ref?: string; task_id?: string } = {};
  if (msg === null || typeof msg !== 'object') return out;
  const m = msg as Record<string, unknown>;
  if (Object.hasOwn(m, 'ref') && typeof m.ref === 'string' && m.ref.length <= 256) out.ref = m.ref;
  if (Object.hasOwn(m, 'task_id') && typeof m.task_id === 'string' && m.task_id.length >= 1 && m.task_id.length <= 64) out.task_id = m.task_id;
  return out;
}

/** Deepest container (the message being level 1) outside attachment refs, and the `$attachment` values. */
export function walk(msg: unknown): { depth: number; refs: unknown[] } {
  const refs: unknown[] = [];
  let depth = 0;
  const stack: Array<[unknown, number]> = [[msg, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (!Array.isArray(v) && Object.hasOwn(v, '$attachment') && d > 1) {
      refs.push((v as Record<string, unknown>).$attachment);
      continue;
    }
    depth = Math.max(depth, d);
    for (const k of Object.keys(v)) stack.push([(v as Record<string, unknown>)[k], d + 1]);
  }
  return { depth, refs };
}

/** What a handler answers to a whole message; a function when it depends on the frames' sizes. */
export type Reply = Expect[] | ((frameSizes: number[]) => Expect[]);

interface Owing {
  about: { ref?: string; task_id?: string };
  n: number;
  sizes: number[];
  bytes: number;
  parsed: unknown;
  reply: Reply;
}

/** One connection's decoder, as the contract describes it. */
export class DecoderModel {
  private owing: Owing | null = null;
  private skip = 0;

  constructor(
    readonly maxBytes: number,
    readonly maxAttachments = 16,
  ) {}

  /** Binary frames still owed. */
  get pending(): number {
    return this.owing ? this.owing.n - this.owing.sizes.length : 0;
  }

  /** A text frame; `reply` is what its handler answers if the message arrives whole. */
  text(raw: string, reply: Reply): Expect[] {
    const out: Expect[] = [];
    if (this.owing) {
      out.push({ type: 'error', code: 'bad_message', ...this.owing.about });
      this.owing = null;
    }
    this.skip = 0;
    let msg: unknown;
    try {
      msg = JSON.parse(raw);
    } catch {
      return [...out, { type: 'error', code: 'bad_message' }];
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg) || typeof (msg as { type?: unknown }).type !== 'string') {
      return [...out, { type: 'error', code: 'bad_message' }];
    }
    const m = msg as Record<string, unknown>;
    if (!Object.hasOwn(m, 'attachments')) return [...out, ...(typeof reply === 'function' ? reply([]) : reply)];
    const n = m.attachments;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > this.maxAttachments) {
      if (typeof n === 'number' && Number.isInteger(n) && n > this.maxAttachments) this.skip = n;
      return [...out, { type: 'error', code: 'bad_message', ...about(m) }];
    }
    this.owing = { about: about(m), n, sizes: [], bytes: 0, parsed: m, reply };
    return out;
  }

  /** A binary frame of `size` bytes. */
  binary(size: number): Expect[] {
    const o = this.owing;
    if (!o) {
      if (this.skip > 0) {
        this.skip--;
        return [];
      }
      return [{ type: 'error', code: 'bad_message' }];
    }
    o.bytes += size;
    if (o.bytes > this.maxBytes) {
      this.skip = o.n - o.sizes.length - 1;
      this.owing = null;
      return [{ type: 'error', code: 'payload_too_large', ...o.about }];
    }
    o.sizes.push(size);
    if (o.sizes.length < o.n) return [];
    this.owing = null;
    const { depth, refs } = walk(o.parsed);
    const refsOk = refs.every((k) => typeof k === 'number' && Number.isInteger(k) && k >= 0 && k < o.n);
    if (!refsOk || depth > 64) return [{ type: 'error', code: 'bad_message', ...o.about }];
    return typeof o.reply === 'function' ? o.reply(o.sizes) : o.reply;
  }
}

/** Whether `answer` is what `e` describes. */
export function matches(e: Expect, answer: Record<string, any>): boolean {
  if (e.anyEnd) return ['result', 'failed', 'canceled'].includes(answer.type) && answer.task_id === e.task_id;
  if (answer.type !== e.type) return false;
  switch (e.type) {
    case 'error':
      return answer.code === e.code && answer.ref === e.ref && answer.task_id === e.task_id && typeof answer.message === 'string';
    case 'rejected': {
      if (answer.ref !== e.ref || answer.error?.code !== e.code || typeof answer.error?.message !== 'string') return false;
      if (!e.problems) return true;
      const names = new Set<string>((answer.error.details ?? []).map((d: { argument_name: string }) => d.argument_name));
      return names.size === new Set(e.problems).size && e.problems.every((p) => names.has(p));
    }
    case 'accepted':
      return answer.ref === e.ref && typeof answer.task_id === 'string' && Number.isInteger(answer.position);
    case 'service_info':
      return answer.ref === e.ref && answer.service?.service_id === e.serviceId;
    case 'snapshot':
      return answer.task_id === e.task_id && answer.status === e.status;
    default:
      return answer.task_id === e.task_id;
  }
}

/** Counts the answers that the hub's flood guard counts: `bad_message` and `payload_too_large` errors. */
export function floodHits(expects: readonly Expect[]): number {
  return expects.filter((e) => e.type === 'error' && (e.code === 'bad_message' || e.code === 'payload_too_large')).length;
}
