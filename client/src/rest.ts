/**
 * The REST calls the SDK makes (docs/protocol.md section 2), with the client key as a bearer token and
 * error bodies turned into HubErrors.
 */
import { ERROR_STATUS, HubError, type ErrorCode } from '@utils-hub/protocol/errors';
import type { FetchLike, ResolvedOptions } from './options.js';

/** The code of a status when the body does not give one (a proxy's page, say). */
function codeOfStatus(status: number): ErrorCode {
  const generic: Record<number, ErrorCode> = { 400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found' };
  if (generic[status]) return generic[status];
  const found = (Object.keys(ERROR_STATUS) as ErrorCode[]).find((c) => ERROR_STATUS[c] === status);
  return found ?? 'internal';
}

/**
 * GETs `path` (such as `/services_list`) from the hub and returns its JSON body. Rejects with the
 * HubError of an error body (`{"error": {code, message}}`), else one made from the status;
 * `timeout` past `requestTimeoutMs`. `httpBase`: the hub asked (default the first one).
 */
export async function restGet(options: ResolvedOptions, path: string, httpBase = options.httpBase): Promise<unknown> {
  const fetchFn: FetchLike | undefined = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
  if (!fetchFn) throw new HubError('internal', 'this runtime has no fetch; give the fetch option');
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), options.requestTimeoutMs);
  let status: number;
  let text: string;
  try {
    const res = await fetchFn(`${httpBase}${path}`, { method: 'GET', headers, signal: abort.signal });
    status = res.status;
    text = await res.text();
    if (res.ok) return JSON.parse(text);
  } catch (err) {
    if (abort.signal.aborted) throw new HubError('timeout', `the hub did not answer GET ${path} within ${options.requestTimeoutMs} ms`);
    if (err instanceof SyntaxError) throw new HubError('internal', `the hub answered GET ${path} with a body that is not JSON`);
    // Node's fetch says only "fetch failed"; the reason (ECONNREFUSED, a DNS failure) is its cause.
    const cause = (err as { cause?: { message?: unknown } })?.cause?.message;
    const why = `${(err as Error)?.message ?? String(err)}${typeof cause === 'string' && cause ? ` (${cause})` : ''}`;
    throw new HubError('internal', `GET ${path} failed: ${why}`);
  } finally {
    clearTimeout(timer);
  }
  let error: unknown;
  try {
    error = (JSON.parse(text) as { error?: unknown })?.error;
  } catch {
    // Not our body: the status alone says what happened.
  }
  if (typeof (error as { code?: unknown })?.code === 'string') throw HubError.from(error);
  throw new HubError(codeOfStatus(status), `GET ${path} answered ${status}`);
}
