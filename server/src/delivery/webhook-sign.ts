/**
 * Standard Webhooks signing (docs/protocol.md section 12), byte for byte as the reference
 * `standardwebhooks` package signs: HMAC-SHA256 with the base64-decoded part of `whsec_...`, over
 * `{id}.{timestamp}.{body}`, sent as `webhook-signature: v1,<base64>`.
 */
import { createHmac } from 'node:crypto';

/** The key bytes of a `whsec_...` secret. */
export function secretBytes(secret: string): Buffer {
  return Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
}

/** The `webhook-signature` value of one message; `timestamp` in seconds since the epoch. */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`, 'utf8').digest('base64')}`;
}
