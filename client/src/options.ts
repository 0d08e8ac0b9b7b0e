/**
 * Options of HubClient: one `defaults` object, merged and checked once, then frozen; and the
 * hub's endpoints derived from its base URL.
 */
import type { WebSocketConstructor } from './socket.js';

/** The `fetch` the SDK needs (the global one by default). */
export type FetchLike = (
  input: string,
  init?: { method?: string; headers?: Record<string, string>; signal?: AbortSignal },
) => Promise<{
  ok: boolean;
  status: number;
  text(): Promise<string>;
}>;

/** Options of `new HubClient(url, options)`. */
export interface HubClientOptions {
  /** Client key: sent as `?key=` on the WebSocket upgrade and `Authorization: Bearer` on REST. Default: none. */
  key?: string;
  /**
   * The WebSocket class to use. Default: `globalThis.WebSocket` (browsers, Node 22+), else the
   * `ws` package, imported on first use.
   */
  WebSocket?: WebSocketConstructor;
  /** The fetch function for REST calls. Default: `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Least delay before reconnecting, in ms. Default 500. */
  minDelayMs?: number;
  /** Greatest delay before reconnecting, in ms (the delay doubles from `minDelayMs` up to it, with jitter). Default 30000. */
  maxDelayMs?: number;
  /** How long a submission or request made while disconnected waits for the connection, in ms. Default 30000. */
  connectTimeoutMs?: number;
  /** How long a `serviceInfo` or REST call waits for its answer, in ms. Default 30000. */
  requestTimeoutMs?: number;
  /**
   * With the `ws` package (Node): a connection that receives nothing, not even the hub's ping,
   * for this long is cut and redialed, in ms; 0 turns it off. Browsers keep their own watch.
   * Default 45000 (three of the hub's 15 s heartbeats).
   */
  idleTimeoutMs?: number;
}

/** The defaults of HubClientOptions. */
export const HUB_CLIENT_DEFAULTS = Object.freeze({
  minDelayMs: 500,
  maxDelayMs: 30_000,
  connectTimeoutMs: 30_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 45_000,
});

/** The options of a client (`HubClient.options`): merged over the defaults, checked, frozen; each as in HubClientOptions. */
export interface ResolvedOptions {
  readonly key: string | undefined;
  readonly WebSocket: WebSocketConstructor | undefined;
  readonly fetch: FetchLike | undefined;
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly connectTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** The first hub's REST base, without a trailing slash: `https://hub.example/prefix`. */
  readonly httpBase: string;
  /** The first hub's client WebSocket URL, with `?key=` when a key is set. */
  readonly wsUrl: string;
  /** Every hub's endpoints, in the order they are tried (the hubs of a cluster; one for a hub alone). */
  readonly hubs: ReadonlyArray<HubEndpoints>;
}

/** The endpoints of one hub. */
export interface HubEndpoints {
  /** REST base, without a trailing slash. */
  readonly httpBase: string;
  /** Client WebSocket URL, with `?key=` when a key is set. */
  readonly wsUrl: string;
}

function fail(option: string, problem: string): never {
  throw new TypeError(`HubClient option ${option}: ${problem}`);
}

/**
 * Derives the endpoints from the hub's base URL: `http(s)://host[:port][/prefix]` (a `ws(s)://`
 * URL is taken too; a trailing `/client` is dropped). Throws TypeError for anything else.
 */
export function hubEndpoints(url: string, key?: string): HubEndpoints {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return fail('url', `not a URL: ${JSON.stringify(String(url).slice(0, 100))}`);
  }
  const scheme = { 'http:': 'http:', 'https:': 'https:', 'ws:': 'http:', 'wss:': 'https:' }[u.protocol];
  if (!scheme) fail('url', `expected an http(s) URL, got ${u.protocol}`);
  const path = u.pathname.replace(/\/+$/, '').replace(/\/client$/, '');
  const httpBase = `${scheme}//${u.host}${path}`;
  const ws = new URL(`${scheme === 'https:' ? 'wss:' : 'ws:'}//${u.host}${path}/client`);
  if (key !== undefined) ws.searchParams.set('key', key);
  return { httpBase, wsUrl: ws.toString() };
}

/**
 * Merges `options` over the defaults, checks every one, and freezes the result. `url` is one hub's
 * base URL or a list of them (the hubs of a cluster).
 */
export function resolveOptions(url: string | readonly string[], options: HubClientOptions = {}): ResolvedOptions {
  const o = { ...HUB_CLIENT_DEFAULTS, ...options };
  for (const name of ['minDelayMs', 'maxDelayMs', 'connectTimeoutMs', 'requestTimeoutMs', 'idleTimeoutMs'] as const) {
    const v = o[name];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(name, `expected a number of ms, 0 or more, got ${String(v)}`);
  }
  if (o.minDelayMs > o.maxDelayMs) fail('maxDelayMs', `must not be less than minDelayMs (${o.minDelayMs}), got ${o.maxDelayMs}`);
  if (o.key !== undefined && (typeof o.key !== 'string' || o.key.length === 0)) fail('key', 'expected a non-empty string');
  if (o.WebSocket !== undefined && typeof o.WebSocket !== 'function') fail('WebSocket', 'expected a WebSocket class');
  if (o.fetch !== undefined && typeof o.fetch !== 'function') fail('fetch', 'expected a function');
  if (Array.isArray(url) && url.length === 0) fail('url', 'an empty list: give at least one hub URL');
  const hubs = Object.freeze((Array.isArray(url) ? url : [url]).map((u: string) => Object.freeze(hubEndpoints(u, o.key))));
  return Object.freeze({
    key: o.key,
    WebSocket: o.WebSocket,
    fetch: o.fetch,
    minDelayMs: o.minDelayMs,
    maxDelayMs: o.maxDelayMs,
    connectTimeoutMs: o.connectTimeoutMs,
    requestTimeoutMs: o.requestTimeoutMs,
    idleTimeoutMs: o.idleTimeoutMs,
    httpBase: hubs[0].httpBase,
    wsUrl: hubs[0].wsUrl,
    hubs,
  });
}
