/**
 * Options of `defineService`, `connect`, `listen` and `close`: one `defaults` object, merged and
 * checked once (a TypeError names the option), then frozen.
 */
import { hostname } from 'node:os';
import { MAX_TIMER_MS } from '@utils-hub/protocol';

/** The defaults of every option of the worker SDK. */
export const WORKER_DEFAULTS = Object.freeze({
  /** Tasks one connection takes at once. */
  concurrency: 1,
  /** Least delay before redialing the hub, in ms. */
  minDelayMs: 500,
  /** Greatest delay before redialing the hub, in ms. */
  maxDelayMs: 30_000,
  /** How long a connection may wait for `welcome` after its `hello`, in ms. */
  handshakeTimeoutMs: 10_000,
  /** Least time between two progress messages of one task, in ms. */
  progressIntervalMs: 50,
  /** Largest message (frame, or attachments of one message) accepted from the hub, in bytes: 128 MiB. */
  maxMessageBytes: 134_217_728,
  /** How long `close()` lets tasks in flight finish, in ms. */
  graceMs: 10_000,
  /** The address `listen()` binds. */
  host: '127.0.0.1',
});

/** Largest delay setTimeout takes, in ms (the protocol's limit, re-exported for this package's modules). */
export { MAX_TIMER_MS };

/** The instance name announced when none is given: `hostname-pid`. */
export function defaultInstance(): string {
  return `${hostname()}-${process.pid}`.slice(0, 256);
}

/** What every connection of a service announces and how it behaves. */
export interface ConnectionOptions {
  /** Tasks this connection takes at once, 1 to 1024. Default: the service's `concurrency` (1). */
  concurrency?: number;
  /** The name this worker process announces (seen in the hub's operator views), 1 to 256 characters. Default `hostname-pid`. */
  instance?: string;
  /** How long to wait for `welcome` after `hello`, in ms. Default 10000. */
  handshakeTimeoutMs?: number;
  /** Largest message accepted from the hub, in bytes. Default 134217728 (128 MiB). */
  maxMessageBytes?: number;
}

/** Options of `service.connect(hubUrl, options)`. */
export interface ConnectOptions extends ConnectionOptions {
  /** Worker token, sent as `Authorization: Bearer <token>`. Default: none (a hub without tokens admits loopback workers). */
  token?: string;
  /** Least delay before redialing, in ms. Default 500. */
  minDelayMs?: number;
  /** Greatest delay before redialing, in ms: the delay doubles from `minDelayMs` up to it, with jitter. Default 30000. */
  maxDelayMs?: number;
}

/** Options of `service.listen(options)`. */
export interface ListenOptions extends ConnectionOptions {
  /** The address to bind. Default `127.0.0.1` (use `0.0.0.0` for a hub on another machine). */
  host?: string;
  /** The port to bind; 0 picks a free one. */
  port: number;
  /**
   * When set, `GET /me` and the WebSocket upgrade at `/ws` need `Authorization: Bearer <secret>`
   * (the hub's `HUB_DIAL_SECRET`); anything else is answered 401. Default: none (open).
   */
  secret?: string;
}

/** Options of `service.close(options)`. */
export interface CloseOptions {
  /** How long tasks in flight may go on before their signals fire with `shutdown`, in ms. Default 10000. */
  graceMs?: number;
}

/** ConnectionOptions merged and checked. */
export interface ResolvedConnectionOptions {
  readonly concurrency: number;
  readonly instance: string;
  readonly handshakeTimeoutMs: number;
  readonly maxMessageBytes: number;
}

function fail(where: string, option: string, problem: string): never {
  throw new TypeError(`${where} option ${option}: ${problem}`);
}

/** Checks a whole number from `min` to `max`; undefined gives `fallback`. */
export function intOption(where: string, option: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(where, option, `must be a whole number from ${min} to ${max}, got ${typeof value === 'number' ? value : typeof value}`);
  }
  return value;
}

/** Checks an optional string of 1 (0 with `allowEmpty`) to `max` characters. */
export function stringOption(where: string, option: string, value: unknown, max: number, allowEmpty = false): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length > max || (!allowEmpty && value.length === 0)) {
    fail(where, option, `must be a ${allowEmpty ? '' : 'non-empty '}string of at most ${max} characters`);
  }
  return value;
}

/** Merges and checks the options every connection takes. */
export function resolveConnection(where: string, o: ConnectionOptions, serviceConcurrency: number): ResolvedConnectionOptions {
  return {
    concurrency: intOption(where, 'concurrency', o.concurrency, serviceConcurrency, 1, 1024),
    instance: stringOption(where, 'instance', o.instance, 256) ?? defaultInstance(),
    handshakeTimeoutMs: intOption(where, 'handshakeTimeoutMs', o.handshakeTimeoutMs, WORKER_DEFAULTS.handshakeTimeoutMs, 1, MAX_TIMER_MS),
    maxMessageBytes: intOption(where, 'maxMessageBytes', o.maxMessageBytes, WORKER_DEFAULTS.maxMessageBytes, 1024, 2 ** 32),
  };
}

/** ConnectOptions merged and checked. */
export interface ResolvedConnectOptions extends ResolvedConnectionOptions {
  /** The first hub's `/worker` URL, `ws:` or `wss:`. */
  readonly url: string;
  /** Every hub's `/worker` URL, in the order they are tried (a cluster's hubs; one for a hub alone). */
  readonly urls: readonly string[];
  readonly token: string | undefined;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
}

/** One hub URL checked: `ws://` or `wss://` (`http(s)://` is turned into it). */
function workerUrl(where: string, hubUrl: unknown): string {
  let u: URL;
  try {
    u = new URL(String(hubUrl));
  } catch {
    return fail(where, 'hubUrl', `not a URL: ${JSON.stringify(String(hubUrl).slice(0, 100))}`);
  }
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') fail(where, 'hubUrl', `must be a ws:// or wss:// URL (the hub's /worker), got ${u.protocol}`);
  return u.href;
}

/**
 * Checks the hub URL, or the URLs of several hubs of a cluster (each `ws://` or `wss://`;
 * `http(s)://` is turned into it), and the options of `connect`.
 */
export function resolveConnect(hubUrl: unknown, o: ConnectOptions, serviceConcurrency: number): ResolvedConnectOptions {
  const where = 'connect';
  if (typeof o !== 'object' || o === null) fail(where, 'options', 'must be an object');
  if (Array.isArray(hubUrl) && hubUrl.length === 0) fail(where, 'hubUrl', 'an empty list: give at least one hub URL');
  const urls = (Array.isArray(hubUrl) ? hubUrl : [hubUrl]).map((u) => workerUrl(where, u));
  const minDelayMs = intOption(where, 'minDelayMs', o.minDelayMs, WORKER_DEFAULTS.minDelayMs, 1, MAX_TIMER_MS);
  const maxDelayMs = intOption(where, 'maxDelayMs', o.maxDelayMs, Math.max(WORKER_DEFAULTS.maxDelayMs, minDelayMs), 1, MAX_TIMER_MS);
  if (maxDelayMs < minDelayMs) fail(where, 'maxDelayMs', `must not be less than minDelayMs (${minDelayMs}), got ${maxDelayMs}`);
  return Object.freeze({
    ...resolveConnection(where, o, serviceConcurrency),
    url: urls[0],
    urls: Object.freeze(urls),
    token: stringOption(where, 'token', o.token, 4096),
    minDelayMs,
    maxDelayMs,
  });
}

/** ListenOptions merged and checked. */
export interface ResolvedListenOptions extends ResolvedConnectionOptions {
  readonly host: string;
  readonly port: number;
  readonly secret: string | undefined;
}

/** Checks the options of `listen`. */
export function resolveListen(o: ListenOptions, serviceConcurrency: number): ResolvedListenOptions {
  const where = 'listen';
  if (typeof o !== 'object' || o === null) fail(where, 'options', 'must be an object with a port');
  if (o.port === undefined) fail(where, 'port', 'is required (0 picks a free port)');
  return Object.freeze({
    ...resolveConnection(where, o, serviceConcurrency),
    host: stringOption(where, 'host', o.host, 255) ?? WORKER_DEFAULTS.host,
    port: intOption(where, 'port', o.port, 0, 0, 65_535),
    secret: stringOption(where, 'secret', o.secret, 4096),
  });
}
