/**
 * Parsing of the `HUB_DB` / `--db` option (docs/protocol.md section 9): which database the hub uses.
 */
import path from 'node:path';

/** The database used when neither `--db` nor `HUB_DB` is given. */
export const DEFAULT_DB_URL = 'sqlite:./data/hub.sqlite';

/** A parsed database URL. */
export type DbConfig =
  | {
      kind: 'sqlite';
      /** Absolute path of the database file, or `:memory:`. */
      filename: string;
    }
  | {
      kind: 'mysql';
      host: string;
      /** TCP port; default 3306. */
      port: number;
      user: string;
      password: string | undefined;
      database: string;
    };

const EXPECTED = 'expected sqlite:PATH or mysql://user:pass@host:port/name';

/** Hides the password of a URL before it goes into a message. */
export function redactDbUrl(url: string): string {
  return url.replace(/^([a-z0-9+.-]+:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

function invalid(url: string, reason: string): Error {
  return new Error(`HUB_DB (--db): ${reason}; ${EXPECTED}, got "${redactDbUrl(url)}"`);
}

/**
 * Parses `sqlite:PATH` (relative paths from the current directory; `sqlite::memory:` for a
 * throwaway database) or `mysql://user:pass@host:port/name` (`mariadb://` too).
 * Throws a plain Error naming the option when the URL is not one of these.
 */
export function parseDbUrl(url: string): DbConfig {
  if (typeof url !== 'string' || url.trim() === '') throw invalid(String(url), 'empty database URL');
  const scheme = /^([a-z0-9+.-]+):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === 'sqlite') {
    // `sqlite:///abs/path` and `sqlite://rel/path` are accepted too, as people write them.
    let file = url.slice('sqlite:'.length);
    if (file.startsWith('//')) file = file.slice(2);
    if (file === '') throw invalid(url, 'missing file path');
    if (file === ':memory:') return { kind: 'sqlite', filename: file };
    return { kind: 'sqlite', filename: path.resolve(file) };
  }
  if (scheme === 'mysql' || scheme === 'mysql2' || scheme === 'mariadb') {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw invalid(url, 'malformed MySQL URL');
    }
    if (u.hostname === '') throw invalid(url, 'missing host');
    if (u.username === '') throw invalid(url, 'missing user');
    if (u.search !== '' || u.hash !== '') throw invalid(url, 'query parameters are not supported');
    const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
    if (!/^[A-Za-z0-9_$-]{1,64}$/.test(database)) throw invalid(url, 'missing or invalid database name');
    const port = u.port === '' ? 3306 : Number(u.port);
    return {
      kind: 'mysql',
      // `new URL` keeps the brackets of an IPv6 literal; mysql2 wants the bare address.
      host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
      port,
      user: decodeURIComponent(u.username),
      password: u.password === '' ? undefined : decodeURIComponent(u.password),
      database,
    };
  }
  throw invalid(url, scheme === undefined ? 'no scheme' : `unsupported scheme "${scheme}:"`);
}
