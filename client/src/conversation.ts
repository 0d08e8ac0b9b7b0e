/**
 * A chat conversation that asks a person for a service's arguments one by one: a pure,
 * serialisable state machine (no I/O), so that a bot can keep one per chat in its store between
 * messages. Replies are read as a person types them and checked with the hub's rules.
 */
import type { Argument, ArgType } from '@utils-hub/protocol';
import { acceptedMimes, isMediaType, mediaNoun, rangePhrase, valueProblem } from './arg-rules.js';
import { fromBase64, isBlob, outputBytes, toBase64 } from './media.js';
import { choiceLabel, readReply, type AnswerKind } from './replies.js';

export type { AnswerKind } from './replies.js';

/** The part of a service's description (`serviceInfo()`) that a conversation needs. */
export interface ConversationService {
  /** The service's id, to run it with once the conversation is done. */
  service_id?: number;
  /** The service's name. */
  service_name?: string;
  /** What the service does, for a person. */
  service_description?: string;
  /** The arguments to ask for, in order, with their extras (prompt, choices, min, max, mime...). */
  arguments: Argument[];
}

/** The question for the next argument, ready to show. */
export interface Question {
  /** The argument's name, the key of its answer in `args()`. */
  name: string;
  /** What to ask: the argument's `prompt`, else its description, else its name. */
  text: string;
  /** The argument's description, when `text` is its prompt. */
  description?: string;
  /** The argument's type. */
  type: ArgType;
  /** The kind of answer expected, to choose a keyboard or buttons. */
  kind: AnswerKind;
  /** Labels of the allowed answers, to show as buttons (kind `choice`, and `yes-no`). */
  choices?: string[];
  /** The value used when the person skips it (filled in by the hub). */
  default?: unknown;
  /** True when the person may skip it (`skip` or an empty reply): not required, or has a default. */
  optional: boolean;
  /** Media: the accepted mime patterns (the argument's list, else its family such as `image/*`). */
  mime?: string[];
  /** The least number, or the least length of text, when the argument has one. */
  min?: number;
  /** The greatest number, or the greatest length of text, when the argument has one. */
  max?: number;
  /** Media: the largest size accepted, in bytes. */
  maxBytes?: number;
  /** What is expected, for a person: "a whole number from 1 to 10", "an image (image/png)". */
  hint: string;
  /** This question's place, from 0. */
  index: number;
  /** How many arguments the service has (questions in all, skipped ones included). */
  total: number;
}

/** The outcome of `answer()`: moved on, or a message for the person and the same question again. */
export type AnswerResult = { ok: true } | { ok: false; message: string };

/** A conversation as JSON (`toJSON()`); media bytes are base64 in it. */
export interface ConversationJSON {
  /** The format's version. */
  version: 1;
  /** The service description the conversation was started with. */
  service: ConversationService;
  /** The question it stands at (the number of arguments when done). */
  index: number;
  /** The answers so far, keyed by argument_name. */
  answers: Record<string, unknown>;
}

function hintOf(arg: Argument, kind: AnswerKind, choices: string[] | undefined): string {
  const min = typeof arg.min === 'number' ? arg.min : undefined;
  const max = typeof arg.max === 'number' ? arg.max : undefined;
  const range = rangePhrase(min, max);
  switch (kind) {
    case 'choice':
      return `one of: ${choices!.join(', ')}`;
    case 'integer':
      return `a whole number${range ? ` ${range}` : ''}`;
    case 'number':
      return `a number${range ? ` ${range}` : ''}`;
    case 'yes-no':
      return 'yes or no';
    case 'json':
      return 'JSON, like {"a": 1}';
    case 'text':
      return `text${range ? ` of ${rangePhrase(min, max, ' character')}` : ''}`;
    case 'media':
      return `${mediaNoun(arg.type)}${Array.isArray(arg.mime) ? ` (${arg.mime.join(', ')})` : ''}`;
  }
}

function kindOf(arg: Argument): AnswerKind {
  if (Array.isArray(arg.choices)) return 'choice';
  if (isMediaType(arg.type)) return 'media';
  return ({ int: 'integer', float: 'number', str: 'text', bool: 'yes-no', json: 'json' } as const)[arg.type as 'int'] ?? 'json';
}

const isOptional = (arg: Argument): boolean => arg.required === false || arg.default !== undefined;

/** A media answer held with its bytes at hand: ArrayBuffer and base64 become bytes. Blobs are refused. */
function holdMedia(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  const o = v as Record<string, unknown>;
  if (isBlob(o.data)) throw new TypeError('conversation answers need media bytes at hand: read the Blob first with mediaFromBlob()');
  if (o.data instanceof Uint8Array || o.data instanceof ArrayBuffer) return { ...o, data: outputBytes(o.data) };
  if (typeof o.data === 'string') return { ...o, data: fromBase64(o.data) };
  return { ...o };
}

/**
 * Asks for a service's arguments one by one. `next()` gives the question, `answer(reply)` takes
 * the person's reply, `args()` gives the arguments once `done`. Keep it between messages with
 * `toJSON()` and `Conversation.fromJSON()`.
 */
export class Conversation {
  /** The service whose arguments are asked for. */
  readonly service: ConversationService;
  #index = 0;
  #answers: Record<string, unknown> = Object.create(null);

  /** Starts a conversation at the first argument of `service` (what `HubClient.serviceInfo` gives). */
  constructor(service: ConversationService) {
    if (!service || !Array.isArray(service.arguments)) throw new TypeError('conversation(): expected a service description with "arguments"');
    this.service = service;
  }

  /** True once every argument has been answered or skipped. */
  get done(): boolean {
    return this.#index >= this.service.arguments.length;
  }

  /** The service id, when the description has one. */
  get serviceId(): number | undefined {
    return this.service.service_id;
  }

  /** The question for the next argument, or null when done. */
  next(): Question | null {
    const args = this.service.arguments;
    const arg = args[this.#index];
    if (!arg) return null;
    const kind = kindOf(arg);
    const choices = kind === 'choice' ? arg.choices!.map(choiceLabel) : kind === 'yes-no' ? ['yes', 'no'] : undefined;
    const described = typeof arg.argument_description === 'string' && arg.argument_description.length > 0;
    const q: Question = {
      name: arg.argument_name,
      text: arg.prompt || (described ? arg.argument_description! : arg.argument_name),
      type: arg.type,
      kind,
      optional: isOptional(arg),
      hint: hintOf(arg, kind, choices),
      index: this.#index,
      total: args.length,
    };
    if (arg.prompt && described) q.description = arg.argument_description;
    if (choices) q.choices = choices;
    if (arg.default !== undefined) q.default = arg.default;
    if (isMediaType(arg.type)) q.mime = acceptedMimes(arg);
    if (typeof arg.min === 'number') q.min = arg.min;
    if (typeof arg.max === 'number') q.max = arg.max;
    if (typeof arg.max_bytes === 'number') q.maxBytes = arg.max_bytes;
    return q;
  }

  /**
   * Takes the person's reply to the current question: text as typed ("12", "1.5", "yes", "n",
   * a choice's label or its number from 1, JSON), a value (12, true, a choice's value), or media
   * (`{mime, name?, data}` with bytes or base64, a `data:` URL, `{url, mime}`). "skip", "/skip",
   * an empty reply, null or undefined skip an optional argument (its default, if any, is the
   * hub's to fill in). Returns `{ok: true}` and moves on, or `{ok: false, message}` with a message
   * for the person and stays. Throws TypeError for media held in a Blob (read it first).
   */
  answer(reply: unknown): AnswerResult {
    const arg = this.service.arguments[this.#index];
    if (!arg) return { ok: false, message: 'Nothing is left to ask.' };
    const kind = kindOf(arg);
    const read = readReply(arg, kind, reply);
    if (read.skip) {
      if (!isOptional(arg)) return { ok: false, message: `This one is needed: please send ${hintOf(arg, kind, arg.choices?.map(choiceLabel))}.` };
      delete this.#answers[arg.argument_name];
      this.#index++;
      return { ok: true };
    }
    if (read.problem) return { ok: false, message: read.problem };
    const problem = valueProblem(arg, read.value);
    if (problem) return { ok: false, message: problem };
    this.#answers[arg.argument_name] = kind === 'media' ? holdMedia(read.value) : read.value;
    this.#index++;
    return { ok: true };
  }

  /** Goes back to the previous question, forgetting its answer; false at the first. */
  back(): boolean {
    if (this.#index === 0) return false;
    this.#index--;
    delete this.#answers[this.service.arguments[this.#index].argument_name];
    return true;
  }

  /**
   * The arguments, keyed by argument_name, ready for `HubClient.run(serviceId, args)`; skipped
   * arguments are left out. Throws Error before `done`.
   */
  args(): Record<string, unknown> {
    if (!this.done) throw new Error(`the conversation is not done: "${this.service.arguments[this.#index].argument_name}" is still to answer`);
    return { ...this.#answers };
  }

  /**
   * The conversation as JSON, to store between messages. Media answers keep their bytes as
   * base64 (`{mime, name?, data: "<base64>"}`); everything else is stored as it is.
   */
  toJSON(): ConversationJSON {
    const answers: Record<string, unknown> = {};
    for (const arg of this.service.arguments) {
      if (!Object.hasOwn(this.#answers, arg.argument_name)) continue;
      const v = this.#answers[arg.argument_name];
      const bytes = (v as { data?: unknown } | null)?.data;
      answers[arg.argument_name] = isMediaType(arg.type) && bytes instanceof Uint8Array ? { ...(v as object), data: toBase64(bytes) } : v;
    }
    return { version: 1, service: this.service, index: this.#index, answers };
  }

  /** A conversation from `toJSON()` output (or its JSON text parsed). Throws TypeError for anything else. */
  static fromJSON(json: unknown): Conversation {
    const j = json as Partial<ConversationJSON> | null;
    if (j?.version !== 1 || !j.service || !Array.isArray(j.service.arguments)) throw new TypeError('not a saved conversation (version 1)');
    const c = new Conversation(j.service);
    const n = j.service.arguments.length;
    if (typeof j.index !== 'number' || !Number.isInteger(j.index) || j.index < 0 || j.index > n) throw new TypeError('a saved conversation has a bad index');
    c.#index = j.index;
    const answers = j.answers && typeof j.answers === 'object' ? j.answers : {};
    for (const arg of j.service.arguments.slice(0, j.index)) {
      if (!Object.hasOwn(answers, arg.argument_name)) continue;
      const v = answers[arg.argument_name];
      c.#answers[arg.argument_name] = isMediaType(arg.type) ? holdMedia(v) : v;
    }
    return c;
  }
}

/** Starts a conversation for `service` (what `HubClient.serviceInfo` gives). */
export function conversation(service: ConversationService): Conversation {
  return new Conversation(service);
}

/** Restores a conversation saved with `toJSON()`; the same as `Conversation.fromJSON`. */
export function conversationFromJSON(json: unknown): Conversation {
  return Conversation.fromJSON(json);
}
