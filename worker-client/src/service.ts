/**
 * `defineService()`: a service description checked at once, a handler, and the two ways to meet a
 * hub (`connect` dials it, `listen` lets it dial), plus `close()`, which drains them all.
 */
import { checkServiceDescription, type ServiceDescription } from '@utils-hub/protocol';
import { Dialer } from './dialer.js';
import { Listener, type ListenAddress } from './listener.js';
import {
  intOption,
  MAX_TIMER_MS,
  resolveConnect,
  resolveListen,
  WORKER_DEFAULTS,
  type CloseOptions,
  type ConnectOptions,
  type ListenOptions,
} from './options.js';
import type { ServiceCore, Session, SessionHooks } from './session.js';
import type { RawHandler } from './task.js';
import { TypedEmitter } from './typed-emitter.js';
import type { ArgumentSpec, ConnectedInfo, Handler, WorkerEvents } from './types.js';

/** What `defineService` takes: the `/me` description (docs/protocol.md section 3) and the handler. */
export interface ServiceDefinition<I extends readonly ArgumentSpec[]> {
  /** 1 to 64 characters of `A-Z a-z 0-9 _ . -`; the hub knows the service by it. */
  name: string;
  /** What the service does, for a person (may be empty). */
  description: string;
  /** The arguments, in the order a chat bot asks for them. Declare them inline (or `as const`) to type the handler's args. */
  input: I;
  /** What the result holds, for people and bots (not checked by the SDK). Default: none. */
  output?: readonly ArgumentSpec[];
  /** Tasks one connection takes at once, 1 to 1024 (`connect` and `listen` may override it). Default 1. */
  concurrency?: number;
  /** Least time between two progress messages of one task, in ms. Default 50. */
  progressIntervalMs?: number;
  /** Runs one task; what it returns (or resolves to) is the result. */
  handler: Handler<I>;
}

/**
 * A defined service: connect it to hubs and/or let hubs dial it, as many times as needed; each
 * connection takes up to `concurrency` tasks. Emits WorkerEvents.
 */
export class Service extends TypedEmitter<WorkerEvents> {
  /** The checked, frozen `/me` description, as sent in `hello` and served at `GET /me`. */
  readonly me: ServiceDescription;
  /** Tasks one connection takes at once, unless `connect`/`listen` say otherwise. */
  readonly concurrency: number;
  readonly #core: ServiceCore;
  readonly #dialers = new Set<Dialer>();
  readonly #listeners = new Set<Listener>();
  readonly #hooks: SessionHooks;
  #closing: Promise<void> | null = null;
  #lastUnhandled = '';

  /** Use `defineService`. */
  constructor(me: ServiceDescription, handler: RawHandler, options: { concurrency: number; progressIntervalMs: number }) {
    super();
    this.me = me;
    this.concurrency = options.concurrency;
    this.#core = Object.freeze({ me, input: me.input, handler, progressIntervalMs: options.progressIntervalMs });
    this.#hooks = {
      welcome: (info) => this.emit('connected', info),
      close: (code, reason) => this.emit('disconnected', code, reason),
      error: (err) => this.emit('error', err),
      task: (id, attempt) => this.emit('task', id, attempt),
    };
  }

  /** The service's name. */
  get name(): string {
    return this.me.name;
  }

  /** Tasks running now, over every connection. */
  get inFlight(): number {
    let n = 0;
    for (const s of this.#sessions()) n += s.tasks.size;
    return n;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closing !== null;
  }

  /**
   * Dials the hub's `/worker` (`ws://HOST:PORT/worker`; `http(s)://` is taken as `ws(s)://`) and
   * keeps the connection: `hello` on every connection, redial with jittered exponential backoff
   * (0.5 s doubling to 30 s, reset by a welcome) after a loss, a refusal or a hub silent for two
   * heartbeats. A refusal (`unauthorized`, `forbidden`, `bad_service_description`,
   * `service_conflict`, `unsupported_protocol`, ...) is emitted as an `error` event carrying a
   * HubError with the hub's code and retried with backoff like any loss, since an operator may fix
   * it (a token created, a conflicting worker stopped). Tasks in flight on a lost connection are
   * aborted (`connection_lost`) and their answers dropped: the hub re-dispatches them.
   * With several hub URLs (the hubs of a cluster), one connection goes to one hub at a time and
   * every loss, refusal or failed dial moves on to the next URL in the list.
   * Resolves with the first welcome (the connection goes on after it); rejects at once with a
   * TypeError naming a bad option, or later if the service is closed before a welcome.
   */
  connect(hubUrl: string | readonly string[], options: ConnectOptions = {}): Promise<ConnectedInfo> {
    if (this.#closing) return Promise.reject(new Error(`service ${this.name} is closed`));
    let dialer: Dialer;
    try {
      dialer = new Dialer(resolveConnect(hubUrl, options, this.concurrency), this.#core, this.#hooks);
    } catch (err) {
      return Promise.reject(err);
    }
    this.#dialers.add(dialer);
    dialer.start();
    return dialer.firstWelcome;
  }

  /**
   * Serves `GET /me` and the WebSocket `/ws` for a hub that dials this worker (listed with
   * `utils-hub workers add URL`); each hub connection says `hello` and waits for `welcome` just as
   * with `connect`. Resolves with the bound address once listening (port 0 picks a free port).
   */
  async listen(options: ListenOptions): Promise<ListenAddress> {
    if (this.#closing) throw new Error(`service ${this.name} is closed`);
    const listener = new Listener(resolveListen(options, this.concurrency), this.#core, this.#hooks);
    this.#listeners.add(listener);
    try {
      return await listener.listen();
    } catch (err) {
      this.#listeners.delete(listener);
      throw err;
    }
  }

  /**
   * Stops: no more dials or accepted connections, `drain` sent on every welcomed connection, tasks
   * in flight given `graceMs` (default 10000) to finish and answer, then the rest aborted with
   * `shutdown` and their answers dropped (the hub re-dispatches them), sockets and servers
   * closed. Safe to call more than once: every call returns the same promise (the first call's
   * options count). Never rejects.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.#closing ??= this.#close(options);
    return this.#closing;
  }

  async #close(options: CloseOptions): Promise<void> {
    let graceMs: number = WORKER_DEFAULTS.graceMs;
    try {
      graceMs = intOption('close', 'graceMs', options.graceMs, WORKER_DEFAULTS.graceMs, 0, MAX_TIMER_MS);
    } catch (err) {
      this.emit('error', err as Error);
    }
    for (const d of this.#dialers) d.stop();
    for (const l of this.#listeners) l.stop();
    const sessions = [...this.#sessions()];
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([Promise.all(sessions.map((s) => s.drain())), graceOver]);
    clearTimeout(timer);
    for (const s of sessions) s.dropAll('shutdown');
    await Promise.allSettled(sessions.map((s) => s.close(1000, 'worker closed')));
    await Promise.allSettled([...this.#listeners].map((l) => l.close()));
    // A dialer may have had a socket opening while we drained; stop() cut it.
    await Promise.allSettled([...this.#dialers].map((d) => d.session?.closed));
  }

  *#sessions(): Iterable<Session> {
    for (const d of this.#dialers) if (d.session) yield d.session;
    for (const l of this.#listeners) yield* l.sessions;
  }

  /** An `error` nobody listens to goes to stderr, once per distinct message. */
  protected override onUnhandledError(error: Error): void {
    const line = `${this.name}: ${error.message}`;
    if (line === this.#lastUnhandled) return;
    this.#lastUnhandled = line;
    process.stderr.write(`utils-hub worker ${line}\n`);
  }
}

/**
 * Defines a service: checks the description at once (throws HubError `bad_service_description`
 * naming the field, such as `input[1].default: expected int, got "x"`, or TypeError for a bad
 * option), and returns a Service that is not connected yet. The handler's args are typed from
 * `input` when it is declared inline or `as const`.
 */
export function defineService<const I extends readonly ArgumentSpec[]>(definition: ServiceDefinition<I>): Service {
  if (typeof definition !== 'object' || definition === null) throw new TypeError('defineService: expected a definition object');
  const { name, description, input, output, handler } = definition;
  if (typeof handler !== 'function') throw new TypeError('defineService option handler: must be a function');
  const me: Record<string, unknown> = { name, description, input };
  if (output !== undefined) me.output = output;
  checkServiceDescription(me);
  // A frozen deep copy (JSON values only, once checked): the description cannot change afterwards.
  const checked = deepFreeze(structuredClone(me)) as ServiceDescription;
  return new Service(checked, handler as unknown as RawHandler, {
    concurrency: intOption('defineService', 'concurrency', definition.concurrency, WORKER_DEFAULTS.concurrency, 1, 1024),
    progressIntervalMs: intOption('defineService', 'progressIntervalMs', definition.progressIntervalMs, WORKER_DEFAULTS.progressIntervalMs, 0, 60_000),
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
