/**
 * The page's REST calls and its client key. The key is asked for once, when the hub first
 * answers 401, and kept in localStorage; REST calls send it as `Authorization: Bearer`, the
 * client WebSocket as `?key=` (the SDK does that).
 */
import { byId } from './dom.js';

const STORAGE = 'utils-hub.key';
const listeners = new Set<(key: string | undefined) => void>();
let asking: Promise<void> | null = null;
/** The person dismissed the dialog: 401s no longer open it (the Key button still does). */
let declined = false;

/** The stored key, if any. */
export function getKey(): string | undefined {
  try {
    return localStorage.getItem(STORAGE) || undefined;
  } catch {
    return undefined; // storage blocked: no key
  }
}

function setKey(key: string | undefined): void {
  try {
    if (key) localStorage.setItem(STORAGE, key);
    else localStorage.removeItem(STORAGE);
  } catch {
    // storage blocked: the key lasts for this page only
  }
  for (const l of listeners) l(key);
}

/** Called whenever the key changes. */
export function onKeyChange(listener: (key: string | undefined) => void): void {
  listeners.add(listener);
}

/**
 * Shows the key dialog; resolves once a key was saved or the dialog was dismissed. Concurrent
 * callers share one dialog.
 */
export function askKey(reason = 'This hub requires a client key.'): Promise<void> {
  asking ??= new Promise<void>((resolve) => {
    const dialog = byId<HTMLDialogElement>('key-dialog');
    const input = byId<HTMLInputElement>('key-input');
    byId('key-reason').textContent = reason;
    input.value = getKey() ?? '';
    dialog.addEventListener(
      'close',
      () => {
        asking = null;
        declined = dialog.returnValue !== 'save';
        if (!declined) setKey(input.value.trim() || undefined);
        resolve();
      },
      { once: true },
    );
    dialog.showModal();
  });
  return asking;
}

/** An error answer of the hub: `{"error": {code, message}}` with its status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** GET `path` as JSON with the key; a 401 asks for the key once and tries again. */
export async function getJson<T>(path: string): Promise<T> {
  for (let tries = 0; ; tries++) {
    const key = getKey();
    const res = await fetch(path, { headers: key ? { authorization: `Bearer ${key}` } : {}, cache: 'no-store' });
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (res.ok) return body as T;
    const err = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (res.status === 401 && tries === 0 && !declined) {
      await askKey(key ? 'The saved client key was refused; enter another.' : 'This hub requires a client key.');
      continue;
    }
    throw new ApiError(res.status, err?.code ?? 'http_error', err?.message ?? `${res.status} ${res.statusText}`);
  }
}
