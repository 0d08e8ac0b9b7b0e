/**
 * The WebSocket the SDK runs on: the runtime's own (`globalThis.WebSocket`, in browsers and
 * Node 22+), else the `ws` package, imported only then so that a browser bundle never needs it.
 * Only the standard browser interface is used, which `ws` implements too.
 */

/** The part of the standard WebSocket interface that the SDK uses. */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  // biome-ignore lint/suspicious/noExplicitAny: the DOM's and ws's event objects differ; each listener reads the fields it needs
  addEventListener(type: 'open' | 'close' | 'error' | 'message', listener: (event: any) => void): void;
}

/** A WebSocket class: `new WebSocket(url)`. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Extras of the `ws` package, used when they are there: its ping events and a hard cut. */
export interface WsExtras {
  on(event: 'ping', listener: () => void): unknown;
  terminate(): void;
}

/** `readyState` of an open socket. */
export const OPEN = 1;

/** True when `sock` has the extras of the `ws` package. */
export function hasWsExtras(sock: WebSocketLike): sock is WebSocketLike & WsExtras {
  const s = sock as Partial<WsExtras>;
  return typeof s.on === 'function' && typeof s.terminate === 'function';
}

let wsModule: Promise<WebSocketConstructor> | undefined;

/**
 * The WebSocket class to use: `given`, else `globalThis.WebSocket`, else the `ws` package
 * (imported once, on first use).
 */
export function loadWebSocket(given?: WebSocketConstructor): Promise<WebSocketConstructor> {
  if (given) return Promise.resolve(given);
  const native = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof native === 'function') return Promise.resolve(native);
  // A variable specifier keeps bundlers from pulling `ws` into a browser build.
  const specifier = 'ws';
  wsModule ??= import(specifier).then((m: { WebSocket?: WebSocketConstructor; default?: WebSocketConstructor }) => {
    const ctor = m.WebSocket ?? m.default;
    if (typeof ctor !== 'function') throw new Error('the "ws" package did not export a WebSocket class');
    return ctor;
  });
  return wsModule;
}

/**
 * The HTTP status of a refused upgrade when the socket library says it (`ws` does in its error
 * message, "Unexpected server response: 401"); browsers never do.
 */
export function refusedStatus(err: unknown): number | undefined {
  const message = (err as { message?: unknown })?.message;
  if (typeof message !== 'string') return undefined;
  const m = /Unexpected server response: (\d{3})/.exec(message);
  return m ? Number(m[1]) : undefined;
}
