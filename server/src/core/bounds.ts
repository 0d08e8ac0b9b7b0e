/**
 * Bounds on what peers may make the hub hold (docs/security.md): the bytes of queued args, the
 * longest queue wait, the size of a service description. Read from the hub's options when they
 * carry them, else from the environment variables of docs/protocol.md section 9, else defaults.
 */

/** The bounds, in bytes and milliseconds. */
export interface HubBounds {
  /** Most bytes of args (attachments included) waiting in all queues together; `queue_full` past it. Env `HUB_QUEUE_MAX_BYTES`. @defaultValue 268435456 (256 MiB) */
  queueMaxBytes: number;
  /** Largest `queue_timeout_ms` a client may ask for (`bad_request` past it). Env `HUB_MAX_QUEUE_TIMEOUT_MS`. @defaultValue 3600000 */
  maxQueueTimeoutMs: number;
  /** Largest service description (`/me`, as JSON in UTF-8) a `hello` may carry. Env `HUB_MAX_SERVICE_BYTES`. @defaultValue 262144 (256 KiB) */
  maxServiceBytes: number;
}

/** The defaults of the bounds. */
export const BOUND_DEFAULTS: Readonly<HubBounds> = Object.freeze({
  queueMaxBytes: 256 * 1024 * 1024,
  maxQueueTimeoutMs: 3_600_000,
  maxServiceBytes: 256 * 1024,
});

/** Most bytes a worker may send in one frame before its `welcome` (docs/protocol.md section 9): 1 MiB. */
export const PRE_WELCOME_FRAME_BYTES = 1024 * 1024;

const ENV: Record<keyof HubBounds, string> = {
  queueMaxBytes: 'HUB_QUEUE_MAX_BYTES',
  maxQueueTimeoutMs: 'HUB_MAX_QUEUE_TIMEOUT_MS',
  maxServiceBytes: 'HUB_MAX_SERVICE_BYTES',
};

const RANGE: Record<keyof HubBounds, [number, number]> = {
  queueMaxBytes: [0, 2 ** 50],
  maxQueueTimeoutMs: [0, 2 ** 40],
  maxServiceBytes: [1024, 2 ** 31 - 1],
};

/**
 * The bounds from `options` (any object: the hub's options carry them once they declare them),
 * then `env` (strings, as in process.env), then the defaults. Throws a RangeError naming the
 * variable for a value that is not an integer in range.
 */
export function boundsOf(options: object, env: Record<string, string | undefined> = {}): HubBounds {
  const given = options as Partial<Record<keyof HubBounds, unknown>>;
  const out = { ...BOUND_DEFAULTS };
  for (const key of Object.keys(ENV) as Array<keyof HubBounds>) {
    const raw = given[key] ?? (env[ENV[key]] === undefined || env[ENV[key]] === '' ? undefined : Number(env[ENV[key]]!.trim()));
    if (raw === undefined) continue;
    const [min, max] = RANGE[key];
    if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < min || raw > max) {
      throw new RangeError(`${ENV[key]}: expected an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    }
    out[key] = raw;
  }
  return out;
}

/** Bytes a JS value holds, roughly and from above: strings at two bytes per unit, bytes as they are, 16 per member. Iterative. */
export function heldBytes(value: unknown): number {
  let n = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') n += 16 + 2 * v.length;
    else if (v instanceof Uint8Array) n += 64 + v.byteLength;
    else if (Array.isArray(v)) {
      n += 16;
      for (const x of v) stack.push(x);
    } else if (typeof v === 'object' && v !== null) {
      n += 16;
      for (const k of Object.keys(v)) {
        n += 16 + 2 * k.length;
        stack.push((v as Record<string, unknown>)[k]);
      }
    } else n += 16;
  }
  return n;
}
