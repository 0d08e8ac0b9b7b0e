/**
 * Task ids: 21 characters of nanoid's URL-safe alphabet (`A-Za-z0-9_-`), like a nanoid, but the
 * first 8 spell the creation time in milliseconds so that ids made later sort after (in byte
 * order, as SQLite and MySQL's binary collation compare them); the other 13 are random, 78 bits
 * from `crypto.randomFillSync`, written in base64url (nanoid's alphabet too). The order matters to the database: the tasks table's
 * primary key is the id, and random ids put every new row on a random page of its index (on
 * MySQL, of the table itself), which a row's write must then read and write back; ids in time
 * order put them on the last page, which stays in memory (docs/performance.md).
 */
import { randomFillSync } from 'node:crypto';

/** nanoid's 64 characters in ascending byte order. */
const SORTED = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz';

/** Characters of the time part: 6 bits each, 48 bits of milliseconds (until the year 10889). */
const TIME_CHARS = 8;

/** Length of a task id. */
export const TASK_ID_LENGTH = 21;

let lastMs = -1;
let lastPrefix = '';

/** The time part of an id made at `ms` (ms since the epoch). */
export function timePrefix(ms: number): string {
  if (ms === lastMs) return lastPrefix;
  let n = Math.max(0, Math.floor(ms));
  let out = '';
  for (let i = 0; i < TIME_CHARS; i++) {
    out = SORTED[n % 64] + out;
    n = Math.floor(n / 64);
  }
  lastMs = ms;
  lastPrefix = out;
  return out;
}

/** Random bytes, drawn 4 KiB at a time; 10 per id (80 bits, of which the 13 characters keep 78). */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** 13 random characters of the base64url alphabet, in one string (nanoid builds its ids a character at a time). */
function randomPart(): string {
  if (poolAt + 10 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const s = pool.toString('base64url', poolAt, poolAt + 10);
  poolAt += 10;
  return s.slice(0, TASK_ID_LENGTH - TIME_CHARS);
}

/** A new task id, made at `now` (default: the clock). */
export function newTaskId(now: number = Date.now()): string {
  return timePrefix(now) + randomPart();
}
