/** The store: small functions over each table, and the write-behind task store. */
export * from './errors.js';
export * from './services.js';
export * from './workers.js';
export * from './tokens.js';
export * from './attachments.js';
export * from './tasks.js';
