/**
 * The types a service author writes against: the argument declarations of `defineService`, the
 * handler's args inferred from them, media values, and the task context.
 */
import type { ArgType, MediaType } from '@utils-hub/protocol';

/**
 * One argument as `defineService` takes it: the `/me` argument of docs/protocol.md section 3, with
 * readonly arrays so that a literal declaration keeps its exact types (names, types, choices) and
 * the handler's args can be inferred from it.
 */
export interface ArgumentSpec {
  /** 1 to 64 characters of `A-Z a-z 0-9 _`, unique in its list. */
  readonly argument_name: string;
  /** What the argument is, for a person. Default: none. */
  readonly argument_description?: string;
  /** The type of its values. */
  readonly type: ArgType;
  /** False when the argument may be left out. Default true (false when a `default` is given). */
  readonly required?: boolean;
  /** The value used when the argument is left out (the hub fills it in). Default: none. */
  readonly default?: unknown;
  /** The allowed values (a chat bot shows them as buttons). Default: any value of the type. */
  readonly choices?: readonly unknown[];
  /** Least value of an `int`/`float`, least length (code points) of a `str`. Default: none. */
  readonly min?: number;
  /** Greatest value of an `int`/`float`, greatest length of a `str`. Default: none. */
  readonly max?: number;
  /** Accepted media types of a media argument, such as `image/png` or `image/*`. Default: the type's family. */
  readonly mime?: readonly string[];
  /** Largest size of a media argument, in bytes. Default: the hub's message limit. */
  readonly max_bytes?: number;
  /** The question a chat bot asks for it. Default: none. */
  readonly prompt?: string;
}

/** Media bytes as a handler receives them (from the hub's attachments) and may return them. */
export interface MediaFile {
  /** The media type, such as `image/png`. */
  mime: string;
  /** A file name, when one came with the bytes. */
  name?: string;
  /** The bytes. */
  data: Buffer;
}

/** Media by reference, passed on as the client gave it: the hub never fetches it. */
export interface MediaLink {
  url: string;
  mime?: string;
  name?: string;
}

/** The value of a media argument (`image`, `audio`, `video`, `file`). */
export type MediaValue = MediaFile | MediaLink;

/** The TypeScript type of the values of an argument type. */
export type ValueOfType<T extends ArgType> = T extends 'int' | 'float'
  ? number
  : T extends 'str'
    ? string
    : T extends 'bool'
      ? boolean
      : T extends MediaType
        ? MediaValue
        : unknown;

/** The value type of one argument: its `choices` when they are literal, else its type's. */
export type ValueOfArgument<A extends ArgumentSpec> = A extends { readonly choices: readonly (infer C)[] }
  ? [C] extends [ValueOfType<A['type']>]
    ? C
    : ValueOfType<A['type']>
  : ValueOfType<A['type']>;

/**
 * True when the handler always gets the argument: it is required, or it has a default (the hub
 * fills defaults in, and the SDK does too for a hub that did not).
 */
type IsPresent<A extends ArgumentSpec> = A extends { readonly default: unknown } ? true : A extends { readonly required: false } ? false : true;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/**
 * The args a handler receives, keyed by `argument_name` and typed from a literal `input`
 * declaration: int/float → number, str → string, bool → boolean, json → unknown, media →
 * MediaValue; literal `choices` narrow to their union; an argument with `required: false` and no
 * `default` is optional. A declaration whose names are plain `string` gives a record.
 */
export type ArgsOf<I extends readonly ArgumentSpec[]> = Simplify<
  { [A in I[number] as IsPresent<A> extends true ? A['argument_name'] : never]: ValueOfArgument<A> } & {
    [A in I[number] as IsPresent<A> extends true ? never : A['argument_name']]?: ValueOfArgument<A>;
  }
>;

/**
 * Why a task's signal fired: the hub's cancel reason (`client`, `timeout`, `shutdown`), `timeout`
 * also when the task's own `timeout_ms` passed, `shutdown` when `service.close()` gave up waiting,
 * and `connection_lost` when the connection that carried the task died (the hub re-dispatches it).
 */
export type AbortReason = 'client' | 'timeout' | 'shutdown' | 'connection_lost';

/** What a handler gets besides its args. */
export interface TaskContext {
  /** The hub's id of the task. */
  readonly taskId: string;
  /** Which attempt this is, from 1 (the hub retries a task whose worker was lost). */
  readonly attempt: number;
  /** The run deadline of this attempt, in ms from its start. */
  readonly timeoutMs: number;
  /** The instance name this worker announced on the connection that carried the task. */
  readonly instance: string;
  /**
   * Fires when the task should stop: its `reason` is a TaskAbortedError whose `reason` says why
   * (AbortReason). Pass it on to anything that takes a signal.
   */
  readonly signal: AbortSignal;
  /** Why the signal fired, or undefined while it has not. */
  readonly abortReason: AbortReason | undefined;
  /**
   * Reports progress: `fraction` from 0 to 1 (clamped; NaN is left out), a `message` for a person
   * (cut at 65536 characters) and any `data` (Buffers and `{mime, name?, data: Buffer}` in it go
   * as attachments, such as a preview). Rate-limited per task (one message per
   * `progressIntervalMs`, default 50 ms): calls in between replace the waiting one, and the last
   * one always goes out before the result. Does nothing once the task has ended or been aborted.
   * Never throws; the promise resolves at once.
   */
  progress(fraction?: number, message?: string, data?: unknown): Promise<void>;
}

/** The function that runs a task; its return value (or the value it resolves to) is the result. */
export type Handler<I extends readonly ArgumentSpec[]> = (args: ArgsOf<I>, ctx: TaskContext) => unknown;

/** What a worker learnt from the hub's `welcome`, and where the connection goes. */
export interface ConnectedInfo {
  /** The hub's id of the service. */
  serviceId: number;
  /** The hub's id of this connection. */
  connectionId: string;
  /** The hub's ping interval, in ms. */
  heartbeatMs: number;
  /** The hub's `/worker` URL (dialed) or the address of the hub that dialed us (listened). */
  peer: string;
  /** True when this worker dialed the hub (`connect`), false when the hub dialed it (`listen`). */
  dialed: boolean;
}

/** Listener signatures of a service's events. */
export interface WorkerEvents {
  /** The hub welcomed a connection. */
  connected: (info: ConnectedInfo) => void;
  /** A connection closed (welcomed or not), with its WebSocket close code and reason. */
  disconnected: (code: number, reason: string) => void;
  /** A task started. */
  task: (taskId: string, attempt: number) => void;
  /**
   * Something went wrong that the SDK handles itself: a failed dial, a refused handshake (a
   * HubError carrying the hub's code), a broken message, a handler's progress that could not be
   * encoded. Without a listener each such error is written once to stderr (repeats of the same
   * message are not), rather than thrown.
   */
  error: (error: Error) => void;
}
