/**
 * The hub's options (PROTOCOL.md section 9): one `defaults` object, merged with the environment
 * and the command line once at start, checked with errors that name the option, then frozen.
 */

/** Every option of the hub. Durations in milliseconds, sizes in bytes. */
export interface HubConfig {
  /** Address to listen on. Env `HUB_HOST`, flag `--host`. @defaultValue `127.0.0.1` */
  host: string;
  /** Port to listen on (0: any free port). Env `HUB_PORT`, flag `--port`. @defaultValue 8080 */
  port: number;
  /** Database URL: `sqlite:PATH` or `mysql://user:pass@host:port/db`. Env `HUB_DB`, flag `--db`. @defaultValue `sqlite:./data/hub.sqlite` */
  db: string;
  /** Worker tokens good for any service. Env `HUB_WORKER_TOKENS` (comma-separated). @defaultValue none */
  workerTokens: readonly string[];
  /** Secret the hub presents to the workers it dials. Env `HUB_DIAL_SECRET`. @defaultValue none */
  dialSecret: string | null;
  /** Client keys; when any exists (here or in the database) REST and `/client` need one. Env `HUB_API_KEYS`. @defaultValue none */
  apiKeys: readonly string[];
  /** Origins besides the hub's own that browsers may open `/client` and `/worker` from. Env `HUB_ALLOWED_ORIGINS`. @defaultValue none */
  allowedOrigins: readonly string[];
  /** Default run deadline of a task attempt. Env `HUB_TASK_TIMEOUT_MS`. @defaultValue 300000 */
  taskTimeoutMs: number;
  /** Largest `timeout_ms` a client may ask for. Env `HUB_MAX_TASK_TIMEOUT_MS`. @defaultValue 3600000 */
  maxTaskTimeoutMs: number;
  /** Default bound of a wait in a service's queue. Env `HUB_QUEUE_TIMEOUT_MS`. @defaultValue 30000 */
  queueTimeoutMs: number;
  /** Most tasks waiting in one service's queue. Env `HUB_QUEUE_LIMIT`. @defaultValue 10000 */
  queueLimit: number;
  /** Most attempts of one task when connections are lost. Env `HUB_MAX_ATTEMPTS`. @defaultValue 2 */
  maxAttempts: number;
  /** Largest WebSocket frame and REST body. Env `HUB_MAX_MESSAGE_BYTES`. @defaultValue 33554432 */
  maxMessageBytes: number;
  /** Interval of WebSocket pings. Env `HUB_HEARTBEAT_MS`. @defaultValue 15000 */
  heartbeatMs: number;
  /** How long an ended task stays readable. Env `HUB_RESULT_TTL_MS`. @defaultValue 3600000 */
  resultTtlMs: number;
  /** pino level: fatal, error, warn, info, debug, trace or silent. Env `HUB_LOG_LEVEL`. @defaultValue `info` */
  logLevel: string;
  /** How long running tasks may go on after SIGINT/SIGTERM. Env `HUB_SHUTDOWN_GRACE_MS`. @defaultValue 10000 */
  shutdownGraceMs: number;
  /** The hub's own origin behind a proxy, e.g. `https://hub.example.org`. Env `HUB_PUBLIC_URL`. @defaultValue none */
  publicUrl: string | null;
  /** Requests per second (and burst) per client key or address, over REST and client WebSocket requests; 0: no limit. Env `HUB_RATE_LIMIT`. @defaultValue 0 */
  rateLimit: number;
  /** Deadline of the worker's `hello`. @defaultValue 10000 */
  helloTimeoutMs: number;
  /** How long a slot stays taken after a timeout or cancel, unless the worker answers. @defaultValue 10000 */
  cancelGraceMs: number;
  /** How often the dialer re-reads the `workers` table. @defaultValue 2000 */
  dialerPollMs: number;
  /** Smallest and largest redial delay of the dialer. @defaultValue 500 / 30000 */
  dialMinDelayMs: number;
  dialMaxDelayMs: number;
  /** Ended tasks kept in memory for fast reads (older ones are read from the database). @defaultValue 10000 */
  endedCacheSize: number;
  /** Bytes of end frames and media those ended tasks may hold in memory (the newest is kept whatever its size). @defaultValue 67108864 (64 MiB) */
  endedCacheBytes: number;
  /** Bytes of task rows waiting for the database above which the hub stops reading from workers until the store is down to half of it. @defaultValue 67108864 (64 MiB) */
  storeBacklogBytes: number;
  /** A connection whose unsent bytes exceed this is closed (1013) so one slow reader cannot grow the hub's memory. @defaultValue 4 x maxMessageBytes */
  maxBufferedBytes: number;
  /** NATS URL(s), comma-separated: makes this hub a member of a cluster (docs/cluster.md); needs a MySQL/MariaDB `db`. Env `HUB_BROKER`, flag `--broker`. @defaultValue none: one hub alone */
  broker: string | null;
  /** The cluster's name; every NATS subject, stream and bucket it uses starts with it. Env `HUB_CLUSTER`, flag `--cluster`. @defaultValue `utils-hub` */
  cluster: string;
  /** This hub's name in logs, metrics, `/healthz` and the operator page. Env `HUB_ID`. @defaultValue random at each start */
  hubId: string | null;
}

/** The defaults of every option. */
export const defaults: Readonly<HubConfig> = Object.freeze({
  host: '127.0.0.1',
  port: 8080,
  db: 'sqlite:./data/hub.sqlite',
  workerTokens: [],
  dialSecret: null,
  apiKeys: [],
  allowedOrigins: [],
  taskTimeoutMs: 300_000,
  maxTaskTimeoutMs: 3_600_000,
  queueTimeoutMs: 30_000,
  queueLimit: 10_000,
  maxAttempts: 2,
  maxMessageBytes: 33_554_432,
  heartbeatMs: 15_000,
  resultTtlMs: 3_600_000,
  logLevel: 'info',
  shutdownGraceMs: 10_000,
  publicUrl: null,
  rateLimit: 0,
  helloTimeoutMs: 10_000,
  cancelGraceMs: 10_000,
  dialerPollMs: 2_000,
  dialMinDelayMs: 500,
  dialMaxDelayMs: 30_000,
  endedCacheSize: 10_000,
  endedCacheBytes: 64 * 1024 * 1024,
  storeBacklogBytes: 64 * 1024 * 1024,
  maxBufferedBytes: 4 * 33_554_432,
  broker: null,
  cluster: 'utils-hub',
  hubId: null,
});

/** An option that cannot be used; its message names the option. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const ENV: Partial<Record<keyof HubConfig, string>> = {
  host: 'HUB_HOST',
  port: 'HUB_PORT',
  db: 'HUB_DB',
  workerTokens: 'HUB_WORKER_TOKENS',
  dialSecret: 'HUB_DIAL_SECRET',
  apiKeys: 'HUB_API_KEYS',
  allowedOrigins: 'HUB_ALLOWED_ORIGINS',
  taskTimeoutMs: 'HUB_TASK_TIMEOUT_MS',
  maxTaskTimeoutMs: 'HUB_MAX_TASK_TIMEOUT_MS',
  queueTimeoutMs: 'HUB_QUEUE_TIMEOUT_MS',
  queueLimit: 'HUB_QUEUE_LIMIT',
  maxAttempts: 'HUB_MAX_ATTEMPTS',
  maxMessageBytes: 'HUB_MAX_MESSAGE_BYTES',
  heartbeatMs: 'HUB_HEARTBEAT_MS',
  resultTtlMs: 'HUB_RESULT_TTL_MS',
  logLevel: 'HUB_LOG_LEVEL',
  shutdownGraceMs: 'HUB_SHUTDOWN_GRACE_MS',
  publicUrl: 'HUB_PUBLIC_URL',
  rateLimit: 'HUB_RATE_LIMIT',
  broker: 'HUB_BROKER',
  cluster: 'HUB_CLUSTER',
  hubId: 'HUB_ID',
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Integer options with their allowed ranges. */
const INTS: Partial<Record<keyof HubConfig, [number, number]>> = {
  port: [0, 65535],
  taskTimeoutMs: [1, 2 ** 31 - 1],
  maxTaskTimeoutMs: [1, 2 ** 31 - 1],
  queueTimeoutMs: [0, 2 ** 31 - 1],
  queueLimit: [0, 10_000_000],
  maxAttempts: [1, 100],
  maxMessageBytes: [1024, 2 ** 31 - 1],
  heartbeatMs: [10, 2 ** 31 - 1],
  resultTtlMs: [0, 2 ** 40],
  shutdownGraceMs: [0, 2 ** 31 - 1],
  rateLimit: [0, 1_000_000],
  helloTimeoutMs: [1, 2 ** 31 - 1],
  cancelGraceMs: [0, 2 ** 31 - 1],
  dialerPollMs: [10, 2 ** 31 - 1],
  dialMinDelayMs: [1, 2 ** 31 - 1],
  dialMaxDelayMs: [1, 2 ** 31 - 1],
  endedCacheSize: [0, 10_000_000],
  endedCacheBytes: [0, 2 ** 40],
  storeBacklogBytes: [1, 2 ** 40],
  maxBufferedBytes: [1024, 2 ** 40],
};
const LISTS = new Set<keyof HubConfig>(['workerTokens', 'apiKeys', 'allowedOrigins']);
const NULLABLE = new Set<keyof HubConfig>(['dialSecret', 'publicUrl', 'broker', 'hubId']);

function list(value: string): string[] {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

function origin(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name}: expected an http(s) URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${name}: expected an http(s) URL, got ${JSON.stringify(value)}`);
  }
  return url.origin;
}

/**
 * Builds the hub's options: `defaults`, then `env` (strings, as in process.env), then `overrides`
 * (flags or code). Throws ConfigError naming the first bad option. The result is frozen.
 */
export function loadConfig(env: Record<string, string | undefined> = {}, overrides: Partial<HubConfig> = {}): Readonly<HubConfig> {
  const out: Record<string, unknown> = { ...defaults };
  for (const [key, envName] of Object.entries(ENV) as [keyof HubConfig, string][]) {
    const raw = env[envName];
    if (raw === undefined || raw === '') continue;
    out[key] = fromString(key, envName, raw);
  }
  let bufferedSet = env.HUB_MAX_BUFFERED_BYTES !== undefined;
  for (const [key, value] of Object.entries(overrides) as [keyof HubConfig, unknown][]) {
    if (value === undefined) continue;
    if (!(key in defaults)) throw new ConfigError(`${key}: not an option of the hub`);
    if (key === 'maxBufferedBytes') bufferedSet = true;
    out[key] = typeof value === 'string' && !LISTS.has(key) && !NULLABLE.has(key) && key in INTS ? fromString(key, `--${key}`, value) : value;
  }
  if (!bufferedSet) out.maxBufferedBytes = 4 * (out.maxMessageBytes as number);
  return check(out as unknown as HubConfig);
}

function fromString(key: keyof HubConfig, name: string, raw: string): unknown {
  if (LISTS.has(key)) return list(raw);
  if (key in INTS) {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name}: expected an integer, got ${JSON.stringify(raw)}`);
    return Number(raw.trim());
  }
  return raw;
}

function check(c: HubConfig): Readonly<HubConfig> {
  const name = (k: keyof HubConfig) => ENV[k] ?? k;
  for (const [key, [min, max]] of Object.entries(INTS) as [keyof HubConfig, [number, number]][]) {
    const v = c[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ConfigError(`${name(key)}: expected an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
  }
  if (typeof c.host !== 'string' || c.host === '') throw new ConfigError(`HUB_HOST: expected a host name or address`);
  if (typeof c.db !== 'string' || !(c.db.startsWith('sqlite:') || /^mysql2?:\/\//.test(c.db))) {
    throw new ConfigError(`HUB_DB: expected sqlite:PATH or mysql://user:pass@host:port/db, got ${JSON.stringify(c.db)}`);
  }
  if (!LOG_LEVELS.includes(c.logLevel)) {
    throw new ConfigError(`HUB_LOG_LEVEL: expected one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(c.logLevel)}`);
  }
  if (c.taskTimeoutMs > c.maxTaskTimeoutMs) {
    throw new ConfigError(`HUB_TASK_TIMEOUT_MS: must not exceed HUB_MAX_TASK_TIMEOUT_MS (${c.maxTaskTimeoutMs})`);
  }
  if (c.dialMinDelayMs > c.dialMaxDelayMs) throw new ConfigError('dialMinDelayMs: must not exceed dialMaxDelayMs');
  for (const key of LISTS) {
    const v = c[key] as unknown;
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string' || s === '')) {
      throw new ConfigError(`${name(key)}: expected a comma-separated list of non-empty strings`);
    }
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(c.cluster)) {
    throw new ConfigError(`HUB_CLUSTER: expected 1 to 64 letters, digits, "-" or "_" (it is part of NATS subjects and bucket names), got ${JSON.stringify(c.cluster)}`);
  }
  if (c.hubId !== null && !/^[A-Za-z0-9_-]{1,64}$/.test(c.hubId)) {
    throw new ConfigError(`HUB_ID: expected 1 to 64 letters, digits, "-" or "_", got ${JSON.stringify(c.hubId)}`);
  }
  if (c.broker !== null) {
    for (const u of c.broker.split(',')) {
      if (!/^(nats|tls):\/\/[^\s/]+$/.test(u.trim())) throw new ConfigError(`HUB_BROKER: expected nats://host:port (comma-separated for several), got ${JSON.stringify(u.trim())}`);
    }
    if (!/^mysql2?:\/\//.test(c.db)) {
      throw new ConfigError('HUB_DB: cluster mode (HUB_BROKER) needs a MySQL/MariaDB database: every hub must read the rows the others write, and a SQLite file belongs to one process on one machine');
    }
  }
  const allowedOrigins = c.allowedOrigins.map((o) => origin('HUB_ALLOWED_ORIGINS', o));
  const publicUrl = c.publicUrl === null ? null : origin('HUB_PUBLIC_URL', c.publicUrl);
  return Object.freeze({
    ...c,
    workerTokens: Object.freeze([...c.workerTokens]),
    apiKeys: Object.freeze([...c.apiKeys]),
    allowedOrigins: Object.freeze(allowedOrigins),
    publicUrl,
  });
}
