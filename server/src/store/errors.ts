/**
 * Errors of the store that a person should read (the command line prints their message).
 */

/** Why a store call was refused. */
export type StoreErrorCode = 'invalid' | 'duplicate' | 'not_found';

/** A refused store call: bad input, a name already taken, or an unknown name. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Whether `err` is a unique-key violation, on MySQL/MariaDB or SQLite. */
export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ER_DUP_ENTRY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
