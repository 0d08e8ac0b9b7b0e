/**
 * The part of better-sqlite3 the tests use directly (the package ships no types, and the hub only
 * reaches it through knex and its writer thread, so @types/better-sqlite3 is not worth a dependency).
 */
declare module 'better-sqlite3' {
  /** A synchronous connection to one SQLite file. */
  export default class Database {
    /** Opens (or creates) the database file at `filename`. */
    constructor(filename: string);
    /** Runs one or more SQL statements, returning nothing. */
    exec(sql: string): this;
    /** Closes the connection. */
    close(): this;
  }
}
