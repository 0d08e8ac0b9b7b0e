export * from './schemas.js';
export * from './errors.js';
export * from './validators.js';
export * from './check-args.js';
export * from './codec.js';
