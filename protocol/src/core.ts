/**
 * The browser-light entry of the protocol package (`@utils-hub/protocol/core`): limits, bytes and
 * base64, the rules of values, the backoff, the attachment codec and the error codes, without
 * the schemas' TypeBox and the validators' ajv, so that the client SDK and the operator page
 * bundle only this. Types of the schemas are imported from the main entry (erased at build).
 */
export * from './limits.js';
export * from './bytes.js';
export * from './rules.js';
export * from './backoff.js';
export * from './errors.js';
export * from './codec.js';
