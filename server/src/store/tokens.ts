/**
 * The `tokens` table: worker tokens and client keys, stored as SHA-256 hashes only
 * (docs/protocol.md sections 5.1 and 9). The secret is shown once, by `createToken`.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { StoreError, isUniqueViolation } from './errors.js';

/** `worker`: tokens that workers present at `/worker`. `client`: API keys of clients. */
export type TokenKind = 'worker' | 'client';

/** What `listTokens` tells about a token: never the secret, nor its hash. Times in ms. */
export interface TokenInfo {
  id: number;
  kind: TokenKind;
  name: string;
  /** The only service a worker token is good for; null: any service. */
  service: string | null;
  /** A client key that sees every task (`keys create NAME --admin`). */
  admin: boolean;
  created_at: number;
  revoked_at: number | null;
}

/** Who a verified secret belongs to. */
export interface VerifiedToken {
  /** The row's id: what names a client key as the owner of its tasks (a name may be reused after a revoke). */
  id: number;
  name: string;
  service: string | null;
  /** A client key that sees every task. */
  admin: boolean;
}

/** Token and service names: 1 to 64 characters of `A-Z a-z 0-9 _ . -`. */
const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Prefix of each kind's secrets, so a person can tell them apart. */
export const TOKEN_PREFIX: Readonly<Record<TokenKind, string>> = Object.freeze({ worker: 'uh_w_', client: 'uh_c_' });

/** Longest secret `verifyToken` looks up; longer ones are refused without hashing. */
const MAX_SECRET_LENGTH = 512;

const LABEL: Record<TokenKind, string> = { worker: 'worker token', client: 'client key' };

interface RawToken {
  id: number | string;
  kind: TokenKind;
  name: string;
  service: string | null;
  admin: number | boolean | null;
  hash: string;
  created_at: number | string;
  revoked_at: number | string | null;
}

/** The SHA-256 of a secret, in hex: what the table keeps. */
export function hashToken(secret: string): string {
  return crypto.createHash('sha256').update(secret, 'utf8').digest('hex');
}

function checkKind(kind: TokenKind): void {
  if (kind !== 'worker' && kind !== 'client') throw new StoreError('invalid', `unknown token kind "${String(kind)}"`);
}

/**
 * Creates a token and returns its secret (`uh_w_` or `uh_c_` and 32 random bytes in base64url),
 * the only time it is available: the table keeps its hash. `service` (worker tokens only) makes
 * it good for that service alone; `admin` (client keys only) makes a key that sees every task.
 * A revoked token's name may be used again.
 * Throws StoreError `invalid` for a bad name, `duplicate` when the name is in use.
 */
export async function createToken(db: Knex, kind: TokenKind, name: string, options: { service?: string; admin?: boolean; now?: number } = {}): Promise<string> {
  checkKind(kind);
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new StoreError('invalid', `invalid ${LABEL[kind]} name "${name}": 1 to 64 characters of A-Z a-z 0-9 _ . -`);
  }
  const service = options.service ?? null;
  if (service !== null) {
    if (kind !== 'worker') throw new StoreError('invalid', 'only worker tokens can be limited to a service');
    if (!NAME.test(service)) {
      throw new StoreError('invalid', `invalid service name "${service}": 1 to 64 characters of A-Z a-z 0-9 _ . -`);
    }
  }
  const admin = options.admin === true;
  if (admin && kind !== 'client') throw new StoreError('invalid', 'only client keys can be admin keys');
  const secret = TOKEN_PREFIX[kind] + crypto.randomBytes(32).toString('base64url');
  const now = options.now ?? Date.now();
  try {
    await db.transaction(async (trx) => {
      await trx('tokens').where({ kind, name }).whereNotNull('revoked_at').delete();
      await trx('tokens').insert({ kind, name, service, admin, hash: hashToken(secret), created_at: now, revoked_at: null });
    });
  } catch (err) {
    if (isUniqueViolation(err)) throw new StoreError('duplicate', `a ${LABEL[kind]} named "${name}" already exists`);
    throw err;
  }
  return secret;
}

/**
 * The unrevoked token of that kind whose secret this is, or null. Looks the hash up, then
 * compares it in constant time.
 */
export async function verifyToken(db: Knex, kind: TokenKind, secret: string): Promise<VerifiedToken | null> {
  if (typeof secret !== 'string' || secret === '' || secret.length > MAX_SECRET_LENGTH) return null;
  const hash = hashToken(secret);
  const row = (await db('tokens').where({ kind, hash }).whereNull('revoked_at').first('id', 'name', 'service', 'admin', 'hash')) as
    | Pick<RawToken, 'id' | 'name' | 'service' | 'admin' | 'hash'>
    | undefined;
  if (!row) return null;
  const stored = Buffer.from(row.hash.trim(), 'hex');
  const given = Buffer.from(hash, 'hex');
  if (stored.length !== given.length || !crypto.timingSafeEqual(stored, given)) return null;
  return { id: Number(row.id), name: row.name, service: row.service ?? null, admin: Boolean(row.admin) };
}

/** The tokens of a kind, ordered by name; revoked ones only with `{ includeRevoked: true }`. */
export async function listTokens(db: Knex, kind: TokenKind, options: { includeRevoked?: boolean } = {}): Promise<TokenInfo[]> {
  checkKind(kind);
  const query = db('tokens').select('id', 'kind', 'name', 'service', 'admin', 'created_at', 'revoked_at').where({ kind }).orderBy('name');
  if (!options.includeRevoked) query.whereNull('revoked_at');
  const rows = (await query) as Omit<RawToken, 'hash'>[];
  return rows.map((r) => ({
    id: Number(r.id),
    kind: r.kind,
    name: r.name,
    service: r.service ?? null,
    admin: Boolean(r.admin),
    created_at: Number(r.created_at),
    revoked_at: r.revoked_at === null ? null : Number(r.revoked_at),
  }));
}

/** Revokes the token of that name. Throws StoreError `not_found` when no unrevoked one has it. */
export async function revokeToken(db: Knex, kind: TokenKind, name: string, now: number = Date.now()): Promise<void> {
  checkKind(kind);
  const count = await db('tokens').where({ kind, name }).whereNull('revoked_at').update({ revoked_at: now });
  if (count === 0) throw new StoreError('not_found', `no ${LABEL[kind]} named "${name}"`);
}

/** How many unrevoked tokens of that kind exist. */
export async function countTokens(db: Knex, kind: TokenKind): Promise<number> {
  const row = (await db('tokens').where({ kind }).whereNull('revoked_at').count({ n: '*' }).first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}
