/**
 * The error catalogue (docs/protocol.md section 6): every wire code once, with its HTTP status.
 * `bad_message` only travels on WebSockets; it is given 400 for completeness.
 */
export const ERROR_STATUS = {
  bad_request: 400,
  bad_message: 400,
  invalid_args: 400,
  unauthorized: 401,
  forbidden: 403,
  service_not_found: 404,
  task_not_found: 404,
  not_found: 404,
  method_not_allowed: 405,
  already_finished: 409,
  canceled: 409,
  idempotency_mismatch: 422,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  task_failed: 502,
  worker_lost: 502,
  no_worker: 503,
  queue_full: 503,
  shutting_down: 503,
  // Cluster mode (docs/cluster.md): what needs another hub while the broker is unreachable.
  unavailable: 503,
  interrupted: 503,
  timeout: 504,
  internal: 500,
  // Handshake refusals (section 5.1) that have no REST use; statuses chosen for completeness.
  bad_service_description: 400,
  service_conflict: 409,
  unsupported_protocol: 400,
} as const;

/** A code of the catalogue. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/** Every code of the catalogue, in its order. */
export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

/** True when `code` is a code of the catalogue. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_STATUS, code);
}

/** One problem with one argument, as `invalid_args` details list them. */
export interface ArgProblem {
  argument_name: string;
  problem: string;
}

/**
 * An error of the contract: a code of the catalogue, a message for a person, and details that
 * go into the wire body beside them (`details`, `worker_error`, `task_id`, ...).
 */
export class HubError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'HubError';
    this.code = code;
    this.details = details;
  }

  /** The HTTP status of this error's code. */
  get status(): number {
    return ERROR_STATUS[this.code];
  }

  /** `{code, message, ...details}`: the `error` member of a REST body or a message. */
  toJSON(): { code: ErrorCode; message: string } & Record<string, unknown> {
    return { ...this.details, code: this.code, message: this.message };
  }

  /** The REST error body: `{"error": {...}}`. */
  toBody(): { error: ReturnType<HubError['toJSON']> } {
    return { error: this.toJSON() };
  }

  /** Rebuilds a HubError from a wire `error` object; unknown codes become `internal`. */
  static from(error: unknown): HubError {
    if (error instanceof HubError) return error;
    if (error && typeof error === 'object') {
      const { code, message, ...rest } = error as Record<string, unknown>;
      if (isErrorCode(code)) return new HubError(code, typeof message === 'string' ? message : code, rest);
    }
    return new HubError('internal', error instanceof Error ? error.message : 'internal error');
  }
}
