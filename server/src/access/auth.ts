/**
 * Who may connect: worker tokens, client keys and browser origins (docs/protocol.md sections 5, 5.1, 9).
 * Secrets are compared in constant time and never logged or echoed.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HubError } from '@utils-hub/protocol';
import type { HubConfig } from '../config.js';

/** What the token store can answer. */
export interface TokenLookup {
  /** The unrevoked token with this secret, or null. */
  verify(kind: 'worker' | 'client', secret: string): Promise<{ id?: number; name: string; service: string | null; admin?: boolean } | null>;
  /** How many unrevoked tokens of this kind exist. */
  count(kind: 'worker' | 'client'): Promise<number>;
}

/** What a worker's credential allows: any service, or one service by name. */
export interface WorkerGrant {
  /** The service name the token is limited to, or null for any. */
  service: string | null;
  /** How the connection was admitted, for the log (never the secret). */
  via: 'env-token' | 'db-token' | 'loopback' | 'dialed';
}

const sha = (s: string) => createHash('sha256').update(s).digest();

/**
 * A client key as the owner of tasks (docs/protocol.md, "Whose task it is"). A key of the
 * database is `key:<its row id>`, admin when made with `keys create NAME --admin`; each key of
 * `HUB_API_KEYS` is its own owner, `env:<first 16 hex digits of its SHA-256>`, never admin.
 */
export interface ClientIdentity {
  owner: string;
  admin: boolean;
}

/** Constant-time membership of `secret` in `list`. */
export function secretIn(list: readonly string[], secret: string): boolean {
  const h = sha(secret);
  let found = false;
  for (const item of list) if (timingSafeEqual(sha(item), h)) found = true;
  return found;
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/**
 * The bearer token of a request: `Authorization: Bearer X`, else the query parameter `param`
 * (null: the query is not looked at, as on REST routes, where a key in a URL would end up in
 * logs and histories).
 */
export function bearer(req: IncomingMessage | { headers: IncomingMessage['headers']; url?: string }, param: string | null): string | null {
  const h = req.headers.authorization;
  if (typeof h === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    if (m) return m[1];
  }
  if (param === null) return null;
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if (q >= 0) {
    const v = new URLSearchParams(url.slice(q + 1)).get(param);
    if (v) return v;
  }
  return null;
}

/**
 * Checks `Origin` of a WebSocket upgrade: none (a program) passes; a browser's must be the hub's
 * own (`HUB_PUBLIC_URL`, else the request's scheme and Host) or in `HUB_ALLOWED_ORIGINS`.
 */
export function originAllowed(config: Readonly<HubConfig>, headers: IncomingMessage['headers'], encrypted: boolean): boolean {
  const origin = headers.origin;
  if (origin === undefined) return true;
  if (typeof origin !== 'string') return false;
  let o: string;
  try {
    o = new URL(origin).origin;
  } catch {
    return false;
  }
  if (config.allowedOrigins.includes(o)) return true;
  if (config.publicUrl !== null) return o === config.publicUrl;
  const host = headers.host;
  if (typeof host !== 'string') return false;
  const proto = (typeof headers['x-forwarded-proto'] === 'string' ? headers['x-forwarded-proto'] : encrypted ? 'https' : 'http').split(',')[0].trim();
  return o === `${proto}://${host}`;
}

/** Checks credentials against the environment and the database, caching the database's answers briefly. */
/**
 * A count read from the database at most once per `ttlMs`. A stale value is answered at once while
 * a fresh one is read in the background, and kept when the database fails, so that requests never
 * wait on the database for it (and keep working while it is away).
 */
class CachedCount {
  private value: number | null = null;
  private until = 0;
  private reading: Promise<number> | null = null;

  constructor(
    private readonly read: () => Promise<number>,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {}

  async get(): Promise<number> {
    if (this.value !== null && this.until > this.now()) return this.value;
    const refresh = (this.reading ??= this.read()
      .then((v) => {
        this.value = v;
        this.until = this.now() + this.ttlMs;
        return v;
      })
      .finally(() => {
        this.reading = null;
      }));
    if (this.value !== null) {
      refresh.catch(() => undefined);
      return this.value;
    }
    return refresh;
  }
}

export class Gatekeeper {
  private readonly clientCount: CachedCount;
  private readonly workerCount: CachedCount;
  private readonly clientOk = new Map<string, { until: number; who: ClientIdentity }>();

  constructor(
    private readonly config: Readonly<HubConfig>,
    private readonly tokens: TokenLookup,
    private readonly now: () => number = Date.now,
  ) {
    this.clientCount = new CachedCount(() => tokens.count('client'), 1000, now);
    this.workerCount = new CachedCount(() => tokens.count('worker'), 1000, now);
  }

  /**
   * Admits a worker that dialed the hub, for the service `serviceName`. Throws `unauthorized`
   * (no valid token) or `forbidden` (a token made for another service).
   */
  async worker(token: string | null, remoteAddress: string | undefined, serviceName: string): Promise<WorkerGrant> {
    if (token !== null) {
      if (secretIn(this.config.workerTokens, token)) return { service: null, via: 'env-token' };
      const row = await this.tokens.verify('worker', token);
      if (row) {
        if (row.service !== null && row.service !== serviceName) {
          throw new HubError('forbidden', `this token is for service "${row.service}", not "${serviceName}"`);
        }
        return { service: row.service, via: 'db-token' };
      }
    }
    const anyToken = this.config.workerTokens.length > 0 || (await this.workerCount.get()) > 0;
    if (!anyToken && isLoopback(remoteAddress)) return { service: null, via: 'loopback' };
    throw new HubError('unauthorized', anyToken ? 'a valid worker token is required' : 'no worker token exists: only loopback connections are admitted');
  }

  /**
   * The check at the upgrade to `/worker` (docs/protocol.md section 5.1, "Admission"): a token
   * that exists (in the environment or unrevoked in the database), or no token at all from
   * loopback while none exists. Throws `unauthorized` (HTTP 401) before any frame is read. The token's service scope
   * is checked at `hello` by `worker()`, which knows the service.
   */
  async workerUpgrade(token: string | null, remoteAddress: string | undefined): Promise<void> {
    if (token !== null) {
      if (secretIn(this.config.workerTokens, token)) return;
      if (await this.tokens.verify('worker', token)) return;
    }
    const anyToken = this.config.workerTokens.length > 0 || (await this.workerCount.get()) > 0;
    if (!anyToken && isLoopback(remoteAddress)) return;
    throw new HubError('unauthorized', anyToken ? 'a valid worker token is required' : 'no worker token exists: only loopback connections are admitted');
  }

  /** True when client keys are required (HUB_API_KEYS set or keys in the database). */
  async clientKeysRequired(): Promise<boolean> {
    if (this.config.apiKeys.length > 0) return true;
    return (await this.clientCount.get()) > 0;
  }

  /**
   * Who `key` is: null when no key is required; throws `unauthorized` unless `key` is a valid
   * client key.
   */
  async client(key: string | null): Promise<ClientIdentity | null> {
    if (!(await this.clientKeysRequired())) return null;
    if (key === null) throw new HubError('unauthorized', 'a client key is required: Authorization: Bearer <key>');
    if (secretIn(this.config.apiKeys, key)) return { owner: `env:${sha(key).toString('hex').slice(0, 16)}`, admin: false };
    const t = this.now();
    const cached = this.clientOk.get(key);
    if (cached !== undefined && cached.until > t) return cached.who;
    const row = await this.tokens.verify('client', key);
    if (!row) throw new HubError('unauthorized', 'the client key is not valid');
    const who: ClientIdentity = { owner: `key:${row.id ?? row.name}`, admin: row.admin === true };
    if (this.clientOk.size > 10_000) this.clientOk.clear();
    // A revoked key stops working within this cache's lifetime (2 s).
    this.clientOk.set(key, { until: t + 2000, who });
    return who;
  }
}
