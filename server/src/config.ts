/**
 * The hub's options (docs/protocol.md section 9), each declared once, in {@link HubConfigSchema}:
 * a TypeBox schema whose entries carry the option's environment variable, flag, default, bounds
 * and one line of meaning. From it come the type {@link HubConfig}, the checks (their messages
 * name the option), `utils-hub start --help` ({@link startHelp}) and the README's configuration
 * table ({@link configTable}, written by `npm run docs:config`; a test compares them).
 *
 * Options are read once at start (defaults, then the environment, then flags or code), checked,
 * then frozen. Nothing else in the hub reads `process.env`.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/** What an option's schema carries besides its type, bounds and default. */
interface OptionMeta {
  /** The environment variable that sets it; none for options given in code only. */
  env?: string;
  /** The flag of `utils-hub start` that sets it (wins over `env`), e.g. `--port`. */
  flag?: string;
  /** The flag's value in the usage line, e.g. `P`. */
  flagArg?: string;
  /** One line of meaning (markdown: the README shows it as is, `--help` without backticks). */
  description: string;
  /** The default as the docs show it, when not the value itself. */
  defaultText?: string;
  /** What a good value looks like, for the message that refuses a bad one. */
  expected?: string;
  /** An option this one must not exceed. */
  notAbove?: string;
  /** An http(s) URL, kept as its origin. */
  origin?: true;
}

const MAX_MS = 2 ** 31 - 1;
const MAX_BYTES = 2 ** 40;

const int = (minimum: number, maximum: number, def: number, meta: OptionMeta) => Type.Integer({ minimum, maximum, default: def, ...meta });
const listOf = (meta: OptionMeta) => Type.Array(Type.String({ minLength: 1 }), { default: [], ...meta });
const optionalString = (meta: OptionMeta) => Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null, ...meta });

/** Every option of the hub, with its docs. Durations in milliseconds, sizes in bytes. */
export const HubConfigSchema = Type.Object(
  {
    host: Type.String({
      minLength: 1,
      default: '127.0.0.1',
      env: 'HUB_HOST',
      flag: '--host',
      flagArg: 'H',
      expected: 'a host name or address',
      description: 'address to listen on',
    }),
    port: int(0, 65535, 8080, { env: 'HUB_PORT', flag: '--port', flagArg: 'P', description: 'port (0: any free port)' }),
    db: Type.String({
      pattern: '^(sqlite:|mysql2?://)',
      default: 'sqlite:./data/hub.sqlite',
      env: 'HUB_DB',
      flag: '--db',
      flagArg: 'URL',
      expected: 'sqlite:PATH or mysql://user:pass@host:port/db',
      description: "`sqlite:PATH` or `mysql://user:pass@host:3306/name`; with SQLite, results' media are files in `PATH-media/` (back it up with the database)",
    }),
    workerTokens: listOf({
      env: 'HUB_WORKER_TOKENS',
      description: 'comma-separated worker tokens good for any service, besides those made with `utils-hub tokens create`',
    }),
    dialSecret: optionalString({ env: 'HUB_DIAL_SECRET', description: 'presented as `Authorization: Bearer` to the workers the hub dials' }),
    apiKeys: listOf({
      env: 'HUB_API_KEYS',
      description:
        'comma-separated client keys; when any exists (here or made with `utils-hub keys create`), REST and `/client` need one (`Authorization: Bearer`; `?key=` only on the `/client` upgrade and event streams). A task belongs to the key that submitted it: each of these keys is its own owner, not admin',
    }),
    allowedOrigins: listOf({
      env: 'HUB_ALLOWED_ORIGINS',
      origin: true,
      description: "comma-separated origins besides the hub's own that browsers may open `/client` and `/worker` from",
    }),
    taskTimeoutMs: int(1, MAX_MS, 300_000, { env: 'HUB_TASK_TIMEOUT_MS', notAbove: 'maxTaskTimeoutMs', description: 'default run deadline of a task attempt' }),
    maxTaskTimeoutMs: int(1, MAX_MS, 3_600_000, { env: 'HUB_MAX_TASK_TIMEOUT_MS', description: 'largest `timeout_ms` a client may ask for' }),
    queueTimeoutMs: int(0, MAX_MS, 30_000, { env: 'HUB_QUEUE_TIMEOUT_MS', description: "default bound of a wait in a service's queue" }),
    queueLimit: int(0, 10_000_000, 10_000, { env: 'HUB_QUEUE_LIMIT', description: 'most tasks waiting per service' }),
    maxAttempts: int(1, 100, 2, { env: 'HUB_MAX_ATTEMPTS', description: 'attempts of a task when connections are lost' }),
    maxMessageBytes: int(1024, MAX_MS, 33_554_432, { env: 'HUB_MAX_MESSAGE_BYTES', description: 'largest WebSocket frame (close 1009) and REST body (413)' }),
    heartbeatMs: int(10, MAX_MS, 15_000, { env: 'HUB_HEARTBEAT_MS', description: 'ping interval; a peer silent for two is terminated' }),
    resultTtlMs: int(0, MAX_BYTES, 3_600_000, { env: 'HUB_RESULT_TTL_MS', description: 'how long an ended task stays readable' }),
    rateLimit: int(0, 1_000_000, 0, {
      env: 'HUB_RATE_LIMIT',
      description: 'requests per second (and burst) per client key or address over REST and `/client`; 0: no limit',
    }),
    logLevel: Type.Union(
      [
        Type.Literal('fatal'),
        Type.Literal('error'),
        Type.Literal('warn'),
        Type.Literal('info'),
        Type.Literal('debug'),
        Type.Literal('trace'),
        Type.Literal('silent'),
      ],
      {
        default: 'info',
        env: 'HUB_LOG_LEVEL',
        description: 'pino level (`silent` to mute)',
      },
    ),
    shutdownGraceMs: int(0, MAX_MS, 10_000, { env: 'HUB_SHUTDOWN_GRACE_MS', description: 'how long running tasks may go on after SIGINT/SIGTERM' }),
    publicUrl: optionalString({ env: 'HUB_PUBLIC_URL', origin: true, description: "the hub's own origin behind a proxy" }),
    maxBufferedBytes: int(1024, MAX_BYTES, 4 * 33_554_432, {
      env: 'HUB_MAX_BUFFERED_BYTES',
      defaultText: '4 x `HUB_MAX_MESSAGE_BYTES`',
      description: "a connection whose unsent bytes exceed this is closed (1013), so that one slow reader cannot grow the hub's memory",
    }),
    commit: Type.Union([Type.Literal('stored'), Type.Literal('async')], {
      default: 'stored',
      env: 'HUB_COMMIT',
      description:
        "`stored`: `accepted` (and the 202) only once the task's row is committed, a task's end only once it is committed (grouped writes; a crash loses nothing a client was told); `async`: rows written behind, lower latency, a crash may lose about the last 50 ms of rows (docs/protocol.md section 8)",
    }),
    maxQueueTimeoutMs: int(1, MAX_MS, 3_600_000, {
      env: 'HUB_MAX_QUEUE_TIMEOUT_MS',
      description: 'largest `queue_timeout_ms` a client may ask for (a larger one is `bad_request`)',
    }),
    queueMaxBytes: int(1, MAX_BYTES, 268_435_456, {
      env: 'HUB_QUEUE_MAX_BYTES',
      description: 'most bytes of args (attachments included) waiting in all queues together; past it `queue_full`',
    }),
    maxServiceBytes: int(1024, MAX_MS, 262_144, {
      env: 'HUB_MAX_SERVICE_BYTES',
      description: 'largest `/me` description, as JSON; a larger one is refused at `hello` with `bad_service_description`',
    }),
    webhookSecret: Type.Union([Type.String({ pattern: '^whsec_[A-Za-z0-9+/]{16,}={0,2}$' }), Type.Null()], {
      default: null,
      env: 'HUB_WEBHOOK_SECRET',
      expected: 'whsec_ followed by the base64 of at least 12 random bytes',
      description: 'the `whsec_...` secret that signs webhooks (Standard Webhooks); without it `webhook` is refused `bad_request`',
    }),
    webhookMaxBodyBytes: int(4096, MAX_BYTES, 1_048_576, {
      env: 'HUB_WEBHOOK_MAX_BODY_BYTES',
      description:
        'largest webhook body; a larger one leaves the result out and says `"truncated": true` with `task_url` to read it (on MySQL also kept under `max_allowed_packet`)',
    }),
    webhookAllowPrivate: Type.Boolean({
      default: false,
      env: 'HUB_WEBHOOK_ALLOW_PRIVATE',
      defaultText: 'unset',
      expected: '1 or 0',
      description: '`1`: webhooks may go to loopback, private and link-local addresses (tests, private networks)',
    }),
    broker: Type.Union([Type.String({ pattern: '^(nats|tls)://[^\\s/,]+(\\s*,\\s*(nats|tls)://[^\\s/,]+)*$' }), Type.Null()], {
      default: null,
      env: 'HUB_BROKER',
      flag: '--broker',
      flagArg: 'URL',
      expected: 'nats://host:port (comma-separated for several)',
      defaultText: 'none: one hub alone',
      description: 'NATS URL(s), comma-separated: this hub joins a cluster ([docs/cluster.md](docs/cluster.md)); needs a MySQL/MariaDB `HUB_DB`',
    }),
    cluster: Type.String({
      pattern: '^[A-Za-z0-9_-]{1,64}$',
      default: 'utils-hub',
      env: 'HUB_CLUSTER',
      flag: '--cluster',
      flagArg: 'NAME',
      expected: '1 to 64 letters, digits, "-" or "_" (it is part of NATS subjects and bucket names)',
      description: "the cluster's name; every NATS subject, stream and bucket it uses starts with it",
    }),
    hubId: Type.Union([Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }), Type.Null()], {
      default: null,
      env: 'HUB_ID',
      expected: '1 to 64 letters, digits, "-" or "_"',
      defaultText: 'random at each start',
      description: "this hub's name in its logs (`hub_id`), `/metrics` (`utils_hub_info`), the operator page and, in a cluster, `/healthz` and the cluster",
    }),
    testExitAfterClaim: Type.Boolean({
      default: false,
      env: 'HUB_TEST_EXIT_AFTER_CLAIM',
      defaultText: 'unset',
      expected: '1 or 0',
      description:
        '`1`, tests only, cluster mode: the hub kills itself (SIGKILL) right after committing the claim of an idempotency key, before handing its task on',
    }),
    // Given in code only (buildApp), for tests and tuning.
    helloTimeoutMs: int(1, MAX_MS, 10_000, { description: "deadline of the worker's `hello`" }),
    cancelGraceMs: int(0, MAX_MS, 10_000, { description: 'how long a slot stays taken after a timeout or cancel, unless the worker answers' }),
    dialerPollMs: int(10, MAX_MS, 2_000, { description: 'how often the dialer re-reads the `workers` table' }),
    dialMinDelayMs: int(1, MAX_MS, 500, { notAbove: 'dialMaxDelayMs', description: 'smallest redial delay of the dialer' }),
    dialMaxDelayMs: int(1, MAX_MS, 30_000, { description: 'largest redial delay of the dialer' }),
    endedCacheSize: int(0, 10_000_000, 10_000, { description: 'ended tasks kept in memory for fast reads (older ones are read from the database)' }),
    endedCacheBytes: int(0, MAX_BYTES, 64 * 1024 * 1024, {
      description: 'bytes of end frames and media those ended tasks may hold in memory (the newest is kept whatever its size)',
    }),
    storeBacklogBytes: int(1, MAX_BYTES, 64 * 1024 * 1024, {
      description: 'bytes of task rows waiting for the database above which the hub stops reading from workers until the store is down to half of it',
    }),
    storeFailingMs: int(1, MAX_MS, 5_000, { description: 'how long every task-store write may fail before `/readyz` answers 503' }),
  },
  { additionalProperties: false },
);

/** Every option of the hub (see {@link HubConfigSchema} for each one's meaning and default). */
export type HubConfig = Static<typeof HubConfigSchema>;

type Key = keyof HubConfig;
type Entry = TSchema & OptionMeta;
const ENTRIES = Object.entries(HubConfigSchema.properties) as [Key, Entry][];
const SCHEMA = HubConfigSchema.properties as unknown as Record<Key, Entry>;

/** The defaults of every option. */
export const defaults: Readonly<HubConfig> = Object.freeze(
  Object.fromEntries(ENTRIES.map(([key, s]) => [key, Array.isArray(s.default) ? Object.freeze([...(s.default as unknown[])]) : s.default])) as HubConfig,
);

/** An option that cannot be used; its message names the option. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The option's name in messages: its environment variable, else its key. */
function nameOf(key: Key): string {
  return SCHEMA[key].env ?? String(key);
}

const isInt = (s: Entry) => s.type === 'integer';
const isList = (s: Entry) => s.type === 'array';

function splitList(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A value from the environment or a flag, as the option's type. */
function fromString(key: Key, name: string, raw: string): unknown {
  const s = SCHEMA[key];
  if (isList(s)) return splitList(raw);
  if (isInt(s)) {
    if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name}: expected an integer, got ${JSON.stringify(raw)}`);
    return Number(raw.trim());
  }
  if (s.type === 'boolean') {
    const b = ({ '1': true, true: true, '0': false, false: false } as Record<string, boolean>)[raw.trim()];
    if (b === undefined) throw new ConfigError(`${name}: expected 1 or 0, got ${JSON.stringify(raw)}`);
    return b;
  }
  return raw;
}

/** What the option takes, for the message that refuses a bad value. */
function expected(s: Entry): string {
  if (s.expected) return s.expected;
  if (isInt(s)) return `an integer from ${s.minimum as number} to ${s.maximum as number}`;
  if (isList(s)) return 'a comma-separated list of non-empty strings';
  const literals = ((s.anyOf ?? []) as TSchema[]).filter((a) => 'const' in a).map((a) => String(a.const));
  if (literals.length > 0) return `one of ${literals.join(', ')}`;
  return 'a non-empty string';
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
 * Builds the hub's options: `defaults`, then `env` (strings, as in process.env; an empty one
 * counts as unset), then `overrides` (flags or code). Throws ConfigError naming the first bad
 * option. The result is frozen. `maxBufferedBytes`, unless set, is 4 x `maxMessageBytes`.
 */
export function loadConfig(env: Record<string, string | undefined> = {}, overrides: Partial<HubConfig> = {}): Readonly<HubConfig> {
  const out: Record<string, unknown> = { ...defaults };
  const set = new Set<Key>();
  for (const [key, s] of ENTRIES) {
    const raw = s.env === undefined ? undefined : env[s.env];
    if (raw === undefined || raw === '') continue;
    out[key] = fromString(key, s.env!, raw);
    set.add(key);
  }
  for (const [key, value] of Object.entries(overrides) as [Key, unknown][]) {
    if (value === undefined) continue;
    if (!Object.hasOwn(SCHEMA, key)) throw new ConfigError(`${key}: not an option of the hub`);
    out[key] = typeof value === 'string' && isInt(SCHEMA[key]) ? fromString(key, `--${key}`, value) : value;
    set.add(key);
  }
  if (!set.has('maxBufferedBytes')) out.maxBufferedBytes = 4 * (out.maxMessageBytes as number);
  return check(out);
}

function check(c: Record<string, unknown>): Readonly<HubConfig> {
  // Each value against its schema first, so that a relation below compares checked values.
  for (const [key, s] of ENTRIES) {
    if (!Value.Check(s, c[key])) {
      throw new ConfigError(`${nameOf(key)}: expected ${expected(s)}${isList(s) ? '' : `, got ${JSON.stringify(c[key])}`}`);
    }
  }
  if (c.broker !== null && !/^mysql2?:\/\//.test(c.db as string)) {
    throw new ConfigError(
      'HUB_DB: cluster mode (HUB_BROKER) needs a MySQL/MariaDB database: every hub must read the rows the others write, and a SQLite file belongs to one process on one machine',
    );
  }
  for (const [key, s] of ENTRIES) {
    const v = c[key];
    if (s.notAbove !== undefined && (v as number) > (c[s.notAbove] as number)) {
      throw new ConfigError(`${nameOf(key)}: must not exceed ${nameOf(s.notAbove as Key)} (${c[s.notAbove] as number})`);
    }
    if (s.origin) c[key] = Array.isArray(v) ? v.map((o: string) => origin(nameOf(key), o)) : v === null ? null : origin(nameOf(key), v as string);
    if (Array.isArray(c[key])) c[key] = Object.freeze([...(c[key] as unknown[])]);
  }
  return Object.freeze(c) as unknown as Readonly<HubConfig>;
}

/** The options of `utils-hub start` that have a flag, for `parseArgs`, by flag name without `--`. */
export function startFlagOptions(): Record<string, { type: 'string' }> {
  return Object.fromEntries(ENTRIES.filter(([, s]) => s.flag).map(([, s]) => [s.flag!.slice(2), { type: 'string' as const }]));
}

/**
 * The options of `utils-hub start`: the defaults, then this process's environment, then the
 * flags (`parseArgs` values by flag name without `--`, as strings). Throws ConfigError.
 */
export function loadStartConfig(flags: Record<string, unknown>): Readonly<HubConfig> {
  const overrides: Record<string, unknown> = {};
  for (const [key, s] of ENTRIES) {
    const raw = s.flag ? flags[s.flag.slice(2)] : undefined;
    if (typeof raw === 'string') overrides[key] = fromString(key, s.flag!, raw);
  }
  return loadConfig(process.env, overrides as Partial<HubConfig>);
}

/** The database URL of the administration commands: `HUB_DB` from this process's environment, else the default. */
export function envDbUrl(): string {
  return process.env.HUB_DB || defaults.db;
}

/** How the docs show an option's default. */
function defaultText(s: Entry): string {
  if (s.defaultText) return s.defaultText;
  const d = s.default as unknown;
  if (d === null || (Array.isArray(d) && d.length === 0)) return 'none';
  return typeof d === 'string' ? `\`${d}\`` : String(d);
}

/** The options set from the environment, in the schema's order. */
const DOCUMENTED = ENTRIES.filter(([, s]) => s.env !== undefined);

/**
 * The README's configuration table (markdown, one row per option set from the environment);
 * `npm run docs:config` writes it there and a test checks that the README has it.
 */
export function configTable(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`.replace(/\| {2}\|/g, '| |');
  const rows = DOCUMENTED.map(([, s]) => row([`\`${s.env}\``, s.flag ? `\`${s.flag}\`` : '', cell(defaultText(s)), cell(s.description)]));
  return [row(['env', 'flag', 'default', 'meaning']), row(['---', '---', '---', '---']), ...rows].join('\n');
}

/** The help of `utils-hub start`, its options listed from the schema. */
export function startHelp(): string {
  const plain = (text: string) => text.replace(/`/g, '');
  const flags = DOCUMENTED.filter(([, s]) => s.flag).map(([, s]) => `[${s.flag} ${s.flagArg ?? 'VALUE'}]`);
  const width = Math.max(...DOCUMENTED.map(([, s]) => s.env!.length + (s.flag ? s.flag.length + 2 : 0)));
  const lines = DOCUMENTED.map(([, s]) => {
    const names = s.flag ? `${s.env}, ${s.flag}` : s.env!;
    return `  ${names.padEnd(width)}  ${plain(s.description)} (default: ${plain(defaultText(s))})`;
  });
  return `Usage: utils-hub start ${flags.join(' ')} [--no-wait]

Runs the hub. Options come from the environment; a flag, where there is one, wins.
--no-wait fails at once when the database does not answer, instead of retrying.

Options (environment variable, flag: meaning and default):
${lines.join('\n')}`;
}
